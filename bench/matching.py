"""How long ranking the waitlist for one freed slot takes, at several waitlist sizes (docs/reference.md, Numbers).

    .venv/bin/python bench/matching.py [--sizes 1000,10000,100000] [--slots 200] [--baseline FILE]
                                       [--risks learned|typed] [--history N]

For each size it builds (once, then reuses) the seed_demo clinic with that many waiting
entries and patients in its own PostgreSQL database ``backfill_bench_<size>``, then times
``rank_candidates`` for each of --slots freed slots (the clinic's future appointments, as
if cancelled), --rounds times each, after one warm-up pass. In the same run it times the
seed's approach (`rank_by_full_scan`: load every waiting entry, score it in Python) on a
sample of the slots, checks both pick the same best candidate, and prints the ratio. It
shows the candidate query's EXPLAIN ANALYZE and the indexes it uses.

--risks learned (the default) builds the clinic as seed_demo does: the no-show model trained on
its history sets every patient's risk, so the waitlist is ranked by learned risks on the
clinic's scale (docs/how-it-works.md, "No-show risk: one scale"); --risks typed keeps the
seeded risks typed and trains nothing, in its own database ``backfill_bench_<size>_typed``.

--history N adds N past appointments to each clinic (kept, missed and cancelled visits of its
waiting patients, before the demo's own 90 days of history, as many years back as the
clinic's providers need), so a run shows whether matching's cost grows with the past; a
later run with another N replaces them.

The clinic is built in a fresh database with its triggers off (session_replication_role
replica: no audit trail is written for it and its foreign keys are not re-checked row by
row), as one bulk load; the overlap exclusion constraints still hold, they are indexes.

Each size runs in a child process, because Django is configured for one database per
process.
"""

import argparse
import gc
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from datetime import time as dtime
from pathlib import Path

from environment import PYTHON, database_url, load_average, machine_facts, setup_django
from report import compare, load, percentiles, print_machine, print_table, save

