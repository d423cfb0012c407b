"""Who fits a freed slot, and in what order (SPEC 5).

The waitlist can hold a hundred thousand entries, so it is never loaded whole. The score
has only a few slot-dependent parts (the no-show risk tier and the location bonus), so the
eligible entries split into a handful of groups in which every entry gets the same
points. Inside a group the order the seed wants (declined reassignment first, then higher
risk, then longest waiting) is exactly the order of the `waitlist_rank` indexes, so each
group's best few come straight off an index. Merging the heads of the groups gives the
same ranking as scoring everyone (`rank_by_full_scan`, the seed's way, checked against it
in tests/test_matching_equivalence.py), at the cost of a few index probes in one query.
"""

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import product
from sqlite3 import sqlite_version_info

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone
from psycopg.types.numeric import Int8

from clinic.fields import span_mask, weekday_bit, windows_to_mask
from clinic.models import Patient
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry


@dataclass(frozen=True)
class SlotFacts:
    """What matching needs to know about a slot, in the clinic's local time."""

    provider_id: int
    specialty_id: int
    location_id: int
    start: datetime
    end: datetime
    freed_by_patient_id: int | None = None

    @classmethod
    def of(cls, slot):
        return cls(
            provider_id=slot.provider_id,
            specialty_id=slot.provider.specialty_id,
            location_id=slot.provider.location_id,
            start=slot.start,
            end=slot.end,
            freed_by_patient_id=slot.appointment.patient_id if slot.appointment_id else None,
        )

    @property
    def local_start(self):
        return timezone.localtime(self.start)

    @property
    def weekday_bit(self):
        return weekday_bit(self.local_start.weekday())

    @property
    def time_span_mask(self):
        return span_mask(self.local_start.time(), timezone.localtime(self.end).time())


@dataclass
class Candidate:
    entry: WaitlistEntry
    score: int
    breakdown: dict
    already_booked: bool = False

    @property
    def rank_key(self):
        entry = self.entry
        return (-self.score, not entry.declined_first, -entry.no_show_risk, entry.created_at, entry.pk)


@dataclass
class Rules:
    """The BACKFILL settings that decide who matches, read once per run."""

    config: dict = field(default_factory=lambda: dict(settings.BACKFILL))

    def __getattr__(self, name):
        try:
            return self.config[name]
        except KeyError:
            raise AttributeError(name) from None

    # The settings the candidate query's text depends on (it is built once per value).
    QUERY_SETTINGS = (
        "MIN_NO_SHOW_RISK", "MIN_SCORE", "HIGH_RISK_THRESHOLD", "HIGH_RISK_POINTS", "MEDIUM_RISK_THRESHOLD",
        "MEDIUM_RISK_POINTS", "SPECIALTY_POINTS", "AVAILABILITY_POINTS", "LOCATION_POINTS", "REQUIRE_AVAILABILITY",
        "TIME_OF_DAY_POINTS",
    )

    @property
    def matching_settings(self):
        return tuple((name, self.config[name]) for name in self.QUERY_SETTINGS)

    def risk_points(self, risk):
        if risk >= self.HIGH_RISK_THRESHOLD:
            return self.HIGH_RISK_POINTS
        if risk >= self.MEDIUM_RISK_THRESHOLD:
            return self.MEDIUM_RISK_POINTS
        return 0

    def risk_tiers(self):
        """(lowest risk, highest risk exclusive, points) for each tier that may match."""
        floor = self.MIN_NO_SHOW_RISK
        bounds = [(self.HIGH_RISK_THRESHOLD, None, self.HIGH_RISK_POINTS),
                  (self.MEDIUM_RISK_THRESHOLD, self.HIGH_RISK_THRESHOLD, self.MEDIUM_RISK_POINTS),
                  (0.0, self.MEDIUM_RISK_THRESHOLD, 0)]
        tiers = []
        for low, high, points in bounds:
            if high is not None and high <= floor:
                continue
            tiers.append((max(low, floor), high, points))
        return tiers


