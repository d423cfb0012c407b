"""A freed slot's whole waitlist explained, one page at a time (docs/reference.md, Staff explanation).

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
from backfill.explanation import explain, judge_for_slot
from backfill.matching import busy_patients
from backfill.models import FreedSlot
from backfill.rules import Case, Rules, SlotFacts
from clinic.models import Patient
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry

# How many of a slot's explained waitlist the staff pages show (the API pages through all).
EXPLAINED_ON_PAGE = 100


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

    Django's Paginator (and so DRF's) asks its len() (one COUNT) and one slice per page
    (one ordered query for the page's ids, then the page's entries, explained in Python).
    """

    def __init__(self, slot, rules: Rules | None = None, rule_table=table.RULES):
        self.slot, self.rules, self.rule_table = slot, rules or Rules(), rule_table
        self.facts = SlotFacts.of(slot)

    def __len__(self):
        return self._count

    def __getitem__(self, index):
        if not isinstance(index, slice):
            return self[index : index + 1][0]
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("ExplainedWaitlist slices have no step")
        return self._explained(self._ids(start, max(0, stop - start)))

    @cached_property
    def _count(self):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) {self._from_where}", self._params)
            return cursor.fetchone()[0]

    def _ids(self, offset, limit):
        """Ids in explain_slot's order: eligible first, then by score and the table's tie-breaks."""
        if not limit:
            return []
        tie_breaks = ", ".join(
            f"e.{name}" + (" DESC" if descending else "") for name, descending in table.tie_breaks(self.rule_table)
        )
        # The entry booked into the slot is judged as when it was chosen (in Python, one
        # entry): its status and its own booking would otherwise fail it.
        eligible = (
            f"CASE WHEN e.id = %(booked_entry)s THEN %(booked_eligible)s "
            f"WHEN {eligible_sql(self.rules, self.rule_table)} THEN 1 ELSE 0 END"
        )
        sql = (
            f"SELECT e.id, {eligible} AS eligible, {score_sql(self.rules, self.rule_table)} AS score "
            f"{self._from_where} ORDER BY eligible DESC, score DESC, {tie_breaks} "
            f"LIMIT {int(limit)} OFFSET {int(offset)}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, self._params)
            return [pk for pk, _, _ in cursor.fetchall()]

    @property
    def _from_where(self):
        return (
            f"FROM {WaitlistEntry._meta.db_table} e JOIN {Patient._meta.db_table} p ON p.id = e.patient_id "
            "WHERE (e.specialty_id = %(specialty)s AND e.status = %(waiting)s) OR e.id = %(booked_entry)s"
        )

    @cached_property
    def _params(self):
        booked = self._booked_entry
        values = {
            **self.facts.query_params(),
            "booked_entry": booked.pk if booked else 0,
            "booked_eligible": int(bool(booked) and self._judge(booked, self._busy).eligible),
        }
        # Adapted as Django adapts a raw query's values (SQLite keeps datetimes as UTC text).
        return {name: connection.ops.adapt_unknown_value(value) for name, value in values.items()}

    @cached_property
    def _booked_entry(self):
        if not self.slot.filled_by_id:
            return None
        return (
            WaitlistEntry.objects.filter(booked_appointment_id=self.slot.filled_by_id)
            .select_related("patient__insurance_plan", "specialty", "preferred_location", "preferred_provider")
            .first()
        )

    @cached_property
    def _busy(self):
        busy = busy_patients(self.facts)
        if self.slot.filled_by_id:  # as explain_slot: the booking into this slot is not "busy"
            busy = {patient: a for patient, a in busy.items() if a.pk != self.slot.filled_by_id}
        return busy

    def _judge(self, entry, busy):
        return judge_for_slot(entry, self.slot, self.facts, self.rules, busy.get(entry.patient_id))

    def _explained(self, ids):
        if not ids:
            return []
        entries = WaitlistEntry.objects.filter(pk__in=ids).select_related(
            "patient__insurance_plan", "specialty", "preferred_location", "preferred_provider"
        )
        by_id = {entry.pk: entry for entry in entries}
        return [self._judge(by_id[pk], self._busy) for pk in ids]


# How many open slots a waiting patient's page judges them against, soonest first.
OPEN_SLOTS_JUDGED = 50


def explain_entry(entry, rules: Rules | None = None):
    """The open freed slots of the entry's specialty and how the entry fares in each, by the
    same `explain`: those that fit first (best score, then soonest), then the others with why."""
    rules = rules or Rules()
    slots = list(
        FreedSlot.objects.fillable()
        .filter(provider__specialty_id=entry.specialty_id)
        .select_related("provider__location", "appointment")
        .order_by("start", "pk")[:OPEN_SLOTS_JUDGED]
    )
    if not slots:
        return []
    busy = list(
        entry.patient.appointments.overlapping(slots[0].start, max(slot.end for slot in slots)).select_related(
            "provider"
        )
    )
    judged = []
    for slot in slots:
        busy_with = next((a for a in busy if a.start < slot.end and a.end > slot.start), None)
        judged.append((slot, explain(entry, SlotFacts.of(slot), rules, busy_with)))
    return sorted(
        judged, key=lambda pair: (not pair[1].eligible, -pair[1].score if pair[1].eligible else 0, pair[0].start)
    )


# Values of the rules' SQL that no slot supplies: a filter reading only these judges an entry alone.
SLOT_FREE_PARAMS = {"waiting", "cancelled"}


def slot_free_filters(rules, rule_table=table.RULES):
    """The active hard filters that depend on the patient alone (risk floor, opted out, still
    waiting): an entry failing one is never booked into any slot."""
    return [
        rule
        for rule in table.active_filters(rules, rule_table)
        if set(re.findall(r"%\((\w+)\)s", rule.filter.sql_for(rules))) <= SLOT_FREE_PARAMS
    ]


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
    order = ", ".join(
        f"e.{name}" + (" DESC" if descending else "") for name, descending in table.tie_breaks(rule_table)
    )
    bookable, kept_out, kept_out_count = _panel_entries(condition, order, size)
    reasons = [
        (
            entry,
            [
                rule.filter.refusal(Case(entry, None, rules))
                for rule in filters
                if not rule.filter.holds(Case(entry, None, rules))
            ],
        )
        for entry in kept_out
    ]
    return WaitlistPanel(bookable, reasons, kept_out_count)


def _panel_entries(condition, order, size):
    """Both lists' ids and how many are kept out, in one query; then their entries in one more."""
    waiting = (
        f"FROM {WaitlistEntry._meta.db_table} e JOIN {Patient._meta.db_table} p ON p.id = e.patient_id "
        "WHERE e.status = %(waiting)s AND "
    )
    sql = (
        f"SELECT * FROM (SELECT 1 AS part, e.id {waiting}{condition} ORDER BY {order} LIMIT {int(size)}) bookable "
        f"UNION ALL SELECT * FROM (SELECT 2, e.id {waiting}NOT ({condition}) "
        f"ORDER BY {order} LIMIT {int(size)}) kept_out "
        f"UNION ALL SELECT 3, COUNT(*) {waiting}NOT ({condition})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, _slot_free_values())
        rows = cursor.fetchall()
    ids = [pk for part, pk in rows if part != 3]
    entries = WaitlistEntry.objects.filter(pk__in=ids).select_related("patient", "specialty", "preferred_location")
    by_id = {entry.pk: entry for entry in entries} if ids else {}
    return (
        [by_id[pk] for part, pk in rows if part == 1],
        [by_id[pk] for part, pk in rows if part == 2],
        next(count for part, count in rows if part == 3),
    )


def _slot_free_values():
    return {"waiting": WaitlistEntry.Status.WAITING, "cancelled": Appointment.Status.CANCELLED}
