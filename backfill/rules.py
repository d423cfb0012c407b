"""The matching rules, each declared once (docs/reference.md, Rules).

A rule may have
- a hard filter: an SQL condition on the waitlist entry `e` and its patient `p` (the
  candidate query ANDs them), the same condition in Python (the full-scan reference,
  `is_eligible`, the explanation), and the sentence staff read when it fails;
- points: tiers, each an SQL condition, its Python twin, its points and its words; the
  tiers of a rule cover every entry, so the candidate query splits the waitlist into
  groups of equal score (backfill/matching.py);
- a tie-break role: a waitlist field and direction, at a position in the ranking after
  the score (the `waitlist_rank` indexes follow the same order);
- or be a flag: checked for every candidate but not filtered on, so the match log shows a
  candidate who fits but cannot be booked then (a patient already booked at that time).

Everything that reads rules (backfill/matching.py, backfill/explanation.py) reads RULES;
adding a rule is one entry here, its settings and its tests.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone

from clinic import risk_scale
from clinic.fields import WEEKDAYS, span_mask, weekday_bit, windows_to_mask
from clinic.models import Provider, takes_plan
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry

ACCEPTED_PLANS = Provider.accepted_insurance_plans.through
DAY_NAMES = ["Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays"]


@dataclass(frozen=True)
class SlotFacts:
    """What matching needs to know about a slot; its day and time of day are its location's."""

    provider_id: int
    specialty_id: int
    location_id: int
    start: datetime
    end: datetime
    freed_by_patient_id: int | None = None
    time_zone: str | None = None  # IANA name; None: the clinic's TIME_ZONE

    @classmethod
    def of(cls, slot):
        return cls(
            provider_id=slot.provider_id,
            specialty_id=slot.provider.specialty_id,
            location_id=slot.provider.location_id,
            start=slot.start,
            end=slot.end,
            freed_by_patient_id=slot.appointment.patient_id if slot.appointment_id else None,
            time_zone=slot.provider.location.time_zone,
        )

    @cached_property
    def zone(self):
        return ZoneInfo(self.time_zone) if self.time_zone else timezone.get_default_timezone()

    @cached_property
    def local_start(self):
        return self.start.astimezone(self.zone)

    @cached_property
    def local_end(self):
        return self.end.astimezone(self.zone)

    @property
    def weekday(self):
        return WEEKDAYS[self.local_start.weekday()]

    @property
    def weekday_bit(self):
        return weekday_bit(self.local_start.weekday())

    @property
    def time_span_mask(self):
        return span_mask(self.local_start.time(), self.local_end.time())

    @property
    def hours(self):
        return f"{self.local_start:%H:%M}–{self.local_end:%H:%M}"

    @cached_property
    def provider(self):
        """Read only by the Python side (reference, explanation), never by the candidate query."""
        return Provider.objects.get(pk=self.provider_id)

    @cached_property
    def accepted_plan_ids(self):
        """The insurance plans the slot's provider takes; empty: every plan."""
        return frozenset(
            ACCEPTED_PLANS.objects.filter(provider_id=self.provider_id).values_list("insuranceplan_id", flat=True)
        )

    def query_params(self):
        """The values the rules' SQL refers to, by name."""
        return {
            "specialty": self.specialty_id,
            "provider": self.provider_id,
            "location": self.location_id,
            "day": self.local_start.date(),
            "weekday": self.weekday_bit,
            "span": self.time_span_mask,
            "start": self.start,
            "end": self.end,
            "freed_by": self.freed_by_patient_id or 0,  # ids start at 1: 0 excludes nobody
            "waiting": WaitlistEntry.Status.WAITING,
            "cancelled": Appointment.Status.CANCELLED,
        }