def score_entry(entry, slot: SlotFacts, rules: Rules):
    """The seed's score, by rule. Works on any entry, eligible or not (the naive baseline uses it)."""
    local_start = slot.local_start
    days_ok = not entry.available_days or local_start.strftime("%a").lower() in entry.available_days
    breakdown = {
        "no_show_risk": rules.risk_points(entry.no_show_risk),
        "specialty": rules.SPECIALTY_POINTS if entry.specialty_id == slot.specialty_id else 0,
        "availability": rules.AVAILABILITY_POINTS if days_ok else 0,
        "location": rules.LOCATION_POINTS if entry.preferred_location_id == slot.location_id else 0,
    }
    if rules.TIME_OF_DAY_POINTS:
        inside = bool(entry.time_windows) and _inside_windows(entry, slot)
        breakdown["time_of_day"] = rules.TIME_OF_DAY_POINTS if inside else 0
    return sum(breakdown.values()), breakdown


def _inside_windows(entry, slot):
    wanted = slot.time_span_mask
    return windows_to_mask(entry.time_windows) & wanted == wanted


# The candidate query is one SQL statement per slot: the eligible entries (SPEC 5's hard
# filters), then one arm per group reading that group's best few off the waitlist_rank
# indexes, glued with UNION ALL, then whether each candidate's patient is busy then.
# It is written in SQL because building it with the ORM cost 5-10 ms of Python per slot
# (bench/matching.py), several times the whole budget. Its text depends only on the
# settings, so it is built once; each slot only supplies values. `is_eligible` below is
# the same filter for one entry, in Python. The same SQL runs on SQLite and
# PostgreSQL (tests/test_matching_equivalence.py checks both against a full scan).

AVAILABLE_DAYS = "(e.available_days = 0 OR (e.available_days & %(weekday)s) = %(weekday)s)"
INSIDE_WINDOWS = "(e.time_windows <> 0 AND (e.time_windows & %(span)s) = %(span)s)"
ELIGIBLE = """e.specialty_id = %(specialty)s AND e.status = %(waiting)s AND NOT p.email_opt_out
    AND (e.earliest_date IS NULL OR e.earliest_date <= %(day)s) AND (e.latest_date IS NULL OR e.latest_date >= %(day)s)
    AND (e.preferred_provider_id IS NULL OR e.preferred_provider_id = %(provider)s) AND e.patient_id <> %(freed_by)s"""
# Candidate.rank_key's tie-breaks, which are also the order of the waitlist_rank indexes.
RANK_ORDER = ("-declined_first", "-no_show_risk", "created_at", "id")
TIE_BREAKS = "{t}.declined_first DESC, {t}.no_show_risk DESC, {t}.created_at, {t}.id"
# What a candidate's entry carries; other fields (e.g. `entry.patient`) load on access.
COLUMNS = ("id", "patient_id", "specialty_id", "preferred_location_id", "reason", "no_show_risk", "declined_first",
           "created_at")
CANDIDATES = """WITH eligible AS {inline} (
    SELECT {entry_columns}, e.available_days, e.time_windows
    FROM {entries} e JOIN {patients} p ON p.id = e.patient_id
    WHERE {eligible}
)
SELECT {candidate_columns}, c.match_group, EXISTS (
    SELECT 1 FROM {appointments} a
    WHERE a.patient_id = c.patient_id AND a.status <> %(cancelled)s AND a.start < %(end)s AND a."end" > %(start)s
) AS patient_busy
FROM ({arms}) c
ORDER BY c.match_score DESC, {candidate_order}
LIMIT %(pool)s"""
GROUP_ARM = """SELECT * FROM (
    SELECT e.*, {index} AS match_group, {score} AS match_score FROM eligible e
    WHERE {where} ORDER BY {entry_order} LIMIT %(pool)s
) g{index}"""


@dataclass(frozen=True)
class Group:
    """Eligible entries that all get the same points for a slot: an SQL condition and those points."""

    where: str
    breakdown: tuple  # (rule, points) pairs, in score_entry's order

    @property
    def score(self):
        return sum(points for _, points in self.breakdown)


