"""A freed slot's whole waitlist explained, one page at a time (SPEC 11, issue 12).

`explain_slot` judges every waiting entry in Python, about 0.3 ms each: 3 s for a
specialty with 10,000 waiting (bench/explain.py). Staff and the API read a page. So the
order is worked out in the database, from the same rule table: each rule's tiers become
one CASE expression (the score), its hard filters and flags one condition (eligible),
and the table's tie-breaks the sort key; only the entries of the page asked for are then
explained in Python, by `explain` itself. tests/test_explained_waitlist.py checks pages
against `explain_slot` on random clinics.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from django.db import connection

from backfill import rules as table
from backfill.explanation import _judged, explain
from backfill.matching import busy_patients
from backfill.models import FreedSlot
from backfill.rules import Case, Rules, SlotFacts
from clinic.models import Patient
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry


@dataclass(frozen=True)
class Ranked:
    """What the sort key reads of an entry: its id and the tie-break fields."""

    pk: int
    eligible: bool
    score: int
    fields: dict

    def __getattr__(self, name):
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def key(self):
        return (not self.eligible, table.rank_key(self.score, self))


def score_sql(rules, rule_table=table.RULES):
    """The score as SQL: each scoring rule's first tier that holds, as `score` adds them up."""
    terms = []
    for rule in rule_table:
        tiers = rule.tiers(rules)
        if tiers:
            cases = " ".join(f"WHEN {tier.sql or '1 = 1'} THEN {int(tier.points)}" for tier in tiers)
            terms.append(f"(CASE {cases} ELSE 0 END)")
    return " + ".join(terms) or "0"


def eligible_sql(rules, rule_table=table.RULES):
    """Every active hard filter and flag holds, and the score reaches MIN_SCORE: `explain`'s "no reasons"."""
    conditions = [f"({rule.filter.sql_for(rules)})" for rule in rule_table if rule.filter_active(rules)]
    conditions.append(f"({score_sql(rules, rule_table)}) >= {int(rules.MIN_SCORE)}")
    return " AND ".join(conditions)


class ExplainedWaitlist(Sequence):
    """The explanations `explain_slot` gives, in its order, computing only the ones sliced.

    Django's Paginator (and so DRF's) takes its len() and one slice per page.
    """

    def __init__(self, slot, rules: Rules | None = None, rule_table=table.RULES):
        self.slot, self.rules, self.rule_table = slot, rules or Rules(), rule_table
        self.facts = SlotFacts.of(slot)

    def __len__(self):
        return len(self.order)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._explained(self.order[index])
        return self._explained([self.order[index]])[0]

    @cached_property
    def order(self):
        """Entry ids in `explain_slot`'s order: eligible first, then by the rank key."""
        ranked = self._ranked_waiting()
        booked = self._booked_entry()
        if booked is not None:  # judged as it stood when chosen, in Python: one entry
            judged = self._judge(booked, self._busy())
            ranked.append(Ranked(booked.pk, judged.eligible, judged.score, _tie_fields(booked, self.rule_table)))
        return [item.pk for item in sorted(ranked, key=lambda item: item.key)]

    def _ranked_waiting(self):
        names = [name for name, _ in table.tie_breaks(self.rule_table) if name != "id"]
        columns = "".join(f", e.{name}" for name in names)
        sql = (
            f"SELECT e.id, CASE WHEN {eligible_sql(self.rules, self.rule_table)} THEN 1 ELSE 0 END, "
            f"{score_sql(self.rules, self.rule_table)}{columns} "
            f"FROM {WaitlistEntry._meta.db_table} e JOIN {Patient._meta.db_table} p ON p.id = e.patient_id "
            "WHERE e.specialty_id = %(specialty)s AND e.status = %(waiting)s"
        )
        # Adapted as Django adapts a raw query's values (SQLite keeps datetimes as UTC text).
        params = {name: connection.ops.adapt_unknown_value(value) for name, value in self.facts.query_params().items()}
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        columns = [WaitlistEntry._meta.get_field(name).get_col("e") for name in names]
        return [
            Ranked(pk, bool(eligible), score, {
                name: _from_db(column, value) for name, column, value in zip(names, columns, rest)
            })
            for pk, eligible, score, *rest in rows
        ]

    def _booked_entry(self):
        if not self.slot.filled_by_id:
            return None
        return (WaitlistEntry.objects.filter(booked_appointment_id=self.slot.filled_by_id)
                .select_related("patient", "specialty", "preferred_location", "preferred_provider").first())

    def _busy(self):
        busy = busy_patients(self.facts)
        if self.slot.filled_by_id:  # as explain_slot: the booking into this slot is not "busy"
            busy = {patient: a for patient, a in busy.items() if a.pk != self.slot.filled_by_id}
        return busy

    def _judge(self, entry, busy):
        return _judged(entry, self.slot, self.facts, self.rules, busy.get(entry.patient_id))

    def _explained(self, ids):
        entries = WaitlistEntry.objects.filter(pk__in=ids).select_related(
            "patient", "specialty", "preferred_location", "preferred_provider")
        by_id = {entry.pk: entry for entry in entries}
        busy = self._busy()
        return [self._judge(by_id[pk], busy) for pk in ids]


