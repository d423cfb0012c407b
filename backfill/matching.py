"""Who fits a freed slot, and in what order (docs/reference.md, Rules).

The waitlist can hold a hundred thousand entries, so it is never loaded whole. The score
has only a few slot-dependent parts (the no-show risk tier and the location bonus), so the
eligible entries split into a handful of groups in which every entry gets the same
points. Inside a group the order the seed wants (declined reassignment first, then higher
risk, then longest waiting) is exactly the order of the `waitlist_rank` indexes, so each
group's best few come straight off an index. Merging the heads of the groups gives the
same ranking as scoring everyone (`rank_by_full_scan`, the seed's way, checked against it
in tests/test_matching_equivalence.py), at the cost of a few index probes in one query.
"""

from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from sqlite3 import sqlite_version_info

import psycopg
from django.db import connection
from psycopg.types.numeric import Int8

from backfill import rules as table
from backfill.rules import Case, Rules, SlotFacts
from clinic.models import Patient
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry

__all__ = ["Candidate", "Rules", "SlotFacts", "is_eligible", "rank_by_full_scan", "rank_candidates", "score_entry"]


@dataclass
class Candidate:
    entry: WaitlistEntry
    score: int
    breakdown: dict
    already_booked: bool = False

    @property
    def rank_key(self):
        return table.rank_key(self.score, self.entry)


def score_entry(entry, slot: SlotFacts, rules: Rules, rule_table=table.RULES):
    """The score by rule, from the rules' Python side. Works on any entry, eligible or not."""
    return table.score(Case(entry, slot, rules), rule_table)


# The candidate query is one SQL statement per slot: the eligible entries (the rules' hard
# filters), then one arm per group reading that group's best few off the waitlist_rank
# indexes, glued with UNION ALL, then the rules' flags (is the patient busy then) for each.
# It is written in SQL because building it with the ORM cost 5-10 ms of Python per slot
# (bench/matching.py), several times the whole budget. Its text depends only on the
# settings, so it is built once; each slot only supplies values. The same SQL runs on
# SQLite and PostgreSQL (tests/test_matching_equivalence.py checks both against a full scan).

# The tie-breaks, which are also the order of the waitlist_rank indexes (tests/test_rules.py).
RANK_ORDER = table.rank_order()
# What a candidate's entry carries; other fields (e.g. `entry.patient`) load on access. A
# rule's tier SQL may read these and the entry's available_days and time_windows.
CARRIED = {"id", "patient_id", "specialty_id", "preferred_location_id", "reason"} | {
    name for name, _ in table.tie_breaks()
}
CANDIDATES = """WITH eligible AS {inline} (
    SELECT {entry_columns}, e.available_days, e.time_windows
    FROM {entries} e JOIN {patients} p ON p.id = e.patient_id
    WHERE {eligible}
)
SELECT {candidate_columns}, e.match_group{flags}
FROM ({arms}) e
ORDER BY e.match_score DESC, {candidate_order}
LIMIT %(pool)s"""
GROUP_ARM = """SELECT * FROM (
    SELECT e.*, {index} AS match_group, {score} AS match_score FROM eligible e
    WHERE {where} ORDER BY {entry_order} LIMIT %(pool)s
) g{index}"""


def _tie_break_sql(rule_table):
    return ", ".join(
        f"e.{name}" + (" DESC" if descending else "") for name, descending in table.tie_breaks(rule_table)
    )


def _columns(rule_table):
    """The carried columns in the model's field order, as Model.from_db needs positional values."""
    carried = CARRIED | {name for name, _ in table.tie_breaks(rule_table)}
    return tuple(f.attname for f in WaitlistEntry._meta.concrete_fields if f.attname in carried)


@dataclass(frozen=True)
class Group:
    """Eligible entries that all get the same points for a slot: an SQL condition and those points."""

    where: str
    breakdown: tuple  # (rule, points) pairs, in the table's order

    @property
    def score(self):
        return sum(points for _, points in self.breakdown)


def _groups(rules: Rules, rule_table=table.RULES):
    """Every combination of the rules' tiers that can reach MIN_SCORE, best first."""
    scoring = [(rule.name, rule.query_tiers(rules)) for rule in rule_table]
    scoring = [(name, tiers) for name, tiers in scoring if tiers]
    names = [name for name, _ in scoring]
    groups = []
    for combination in product(*(tiers for _, tiers in scoring)):
        where = " AND ".join(f"({tier.sql})" for tier in combination if tier.sql)
        group = Group(where or "1 = 1", tuple(zip(names, (tier.points for tier in combination), strict=False)))
        if group.score >= rules.MIN_SCORE:
            groups.append(group)
    return sorted(groups, key=lambda group: -group.score)


@dataclass(frozen=True)
class CandidateQuery:
    sql: str
    groups: tuple
    columns: tuple
    flags: tuple


def candidate_query(rules: Rules, rule_table=table.RULES):
    return _candidate_query(rules.matching_settings, connection.vendor, rule_table)