def _splits(rules: Rules):
    """Each rule as (rule, alternatives): SQL conditions with their points that cover every entry."""
    tiers = []
    for low, high, points in rules.risk_tiers():
        where = f"e.no_show_risk >= {float(low)!r}"
        tiers.append((where if high is None else f"{where} AND e.no_show_risk < {float(high)!r}", points))
    yield "no_show_risk", tiers
    yield "specialty", [(None, rules.SPECIALTY_POINTS)]  # a hard filter: every candidate has it
    if rules.REQUIRE_AVAILABILITY or not rules.AVAILABILITY_POINTS:
        yield "availability", [(None, rules.AVAILABILITY_POINTS)]
    else:
        yield "availability", [(AVAILABLE_DAYS, rules.AVAILABILITY_POINTS), (f"NOT {AVAILABLE_DAYS}", 0)]
    if rules.LOCATION_POINTS:
        here = "e.preferred_location_id = %(location)s"
        elsewhere = "(e.preferred_location_id IS NULL OR e.preferred_location_id <> %(location)s)"
        yield "location", [(here, rules.LOCATION_POINTS), (elsewhere, 0)]
    else:
        yield "location", [(None, 0)]
    if rules.TIME_OF_DAY_POINTS:
        yield "time_of_day", [(INSIDE_WINDOWS, rules.TIME_OF_DAY_POINTS), (f"NOT {INSIDE_WINDOWS}", 0)]


def _groups(rules: Rules):
    """Every combination of the rules' alternatives that can reach MIN_SCORE, best first."""
    rules_and_alternatives = list(_splits(rules))
    names = [name for name, _ in rules_and_alternatives]
    groups = []
    for combination in product(*(alternatives for _, alternatives in rules_and_alternatives)):
        where = " AND ".join(f"({condition})" for condition, _ in combination if condition)
        group = Group(where or "1 = 1", tuple(zip(names, (points for _, points in combination))))
        if group.score >= rules.MIN_SCORE:
            groups.append(group)
    return sorted(groups, key=lambda group: -group.score)


@dataclass(frozen=True)
class CandidateQuery:
    sql: str
    groups: tuple


@lru_cache(maxsize=32)
def _candidate_query(matching_settings, vendor):
    rules = Rules(dict(matching_settings))
    eligible = ELIGIBLE
    if rules.MIN_NO_SHOW_RISK > 0:
        eligible += f" AND e.no_show_risk >= {float(rules.MIN_NO_SHOW_RISK)!r}"
    if rules.REQUIRE_AVAILABILITY:
        # SPEC 5: availability is required, not only scored.
        eligible += f" AND {AVAILABLE_DAYS} AND (e.time_windows = 0 OR (e.time_windows & %(span)s) = %(span)s)"
    groups = tuple(_groups(rules))
    arms = " UNION ALL ".join(
        GROUP_ARM.format(index=index, score=group.score, where=group.where, entry_order=TIE_BREAKS.format(t="e"))
        for index, group in enumerate(groups)
    )
    sql = CANDIDATES.format(
        inline=_inline_hint(vendor), eligible=eligible, arms=arms,
        entry_columns=", ".join(f"e.{column}" for column in COLUMNS),
        candidate_columns=", ".join(f"c.{column}" for column in COLUMNS), candidate_order=TIE_BREAKS.format(t="c"),
        entries=WaitlistEntry._meta.db_table, patients=Patient._meta.db_table, appointments=Appointment._meta.db_table,
    )
    return CandidateQuery(sql, groups)


def _inline_hint(vendor):
    """Keep the CTE a view, so each arm walks the index and stops after `pool` rows.

    Both databases materialise a CTE used more than once by default, which would read
    every eligible entry; SQLite understands the hint from 3.35 and inlined CTEs before.
    """
    if vendor == "sqlite" and sqlite_version_info < (3, 35):
        return ""
    return "NOT MATERIALIZED"