# docs/reference.md, Numbers: (p95 ms, times faster than the full scan) per waitlist size.
TARGETS = {100_000: (2.0, 200), 1_000_000: (10.0, 200)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="waitlist sizes, comma-separated")
    parser.add_argument(
        "--slots", type=int, default=200, help="freed slots timed per size (at least 200 for the target)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the slots")
    parser.add_argument("--baseline-slots", type=int, help="slots the naive full scan is timed on (default: by size)")
    parser.add_argument(
        "--risks",
        choices=["learned", "typed"],
        default="learned",
        help="learned: the no-show model sets the risks (as seed_demo does); typed: as seeded, no model",
    )
    parser.add_argument(
        "--history", type=int, default=0, help="past appointments added before the demo's 90 days of history"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the clinics even if they exist")
    parser.add_argument("--baseline", help="a previous bench/results/matching-*.json to compare with")
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_size:
        return measure_one_size(args)
    rows, details = [], {}
    for size in [int(size) for size in args.sizes.split(",")]:
        child = run_child(size, args)
        rows.append(child["row"])
        details[size] = child["details"]
        machine = child["machine"]
    result = {
        "benchmark": "matching",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine,
        "config": {
            "slots": args.slots,
            "rounds": args.rounds,
            "risks": args.risks,
            "history": args.history,
            "broker": "none (in-process)",
        },
        "key": ["size"],
        "rows": rows,
        "details": details,
    }
    show(result)
    save(result)
    if args.baseline:
        compare(load(args.baseline), result)


def run_child(size, args):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [
            PYTHON,
            __file__,
            "--one-size",
            str(size),
            "--slots",
            str(args.slots),
            "--rounds",
            str(args.rounds),
            "--risks",
            args.risks,
            "--history",
            str(args.history),
            "--out",
            out.name,
        ]
        if args.baseline_slots:
            command += ["--baseline-slots", str(args.baseline_slots)]
        if args.rebuild:
            command.append("--rebuild")
        subprocess.run(command, check=True)
        return json.loads(Path(out.name).read_text())


def show(result):
    columns = [
        ("size", "waitlist"),
        ("history", "past appts"),
        ("p50_ms", "p50 ms"),
        ("p95_ms", "p95 ms"),
        ("p99_ms", "p99 ms"),
        ("max_ms", "max ms"),
        ("cpu_p50_ms", "cpu p50 ms"),
        ("cpu_p95_ms", "cpu p95 ms"),
        ("samples", "samples"),
        ("queries_per_slot", "queries/slot"),
        ("naive_p50_ms", "naive p50 ms"),
        ("naive_slots", "naive slots"),
        ("ratio_p50", "ratio"),
        ("same_best", "same best"),
        ("target_p95_ms", "target p95"),
        ("target_ratio", "target ratio"),
        ("meets_target", "ok"),
    ]
    print_table(result["rows"], columns, title="rank_candidates per freed slot (PostgreSQL, prepared statement, warm)")
    largest = result["rows"][-1]["size"]
    explain = result["details"][largest]["explain"]
    print(
        f"\nEXPLAIN ANALYZE of the candidate query at {largest:,} entries (custom plan; the prepared statement "
        f"ran {explain['prepared_plans']}):\n"
    )
    print(explain["plan"])
    print(f"\nindexes used: {', '.join(explain['indexes'])}")
    print_machine(
        result["machine"],
        broker="none (matching runs in-process)",
        load_average_at_end=result["details"][largest]["load_average_at_end"],
    )


# --- one size, in a child process ---------------------------------------------------------


def measure_one_size(args):
    size = args.one_size
    url = database_url(size if args.risks == "learned" else f"{size}_typed")
    setup_django(url)
    machine = machine_facts()
    build_clinic(size, args.slots, args.rebuild, args.risks, url)
    history = add_history(args.history)
    facts = freed_slots(args.slots)
    timings, cpu, queries = time_ranking(facts, args.rounds)
    naive, same_best = time_full_scan(facts, args.baseline_slots or default_baseline_slots(size))
    fast, slow, busy = percentiles(timings), percentiles(naive), percentiles(cpu)
    target_p95, target_ratio = TARGETS.get(size, (None, None))
    ratio = slow["p50"] / fast["p50"]
    row = {
        "size": size,
        "history": history,
        "p50_ms": fast["p50"],
        "p95_ms": fast["p95"],
        "p99_ms": fast["p99"],
        "max_ms": fast["max"],
        "cpu_p50_ms": busy["p50"],
        "cpu_p95_ms": busy["p95"],
        "samples": fast["n"],
        "queries_per_slot": max(queries),
        "naive_p50_ms": slow["p50"],
        "naive_p95_ms": slow["p95"],
        "naive_slots": slow["n"],
        "ratio_p50": ratio,
        "same_best": f"{same_best}/{slow['n']}",
        "target_p95_ms": target_p95,
        "target_ratio": target_ratio,
        "meets_target": None if target_p95 is None else fast["p95"] < target_p95 and ratio >= target_ratio,
    }
    details = {"explain": explain_candidate_query(facts[0]), "load_average_at_end": load_average()}
    Path(args.out).write_text(json.dumps({"row": row, "details": details, "machine": machine}, default=str))


def default_baseline_slots(size):
    # The full scan takes ~15 ms per 1,000 entries: keep each size's baseline under a minute.
    return max(3, min(50, 2_000_000 // size))


def build_clinic(size, slots, rebuild, risks, url):
    """The seed_demo clinic with `size` waiting entries and `risks` risks, unless this database already has it."""
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from scheduling.models import Appointment, NoShowModel
    from waitlist.models import WaitlistEntry

    ready = (
        WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING).count() == size
        and Appointment.objects.filter(start__gt=timezone.now()).count() >= slots
        and (NoShowModel.objects.in_use() is not None) == (risks == "learned")
    )
    if ready and not rebuild:
        print(f"[{size:,}] reusing the clinic in {connection.settings_dict['NAME']}", flush=True)
        return
    print(f"[{size:,}] building the seed_demo clinic with {size:,} waiting entries, {risks} risks...", flush=True)
    started = time.monotonic()
    fresh_database(url)
    with transaction.atomic():
        with connection.cursor() as cursor:  # a bulk load: no trigger per row (see the module's doc)
            cursor.execute("SET LOCAL session_replication_role = replica")
        call_command("seed_demo", waitlist=size, patients=size, risks=risks, verbosity=0)
    vacuum()
    print(f"[{size:,}] built in {time.monotonic() - started:.0f} s", flush=True)


def fresh_database(url):
    """Drop and recreate the benchmark's database, migrated: a rebuild never deletes row by row."""
    import psycopg
    from django.core.management import call_command
    from django.db import connections
    from environment import ensure_database

    connections.close_all()
    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ensure_database(url)
    call_command("migrate", verbosity=0)


def vacuum():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # fresh statistics and visibility map, as after autovacuum


# The past the demo's own history (seed_demo --history-days, 90) leaves alone: --history
# appointments start before this many days ago.
HISTORY_BEFORE_DAYS = 100
HISTORY_HOURS = range(8, 17)  # one visit an hour per provider, weekdays
HISTORY_STATUSES = [("completed", 80), ("no_show", 12), ("cancelled", 8)]  # percent


def add_history(count):
    """`count` past appointments for the clinic's patients, weekdays, one an hour per provider,
    going back from HISTORY_BEFORE_DAYS ago as far as they need; in one INSERT ... SELECT.
    Returns how many the clinic has now. Patients are spread so no patient has two at once."""
    from datetime import timedelta

    from django.db import connection, models, transaction
    from django.utils import timezone

    from clinic.models import Patient, Provider
    from scheduling.models import Appointment

    cutoff = timezone.localdate() - timedelta(days=HISTORY_BEFORE_DAYS)
    cutoff_start = timezone.make_aware(datetime.combine(cutoff, dtime.min))
    older = Appointment.objects.filter(start__lt=cutoff_start)
    if older.count() == count:
        return count
    providers = list(Provider.objects.order_by("pk").values_list("pk", flat=True))
    patients = Patient.objects.count()
    print(f"adding {count:,} past appointments...", flush=True)
    started = time.monotonic()
    per_day = len(providers) * len(HISTORY_HOURS)
    statuses = "".join(
        f" WHEN n %% 100 < {sum(p for _, p in HISTORY_STATUSES[: i + 1])} THEN '{name}'"
        for i, (name, _) in enumerate(HISTORY_STATUSES)
    )
    last_monday = cutoff - timedelta(days=cutoff.weekday() + 7)
    # Text columns that may not be NULL (reasons, who booked...) are left empty, as Django would.
    blank = [
        field.column
        for field in Appointment._meta.concrete_fields
        if isinstance(field, models.CharField) and not field.null and not field.choices
    ]
    blank_columns, blank_values = "".join(f', "{column}"' for column in blank), ", ''" * len(blank)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("DELETE FROM scheduling_appointment WHERE start < %s", [cutoff_start])
        # Slot n: day n / per_day back from last_monday (weekdays only), its hour and provider;
        # its patient steps through the patients by a stride prime to their number, so the
        # patients of one hour all differ.
        cursor.execute(
            f"""
            WITH slot AS (
                SELECT n, n / %(per_day)s AS day, (n %% %(per_day)s) / %(providers)s AS hour_index,
                       n %% %(providers)s AS provider_index
                FROM generate_series(0::bigint, %(count)s::bigint - 1) AS n
            ), timed AS (
                SELECT n, provider_index,
                       (%(friday)s::date - ((day / 5) * 7 + day %% 5)::int
                        + (%(first_hour)s + hour_index) * interval '1 hour') AT TIME ZONE %(zone)s AS start
                FROM slot
            )
            INSERT INTO scheduling_appointment
                (patient_id, provider_id, start, "end", status, source, created_at, updated_at, cancelled_at
                 {blank_columns})
            SELECT patients.ids[1 + (n * %(stride)s) %% %(patients)s], providers.ids[1 + provider_index],
                   start, start + interval '45 minutes', status, 'staff', start - interval '9 days',
                   start, CASE WHEN status = 'cancelled' THEN start - interval '2 days' END {blank_values}
            FROM timed,
                 LATERAL (SELECT CASE {statuses} END AS status) s,
                 (SELECT array_agg(id ORDER BY id) AS ids FROM clinic_patient) patients,
                 (SELECT %(provider_ids)s::bigint[] AS ids) providers
            """,
            {
                "per_day": per_day,
                "providers": len(providers),
                "count": count,
                "friday": last_monday + timedelta(days=4),
                "first_hour": HISTORY_HOURS[0],
                "zone": str(timezone.get_default_timezone()),
                "stride": stride_prime_to(patients),
                "patients": patients,
                "provider_ids": providers,
            },
        )
    vacuum()
    print(f"added in {time.monotonic() - started:.0f} s", flush=True)
    return older.count()


def stride_prime_to(number):
    """A step through `number` patients that visits each once per round: prime to it, and
    far from 1 so one patient's visits are spread over the years."""
    from math import gcd

    stride = max(1, number // 7 + 1)
    while gcd(stride, number) != 1:
        stride += 1
    return stride


def freed_slots(count):
    """SlotFacts for up to `count` future appointments, spread over the clinic, as if each were cancelled."""
    from django.utils import timezone

    from backfill.matching import SlotFacts
    from scheduling.models import Appointment

    future = list(
        Appointment.objects.filter(start__gt=timezone.now()).select_related("provider").order_by("start", "id")
    )
    step = max(1, len(future) // count)
    chosen = future[::step][:count]
    return [
        SlotFacts(a.provider_id, a.provider.specialty_id, a.provider.location_id, a.start, a.end, a.patient_id)
        for a in chosen
    ]


def time_ranking(facts, rounds):
    """Wall time of each call, and its CPU: this thread's and its PostgreSQL backend's (from
    the scheduler's accounting), which a busy shared machine does not inflate as it does the
    wall time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from backfill.matching import Rules, rank_candidates

    rules = Rules()
    for slot in facts:  # warm-up: prepares the statement on this connection, warms the caches
        rank_candidates(slot, rules)
    queries = []
    for slot in facts:
        with CaptureQueriesContext(connection) as captured:
            rank_candidates(slot, rules)
        queries.append(len(captured))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = f"/proc/{cursor.fetchone()[0]}/schedstat"
    gc.collect()
    timings, cpu = [], []
    for _ in range(rounds):
        for slot in facts:
            database, own = backend_seconds(backend), time.thread_time()
            started = time.perf_counter()
            rank_candidates(slot, rules)
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - own + backend_seconds(backend) - database) * 1000)
    return timings, cpu, queries


def backend_seconds(schedstat):
    """CPU time of the PostgreSQL backend (one thread), from the scheduler's accounting."""
    with open(schedstat) as stat:
        return int(stat.read().split()[0]) / 1e9


def time_full_scan(facts, count):
    """The seed's approach on `count` of the slots; also how often both pick the same best entry."""
    from backfill.matching import Rules, rank_by_full_scan, rank_candidates

    rules = Rules()
    sample = facts[:: max(1, len(facts) // count)][:count]
    timings, same = [], 0
    for slot in sample:
        started = time.perf_counter()
        full = rank_by_full_scan(slot, rules)
        timings.append((time.perf_counter() - started) * 1000)
        fast = rank_candidates(slot, rules)
        same += [c.entry.pk for c in full[:1]] == [c.entry.pk for c in fast[:1]]
    return timings, same


def explain_candidate_query(slot):
    """EXPLAIN ANALYZE of the query rank_candidates sends, and how its prepared statement was planned."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from backfill.matching import rank_candidates

    with CaptureQueriesContext(connection) as captured:
        rank_candidates(slot)
    # The candidate query, not a statement the connection sends first (the audit trail's context).
    sql = next(
        query["sql"] for query in captured.captured_queries if query["sql"].lstrip().startswith("WITH eligible")
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        plan = "\n".join(line for (line,) in cursor.fetchall())
        cursor.execute("SELECT sum(generic_plans), sum(custom_plans) FROM pg_prepared_statements")
        generic, custom = cursor.fetchone()
    indexes = sorted(
        set(re.findall(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan) (?:Backward )?(?:using|on) (\w+)", plan))
    )
    return {
        "sql": sql,
        "plan": plan,
        "indexes": indexes,
        "prepared_plans": f"{generic or 0} times on a generic plan, {custom or 0} on custom plans",
    }


if __name__ == "__main__":
    sys.exit(main())