@dataclass
class Rules:
    """The BACKFILL settings that decide who matches, read once per run."""

    config: dict = field(default_factory=lambda: dict(settings.BACKFILL))

    def __getattr__(self, name):
        try:
            return self.config[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def matching_settings(self):
        """The settings the candidate query's text depends on (it is built once per value)."""
        return tuple(
            sorted((name, value) for name, value in self.config.items() if isinstance(value, (int, float, str)))
        )


@dataclass(frozen=True)
class Case:
    """One waitlist entry against one slot: what a rule's Python side reads.

    `busy_with` is the patient's active appointment overlapping the slot, or None.
    """

    entry: WaitlistEntry
    slot: SlotFacts
    rules: Rules
    busy_with: Appointment | None = None


def always(case_or_rules):
    return True


@dataclass(frozen=True)
class Filter:
    """A hard filter: `sql` (text, or a function of Rules giving it) and `holds` say the same."""

    sql: str | Callable[[Rules], str]
    holds: Callable[[Case], bool]
    refusal: Callable[[Case], str]
    active: Callable[[Rules], bool] = always

    def sql_for(self, rules):
        return self.sql(rules) if callable(self.sql) else self.sql


@dataclass(frozen=True)
class Tier:
    """Points for the entries where `sql` / `holds` is true (sql None: every entry)."""

    sql: str | None
    holds: Callable[[Case], bool]
    points: int
    words: Callable[[Case], str]


@dataclass(frozen=True)
class Rule:
    name: str
    filter: Filter | None = None
    # The rule's tiers for these settings, covering every entry the filters let through;
    # [] when the rule gives no points (and is then left out of the breakdown).
    tiers: Callable[[Rules], list] = lambda rules: []
    # When this rule's filter is on, every candidate is in its first tier.
    first_tier_when_filtered: bool = False
    # (position in the ranking after the score, waitlist field, descending)
    tie_breaks: tuple = ()
    flag: bool = False

    def filter_active(self, rules):
        return self.filter is not None and self.filter.active(rules)

    def query_tiers(self, rules):
        """The tiers the candidate query splits on: as few as these settings allow."""
        tiers = self.tiers(rules)
        if not tiers:
            return []
        if self.first_tier_when_filtered and self.filter_active(rules):
            return [Tier(None, always, tiers[0].points, tiers[0].words)]
        if len({tier.points for tier in tiers}) == 1:
            return [Tier(None, always, tiers[0].points, tiers[0].words)]
        return tiers

    def tier_of(self, case):
        """The tier the entry is in, or None when it is in none (it fails a filter then)."""
        return next((tier for tier in self.tiers(case.rules) if tier.holds(case)), None)


# The helpers below keep each rule's SQL next to its Python twin.

AVAILABLE_DAYS = "(e.available_days = 0 OR (e.available_days & %(weekday)s) = %(weekday)s)"
INSIDE_WINDOWS = "(e.time_windows <> 0 AND (e.time_windows & %(span)s) = %(span)s)"
# clinic.models.takes_plan in SQL: self-pay patients see anyone; a provider with no plans listed takes every plan.
# clinic.models.REACHABLE in SQL: email not opted out of, or texts consented to with a number.
REACHABLE = "((p.email <> '' AND NOT p.email_opt_out) OR (p.sms_consent AND p.phone <> ''))"
INSURANCE_ACCEPTED = f"""(e.insurance_plan_id IS NULL
        OR NOT EXISTS (SELECT 1 FROM {ACCEPTED_PLANS._meta.db_table} ap WHERE ap.provider_id = %(provider)s)
        OR EXISTS (SELECT 1 FROM {ACCEPTED_PLANS._meta.db_table} ap
                   WHERE ap.provider_id = %(provider)s AND ap.insuranceplan_id = e.insurance_plan_id))"""
# The busy-patient check, one probe per candidate bounded by time, so its cost does not grow
# with the clinic's past appointments. On PostgreSQL it is the patient overlap exclusion
# constraint's own expression (scheduling migration 0002), so it reads that constraint's GiST
# index on (patient, time range) of active appointments; the status is written out, as a
# prepared statement's generic plan can use a partial index only for a literal. SQLite (the
# demo) reads the (patient, start) index. OFFSET 0 keeps PostgreSQL from turning the probe
# into a hashed scan of every active appointment, which it prefers while the table is small
# (8,780 rows: 10 ms under load, against 0.02 ms a probe). Both say: an active appointment of the patient that
# starts before the slot ends and ends after it starts.
PATIENT_FREE = {
    "postgresql": f"""NOT EXISTS (
        SELECT 1 FROM {Appointment._meta.db_table} a
        WHERE a.patient_id = e.patient_id AND a.status <> '{Appointment.Status.CANCELLED.value}'
          AND tstzrange(a."start", a."end", '[)') && tstzrange(%(start)s, %(end)s, '[)')
        OFFSET 0
    )""",
    "sqlite": f"""NOT EXISTS (
        SELECT 1 FROM {Appointment._meta.db_table} a
        WHERE a.patient_id = e.patient_id AND a.status <> '{Appointment.Status.CANCELLED.value}'
          AND a.start < %(end)s AND a."end" > %(start)s
    )""",
}


def _patient_free_sql(rules):
    return PATIENT_FREE["postgresql" if connection.vendor == "postgresql" else "sqlite"]


def _available_days(case):
    return not case.entry.available_days or case.slot.weekday in case.entry.available_days


def _inside_windows(case):
    wanted = case.slot.time_span_mask
    return bool(case.entry.time_windows) and windows_to_mask(case.entry.time_windows) & wanted == wanted


def _windows_words(entry):
    return ", ".join(window.replace("-", "–") for window in entry.time_windows)


def _on_off(setting, sql, holds, words, otherwise_sql=None, otherwise_words=None, optional=False):
    """Two tiers: the setting's points where the condition holds, none elsewhere.

    `optional`: with the setting at 0 the rule gives no points at all (not even a 0).
    """

    def tiers(rules):
        points = rules.config[setting]
        if optional and not points:
            return []
        return [
            Tier(sql, holds, points, words),
            Tier(otherwise_sql or f"NOT {sql}", lambda case: not holds(case), 0, otherwise_words or words),
        ]

    return tiers


def _risk_between(low, high):
    return lambda case: case.entry.ranking_risk >= low and (high is None or case.entry.ranking_risk < high)


def _risk_words(case):
    """A typed risk as it is; a learned one with where it stands: "no-show risk 0.31, in this
    clinic's highest fifth" (clinic/risk_scale.py). Needs `entry.patient`."""
    return f"no-show risk {case.entry.patient.no_show_risk_words(case.rules.config)}"


def _risk_refusal(case):
    patient = case.entry.patient
    if not patient.risk_is_learned:
        return f"no-show risk {patient.no_show_risk:.2f} is under the minimum {case.rules.MIN_NO_SHOW_RISK}"
    floor = risk_scale.quantile_words(case.rules.LEARNED_FLOOR_QUANTILE)
    return f"{_risk_words(case)}, is under the minimum for learned risks (this clinic's {floor})"


def risk_bands(rules):
    """(low, high, points) of the high, medium and low risk tiers on the ranking risk, from
    the floor MIN_NO_SHOW_RISK up (high None: no top; lower tiers cannot match).

    A typed risk is its own ranking risk; a learned one stands for where it ranks in the
    clinic (clinic/risk_scale.py): in the highest fifth it is at or above HIGH_RISK_THRESHOLD,
    so one set of tiers ranks both kinds.
    """
    floor = rules.MIN_NO_SHOW_RISK
    bounds = [
        (rules.HIGH_RISK_THRESHOLD, None, rules.HIGH_RISK_POINTS),
        (rules.MEDIUM_RISK_THRESHOLD, rules.HIGH_RISK_THRESHOLD, rules.MEDIUM_RISK_POINTS),
        (0.0, rules.MEDIUM_RISK_THRESHOLD, 0),
    ]
    return [(max(low, floor), high, points) for low, high, points in bounds if high is None or high > floor]


def _risk_tiers(rules):
    tiers = []
    for low, high, points in risk_bands(rules):
        sql = f"e.ranking_risk >= {float(low)!r}" + ("" if high is None else f" AND e.ranking_risk < {float(high)!r}")
        tiers.append(Tier(sql, _risk_between(low, high), points, _risk_words))
    return tiers


def _unreachable_words(patient):
    """Why no consented channel reaches the patient: "has opted out of email and not agreed to texts"."""
    email = "has opted out of email" if patient.email_opt_out else "has no email address"
    texts = "has no number for the texts they agreed to" if patient.sms_consent else "not agreed to texts"
    return f"{email} and {texts}"


def _hours(appointment, zone):
    return f"{appointment.start.astimezone(zone):%H:%M}–{appointment.end.astimezone(zone):%H:%M}"


def _location_name(location):
    return location.name if location else "no location"


RULES = (
    Rule(
        "waiting",
        Filter(
            "e.status = %(waiting)s",
            lambda case: case.entry.status == WaitlistEntry.Status.WAITING,
            lambda case: f"no longer waiting ({case.entry.get_status_display().lower()})",
        ),
    ),
    Rule(
        "no_show_risk",
        Filter(
            lambda rules: f"e.ranking_risk >= {float(rules.MIN_NO_SHOW_RISK)!r}",
            lambda case: case.entry.ranking_risk >= case.rules.MIN_NO_SHOW_RISK,
            _risk_refusal,
            # Docs/reference.md, Matching rules: 0 turns the filter off
            active=lambda rules: rules.MIN_NO_SHOW_RISK > 0,
        ),
        tiers=_risk_tiers,
        tie_breaks=((2, "ranking_risk", True),),
    ),
    Rule(
        "specialty",
        Filter(
            "e.specialty_id = %(specialty)s",
            lambda case: case.entry.specialty_id == case.slot.specialty_id,
            lambda case: f"waits for {case.entry.specialty.name}",
        ),
        tiers=_on_off(
            "SPECIALTY_POINTS",
            "e.specialty_id = %(specialty)s",
            lambda case: case.entry.specialty_id == case.slot.specialty_id,
            lambda case: f"waits for {case.entry.specialty.name}",
        ),
        first_tier_when_filtered=True,
    ),
    Rule(
        "availability",
        Filter(
            AVAILABLE_DAYS,
            _available_days,
            lambda case: f"not available on {DAY_NAMES[case.slot.local_start.weekday()]}",
            # Docs/reference.md, Matching rules: availability is required, not only scored
            active=lambda rules: rules.REQUIRE_AVAILABILITY,
        ),
        tiers=_on_off(
            "AVAILABILITY_POINTS",
            AVAILABLE_DAYS,
            _available_days,
            lambda case: f"available {DAY_NAMES[case.slot.local_start.weekday()]}",
            otherwise_words=lambda case: f"not available {DAY_NAMES[case.slot.local_start.weekday()]}",
        ),
        first_tier_when_filtered=True,
    ),
    Rule(
        "location",
        tiers=_on_off(
            "LOCATION_POINTS",
            "e.preferred_location_id = %(location)s",
            lambda case: case.entry.preferred_location_id == case.slot.location_id,
            lambda case: f"prefers {_location_name(case.entry.preferred_location)}",
            # NULL-safe, and the first condition left as is so it reads the waitlist_rank_by_location index
            otherwise_sql="(e.preferred_location_id IS NULL OR e.preferred_location_id <> %(location)s)",
        ),
    ),
    Rule(
        "time_of_day",
        Filter(
            "(e.time_windows = 0 OR (e.time_windows & %(span)s) = %(span)s)",
            lambda case: not case.entry.time_windows or _inside_windows(case),
            lambda case: f"only {_windows_words(case.entry)}",
            active=lambda rules: rules.REQUIRE_AVAILABILITY,
        ),
        tiers=_on_off(
            "TIME_OF_DAY_POINTS",
            INSIDE_WINDOWS,
            _inside_windows,
            lambda case: f"prefers {_windows_words(case.entry)}",
            otherwise_words=lambda case: f"prefers {_windows_words(case.entry) or 'no time of day'}",
            optional=True,
        ),
    ),
    Rule(
        "contact",
        Filter(
            REACHABLE,
            lambda case: case.entry.patient.is_reachable,
            lambda case: _unreachable_words(case.entry.patient),
        ),
    ),
    Rule(
        "earliest_date",
        Filter(
            "(e.earliest_date IS NULL OR e.earliest_date <= %(day)s)",
            lambda case: case.entry.earliest_date is None or case.entry.earliest_date <= case.slot.local_start.date(),
            lambda case: f"only from {case.entry.earliest_date:%a %d %b}",
        ),
    ),
    Rule(
        "latest_date",
        Filter(
            "(e.latest_date IS NULL OR e.latest_date >= %(day)s)",
            lambda case: case.entry.latest_date is None or case.entry.latest_date >= case.slot.local_start.date(),
            lambda case: f"only until {case.entry.latest_date:%a %d %b}",
        ),
    ),
    Rule(
        "preferred_provider",
        Filter(
            "(e.preferred_provider_id IS NULL OR e.preferred_provider_id = %(provider)s)",
            lambda case: case.entry.preferred_provider_id in (None, case.slot.provider_id),
            lambda case: f"waits for {case.entry.preferred_provider.name} only",
        ),
    ),
    Rule(
        "gave_up_slot",
        Filter(
            "e.patient_id <> %(freed_by)s",
            lambda case: case.entry.patient_id != case.slot.freed_by_patient_id,
            lambda case: "gave this time up",
        ),
    ),
    Rule(
        "insurance",
        Filter(
            INSURANCE_ACCEPTED,
            lambda case: takes_plan(case.entry.insurance_plan_id, lambda: case.slot.accepted_plan_ids),
            lambda case: f"{case.slot.provider.name} does not take {case.entry.patient.insurance_plan.name}",
        ),
    ),
    Rule("declined_reassignment", tie_breaks=((1, "declined_first", True),)),
    Rule("waiting_longest", tie_breaks=((3, "created_at", False), (4, "id", False))),
    Rule(
        "patient_free",
        Filter(
            _patient_free_sql,
            lambda case: case.busy_with is None,
            lambda case: (
                f"already booked {_hours(case.busy_with, case.slot.zone)} with {case.busy_with.provider.name}"
            ),
        ),
        flag=True,
    ),
)


def risk_points(entry, rules=None, table=RULES):
    """The points the no-show risk rule gives the entry (0 under the floor)."""
    rules = rules or Rules()
    tier = next(rule for rule in table if rule.name == "no_show_risk").tier_of(Case(entry, None, rules))
    return tier.points if tier else 0


def active_filters(rules, table=RULES):
    return [rule for rule in table if rule.filter_active(rules) and not rule.flag]


def flags(table=RULES):
    return [rule for rule in table if rule.flag]


def tie_breaks(table=RULES):
    """(field, descending) in ranking order, after the score."""
    return [(name, descending) for _, name, descending in sorted(tb for rule in table for tb in rule.tie_breaks)]


def rank_order(table=RULES):
    """The tie-breaks as ORM order_by() terms (the waitlist_rank indexes' order)."""
    return tuple(f"-{name}" if descending else name for name, descending in tie_breaks(table))


def rank_key(score, entry, table=RULES):
    """Score first, then the tie-breaks, as a sort key (smallest first)."""
    key = [-score]
    for name, descending in tie_breaks(table):
        value = getattr(entry, "pk" if name == "id" else name)
        key.append(-value if descending else value)
    return tuple(key)


def passes_filters(case, table=RULES):
    return all(rule.filter.holds(case) for rule in active_filters(case.rules, table))


def refusals(case, table=RULES):
    """The sentence of every hard filter and flag the entry fails, in table order."""
    return [
        rule.filter.refusal(case) for rule in table if rule.filter_active(case.rules) and not rule.filter.holds(case)
    ]


def score(case, table=RULES):
    """(total, {rule: points}) by the Python side of the tiers; an entry in no tier gets 0 for that rule."""
    breakdown = {}
    for rule in table:
        if rule.tiers(case.rules):
            tier = rule.tier_of(case)
            breakdown[rule.name] = tier.points if tier else 0
    return sum(breakdown.values()), breakdown


def breakdown_words(case, table=RULES):
    """{rule: "available Wednesdays: +20"} for every rule that scores."""
    words = {}
    for rule in table:
        tiers = rule.tiers(case.rules)
        if tiers:
            tier = rule.tier_of(case)
            words[rule.name] = f"{(tier or tiers[-1]).words(case)}: +{tier.points if tier else 0}"
    return words