def _tie_fields(entry, rule_table):
    return {name: getattr(entry, name) for name, _ in table.tie_breaks(rule_table) if name != "id"}


def _from_db(column, value):
    """A raw column as the model would hold it (SQLite answers datetimes as text, booleans as 0/1)."""
    for converter in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
        value = converter(value, column, connection)
    return value


# How many open slots a waiting patient's page judges them against, soonest first.
OPEN_SLOTS_JUDGED = 50


def explain_entry(entry, rules: Rules | None = None):
    """The open freed slots of the entry's specialty and how the entry fares in each, by the
    same `explain`: those that fit first (best score, then soonest), then the others with why."""
    rules = rules or Rules()
    slots = list(FreedSlot.objects.fillable().filter(provider__specialty_id=entry.specialty_id)
                 .select_related("provider__location", "appointment").order_by("start", "pk")[:OPEN_SLOTS_JUDGED])
    if not slots:
        return []
    busy = list(entry.patient.appointments.overlapping(slots[0].start, max(slot.end for slot in slots))
                .select_related("provider"))
    judged = []
    for slot in slots:
        busy_with = next((a for a in busy if a.start < slot.end and a.end > slot.start), None)
        judged.append((slot, explain(entry, SlotFacts.of(slot), rules, busy_with)))
    return sorted(judged, key=lambda pair: (not pair[1].eligible, -pair[1].score if pair[1].eligible else 0, pair[0].start))


# Values of the rules' SQL that no slot supplies: a filter reading only these judges an entry alone.
SLOT_FREE_PARAMS = {"waiting", "cancelled"}


def slot_free_filters(rules, rule_table=table.RULES):
    """The active hard filters that depend on the patient alone (risk floor, opted out, still
    waiting): an entry failing one is never booked into any slot."""
    return [rule for rule in table.active_filters(rules, rule_table)
            if set(re.findall(r"%\((\w+)\)s", rule.filter.sql_for(rules))) <= SLOT_FREE_PARAMS]


@dataclass
class WaitlistPanel:
    """The schedule's waitlist: who the backfill may book, in its tie-break order, then who a
    rule about the patient alone keeps out of every slot, with why."""

    bookable: list
    kept_out: list  # (entry, reasons)
    kept_out_count: int

    @property
    def shown(self):
        return len(self.bookable) + len(self.kept_out)


def waitlist_panel(size, rules: Rules | None = None, rule_table=table.RULES):
    rules = rules or Rules()
    filters = slot_free_filters(rules, rule_table)
    condition = " AND ".join(f"({rule.filter.sql_for(rules)})" for rule in filters) or "1 = 1"
    order = ", ".join(f"e.{name}" + (" DESC" if descending else "") for name, descending in table.tie_breaks(rule_table))
    bookable, kept_out, kept_out_count = _panel_entries(condition, order, size)
    reasons = [(entry, [rule.filter.refusal(Case(entry, None, rules)) for rule in filters
                        if not rule.filter.holds(Case(entry, None, rules))]) for entry in kept_out]
    return WaitlistPanel(bookable, reasons, kept_out_count)


def _panel_entries(condition, order, size):
    """Both lists' ids and how many are kept out, in one query; then their entries in one more."""
    waiting = (f"FROM {WaitlistEntry._meta.db_table} e JOIN {Patient._meta.db_table} p ON p.id = e.patient_id "
               "WHERE e.status = %(waiting)s AND ")
    sql = (f"SELECT * FROM (SELECT 1 AS part, e.id {waiting}{condition} ORDER BY {order} LIMIT {int(size)}) bookable "
           f"UNION ALL SELECT * FROM (SELECT 2, e.id {waiting}NOT ({condition}) ORDER BY {order} LIMIT {int(size)}) kept_out "
           f"UNION ALL SELECT 3, COUNT(*) {waiting}NOT ({condition})")
    with connection.cursor() as cursor:
        cursor.execute(sql, _slot_free_values())
        rows = cursor.fetchall()
    ids = [pk for part, pk in rows if part != 3]
    entries = WaitlistEntry.objects.filter(pk__in=ids).select_related("patient", "specialty", "preferred_location")
    by_id = {entry.pk: entry for entry in entries} if ids else {}
    return ([by_id[pk] for part, pk in rows if part == 1], [by_id[pk] for part, pk in rows if part == 2],
            next(count for part, count in rows if part == 3))


def _slot_free_values():
    return {"waiting": WaitlistEntry.Status.WAITING, "cancelled": Appointment.Status.CANCELLED}