def rank_candidates(slot: SlotFacts, rules: Rules | None = None, pool: int | None = None):
    """The `pool` best eligible entries for the slot, best first, each with its score by rule.

    Entries scoring under MIN_SCORE are left out; candidates whose patient already has an
    appointment overlapping the slot are kept (so the match log shows them) but flagged.
    Each entry carries only the COLUMNS above.
    """
    rules = rules or Rules()
    query = _candidate_query(rules.matching_settings, connection.vendor)
    if not query.groups:
        return []
    params = {
        "specialty": slot.specialty_id, "provider": slot.provider_id, "location": slot.location_id,
        "day": slot.local_start.date(), "weekday": slot.weekday_bit, "span": slot.time_span_mask,
        "start": slot.start, "end": slot.end, "pool": pool or rules.CANDIDATE_POOL,
        "freed_by": slot.freed_by_patient_id or 0,  # ids start at 1: 0 excludes nobody
        "waiting": WaitlistEntry.Status.WAITING, "cancelled": Appointment.Status.CANCELLED,
    }
    candidates = []
    for entry, group_index, patient_busy in _candidate_rows(query.sql, params):
        group = query.groups[group_index]
        candidates.append(Candidate(entry, group.score, dict(group.breakdown), bool(patient_busy)))
    return candidates


def _candidate_rows(sql, params):
    """(entry, group index, patient busy) for each row of the candidate query, best first."""
    if connection.vendor != "postgresql" or connection.queries_logged:
        # Django's own cursor; also when queries are logged (DEBUG, query-count tests), so
        # the log shows the SQL with its values, which a prepared statement's does not.
        return [(entry, entry.match_group, entry.patient_busy) for entry in WaitlistEntry.objects.raw(sql, params)]
    # One parameter type per name, so each connection prepares the statement only once.
    params = {name: Int8(value) if isinstance(value, int) else value for name, value in params.items()}
    with _preparing_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(COLUMNS)
    return [(WaitlistEntry.from_db(connection.alias, COLUMNS, row[:width]), *row[width:]) for row in rows]


class PreparingCursor(psycopg.Cursor):
    """Binds parameters on the server and prepares what it runs (psycopg's own statement cache)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def _preparing_cursor():
    """A cursor on Django's connection whose statements PostgreSQL plans once per connection.

    Planning the candidate query took longer than running it (bench/matching.py), so it is
    prepared on its first run. Django's own statements are prepared after a few runs when
    POSTGRES_PREPARED_STATEMENTS is on (clinic/settings.py); with it off, Django binds
    client-side and leaves psycopg's threshold unset, and this sets one so high that
    nothing else is prepared. (Behind a transaction-pooling pgbouncer, prepared
    statements need pgbouncer >= 1.21 with max_prepared_statements.)
    """
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        connection.connection.prepare_threshold = 2**31
    return connection.make_cursor(PreparingCursor(connection.connection))


def rank_by_full_scan(slot: SlotFacts, rules: Rules | None = None):
    """The seed's approach: load every waiting entry and score it in Python.

    Too slow for a real waitlist; kept as the reference `rank_candidates` is checked
    against (tests/test_matching_equivalence.py) and as the benchmark's baseline.
    """
    rules = rules or Rules()
    busy = set(Appointment.objects.overlapping(slot.start, slot.end).values_list("patient_id", flat=True))
    candidates = []
    for entry in WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING).select_related("patient"):
        if not is_eligible(entry, slot, rules):
            continue
        score, breakdown = score_entry(entry, slot, rules)
        if score >= rules.MIN_SCORE:
            candidates.append(Candidate(entry, score, breakdown, already_booked=entry.patient_id in busy))
    return sorted(candidates, key=lambda c: c.rank_key)


def is_eligible(entry, slot: SlotFacts, rules: Rules):
    """SPEC 5's hard filters, one entry at a time (what the candidate query does in SQL).

    Needs `entry.patient` (opt-out); says nothing about the patient being busy then.
    """
    day = slot.local_start.date()
    return (
        entry.specialty_id == slot.specialty_id
        and not entry.patient.email_opt_out
        and (entry.earliest_date is None or entry.earliest_date <= day)
        and (entry.latest_date is None or entry.latest_date >= day)
        and entry.preferred_provider_id in (None, slot.provider_id)
        and entry.patient_id != slot.freed_by_patient_id
        and (rules.MIN_NO_SHOW_RISK <= 0 or entry.no_show_risk >= rules.MIN_NO_SHOW_RISK)
        and (not rules.REQUIRE_AVAILABILITY or _available(entry, slot))
    )


def _available(entry, slot: SlotFacts):
    days_ok = not entry.available_days or slot.local_start.strftime("%a").lower() in entry.available_days
    return days_ok and (not entry.time_windows or _inside_windows(entry, slot))