@lru_cache(maxsize=32)
def _candidate_query(matching_settings, vendor, rule_table):
    rules = Rules(dict(matching_settings))
    eligible = "\n    AND ".join(rule.filter.sql_for(rules) for rule in table.active_filters(rules, rule_table))
    flags = tuple(rule.name for rule in table.flags(rule_table))
    groups = tuple(_groups(rules, rule_table))
    arms = " UNION ALL ".join(
        GROUP_ARM.format(index=index, score=group.score, where=group.where, entry_order=_tie_break_sql(rule_table))
        for index, group in enumerate(groups)
    )
    columns = _columns(rule_table)
    sql = CANDIDATES.format(
        inline=_inline_hint(vendor),
        eligible=eligible,
        arms=arms,
        entry_columns=", ".join(f"e.{column}" for column in columns),
        candidate_columns=", ".join(f"e.{column}" for column in columns),
        candidate_order=_tie_break_sql(rule_table),
        flags="".join(f", {rule.filter.sql_for(rules)} AS flag_{rule.name}" for rule in table.flags(rule_table)),
        entries=WaitlistEntry._meta.db_table,
        patients=Patient._meta.db_table,
    )
    return CandidateQuery(sql, groups, columns, flags)


def _inline_hint(vendor):
    """Keep the CTE a view, so each arm walks the index and stops after `pool` rows.

    Both databases materialise a CTE used more than once by default, which would read
    every eligible entry; SQLite understands the hint from 3.35 and inlined CTEs before.
    """
    if vendor == "sqlite" and sqlite_version_info < (3, 35):
        return ""
    return "NOT MATERIALIZED"


def rank_candidates(slot: SlotFacts, rules: Rules | None = None, pool: int | None = None, rule_table=table.RULES):
    """The `pool` best eligible entries for the slot, best first, each with its score by rule.

    Entries scoring under MIN_SCORE are left out; candidates failing a flag rule (a patient
    who already has an appointment overlapping the slot) are kept, so the match log shows
    them, but flagged. Each entry carries only the query's columns.
    """
    rules = rules or Rules()
    query = candidate_query(rules, rule_table)
    if not query.groups:
        return []
    params = {**slot.query_params(), "pool": pool or rules.CANDIDATE_POOL}
    candidates = []
    for entry, group_index, flags in _candidate_rows(query, params):
        group = query.groups[group_index]
        candidates.append(Candidate(entry, group.score, dict(group.breakdown), not all(flags)))
    return candidates


def _candidate_rows(query, params):
    """(entry, group index, flag values) for each row of the candidate query, best first."""
    if connection.vendor != "postgresql" or connection.queries_logged:
        # Django's own cursor; also when queries are logged (DEBUG, query-count tests), so
        # the log shows the SQL with its values, which a prepared statement's does not.
        return [
            (entry, entry.match_group, tuple(getattr(entry, f"flag_{name}") for name in query.flags))
            for entry in WaitlistEntry.objects.raw(query.sql, params)
        ]
    # One parameter type per name, so each connection prepares the statement only once.
    params = {name: Int8(value) if isinstance(value, int) else value for name, value in params.items()}
    with connection.wrap_database_errors, _preparing_cursor() as cursor:
        cursor.execute(query.sql, params)
        rows = cursor.fetchall()
    width = len(query.columns)  # in the model's field order, as from_db takes positional values
    return [
        (WaitlistEntry.from_db(connection.alias, query.columns, row[:width]), row[width], row[width + 1 :])
        for row in rows
    ]


class PreparingCursor(psycopg.Cursor):
    """Binds parameters on the server and prepares what it runs (psycopg's own statement cache)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def _preparing_cursor():
    """A cursor on Django's connection whose statements PostgreSQL plans once per connection.

    Planning the candidate query took longer than running it (bench/matching.py), so it is
    prepared on its first run. Django's own statements are prepared after a few runs when
    POSTGRES_PREPARED_STATEMENTS is on (config/settings.py); with it off, Django binds
    client-side and leaves psycopg's threshold unset, and this sets one so high that
    nothing else is prepared. (Behind a transaction-pooling pgbouncer, prepared
    statements need pgbouncer >= 1.21 with max_prepared_statements.)
    """
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        connection.connection.prepare_threshold = 2**31
    # psycopg's own cursor, not Django's wrapper: the query only reads, so it needs none of the
    # execute wrappers (the audit trail's says who acts before any statement it cannot rule out
    # as a write, a CTE included: one more round trip per ranking); errors are still Django's.
    return PreparingCursor(connection.connection)


def rank_by_full_scan(slot: SlotFacts, rules: Rules | None = None, rule_table=table.RULES):
    """The seed's approach: load every waiting entry and check and score it in Python.

    Too slow for a real waitlist; kept as the reference `rank_candidates` is checked
    against (tests/test_matching_equivalence.py) and as the benchmark's baseline.
    """
    rules = rules or Rules()
    busy = busy_patients(slot)
    candidates = []
    for entry in WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING).select_related("patient"):
        case = Case(entry, slot, rules, busy.get(entry.patient_id))
        if not table.passes_filters(case, rule_table):
            continue
        score, breakdown = table.score(case, rule_table)
        if score >= rules.MIN_SCORE:
            flagged = any(not rule.filter.holds(case) for rule in table.flags(rule_table))
            candidates.append(Candidate(entry, score, breakdown, already_booked=flagged))
    return sorted(candidates, key=lambda c: table.rank_key(c.score, c.entry, rule_table))


def busy_patients(slot: SlotFacts):
    """{patient id: their active appointment overlapping the slot}."""
    overlapping = Appointment.objects.overlapping(slot.start, slot.end).select_related("provider").order_by("start")
    return {appointment.patient_id: appointment for appointment in reversed(overlapping)}


def is_eligible(entry, slot: SlotFacts, rules: Rules, rule_table=table.RULES):
    """The rules' hard filters, one entry at a time (what the candidate query does in SQL).

    Needs `entry.patient` (opt-out); says nothing about the patient being busy then.
    """
    return table.passes_filters(Case(entry, slot, rules), rule_table)
