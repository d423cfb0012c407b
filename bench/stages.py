"""CPU per cancellation, stage by stage, without the queue: where the sustained rate goes.

    .venv/bin/python bench/stages.py [--count 500] [--waitlist 10000] [--profile] [--baseline FILE]

Builds bench/workload.py's clinic, then runs each stage of a cancellation in this one
process, one after the other, on the real code: `Appointment.cancel` (enqueueing to Redis
db 9, emptied after), the backfill job of each freed slot (`backfill.tasks.backfill_slot`,
called directly), and the send job (`clinic.email.send_queued_emails`). For each stage it
reports this process's CPU and its PostgreSQL backend's CPU (both read from the kernel's
per-thread run time, so other work on the machine does not count), and the SQL statements,
per cancellation. What the throughput run costs beyond the sum is the queue's (django-q2's
pusher, monitor and worker loop) and the scheduling of several processes.

--profile adds cProfile's top functions per stage.
"""

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

from environment import REDIS_URL, database_url, machine_facts, setup_django
from floor import measure_floor, thread_seconds, times_floor
from latency import show_floor
from report import compare, load, print_machine, print_table, save
from workload import build_clinic, clear_broker, receiving_webhooks

DATABASE = database_url("load")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500, help="cancellations")
    parser.add_argument("--waitlist", type=int, default=10_000, help="background waitlist entries")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions per stage")
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="one endpoint subscribed to every event, and a last stage sending them to a receiver on loopback",
    )
    parser.add_argument(
        "--floor", type=int, default=300, help="cancellations for the floor measured in the same run (bench/floor.py)"
    )
    parser.add_argument("--baseline", help="a previous bench/results/stages-*.json to compare with")
    args = parser.parse_args()
    floor = measure_floor(args.floor, args.waitlist, webhook=args.webhook) if args.floor else None
    # The receiver listens on loopback, which webhooks refuse unless told (clinic/addresses.py):
    # without this every delivery failed at its first attempt and the stage measured nothing.
    setup_django(DATABASE, REDIS_URL, **({"WEBHOOK_ALLOW_PRIVATE": "1"} if args.webhook else {}))
    machine = machine_facts()
    appointments = build_clinic(args.count, args.waitlist)
    clear_broker(REDIS_URL)
    with receiving_webhooks(args.webhook) as receiver:
        rows = run_stages(appointments, args.profile, receiver)
    for row in rows:
        row["times_floor"] = times_floor(row["cpu_ms"], floor)
    clear_broker(REDIS_URL)
    result = {
        "benchmark": "stages",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine,
        "config": {"count": args.count, "waitlist": args.waitlist, "webhook": args.webhook},
        "key": ["stage"],
        "rows": rows,
        "floor": floor,
    }
    print_table(
        rows,
        COLUMNS,
        title=f"CPU per cancellation by stage, {args.count} cancellations, no queue"
        + (", one webhook endpoint" if args.webhook else ""),
    )
    show_floor(floor)
    print_machine(machine, waitlist=args.waitlist)
    save(result)
    if args.baseline:
        compare(load(args.baseline), result)


def run_stages(appointments, profile, receiver=None):
    from backfill.models import FreedSlot
    from backfill.tasks import backfill_slot
    from clinic import webhooks
    from clinic.email import send_queued_emails
    from clinic.models import OutboundEmail

    count = len(appointments)
    stages = [
        ("cancel", lambda: [appointment.cancel("benchmark cancellation", by="bench") for appointment in appointments]),
        (
            "backfill job",
            lambda: [
                backfill_slot(slot_id)
                for slot_id in FreedSlot.objects.filter(appointment__in=appointments)
                .order_by("pk")
                .values_list("pk", flat=True)
            ],
        ),
        ("send job", send_queued_emails),
    ]
    if receiver:
        # The job as the webhooks' cluster runs it, over the whole backlog at once (the
        # latency run's passes are smaller, so each costs a little more per delivery).
        webhooks.SEND_SECONDS = 600
        stages.append(("webhook deliveries", webhooks.deliver))
    rows = []
    for name, stage in stages:
        rows.append(measure(name, stage, count, profile))
    total = {"stage": "total", **{key: round(sum(row[key] for row in rows), 2) for key in rows[0] if key != "stage"}}
    rows.append(total)
    if receiver:
        from clinic.models import WebhookDelivery

        left = WebhookDelivery.objects.exclude(status="delivered").count()
        if left:
            raise SystemExit(f"{left} webhook deliveries not delivered: the stage measured failures")
    filled = FreedSlot.objects.filter(appointment__in=appointments, status="backfilled").count()
    sent = OutboundEmail.objects.filter(status="sent").count()
    if filled != count or sent < count:
        raise SystemExit(f"expected {count} slots filled and emails sent, got {filled} and {sent}")
    return rows


def measure(name, stage, count, profile):
    from django.db import connection

    statements = []

    def count_statements(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU, not waiting on the database
    wall, own, database = time.perf_counter(), thread_seconds(os.getpid()), thread_seconds(backend)
    with connection.execute_wrapper(count_statements):
        if profiler:
            profiler.runcall(stage)
        else:
            stage()
    wall, own, database = (
        time.perf_counter() - wall,
        thread_seconds(os.getpid()) - own,
        thread_seconds(backend) - database,
    )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative")).print_stats(
            os.environ.get("BENCH_PROFILE_FILTER", ""), 30
        )
        print(f"\n--- {name}: cProfile, CPU time of this thread (profiling inflates it)\n{out.getvalue()}")
        if os.environ.get("BENCH_PROFILE_DUMP"):  # a directory: one pstats file per stage, for snakeviz or pstats
            profiler.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DUMP"], name.replace(" ", "-") + ".pstats"))
    # Prepared statements run on psycopg's own cursor, which Django's wrapper does not see.
    return {
        "stage": name,
        "python_ms": round(own * 1000 / count, 2),
        "postgres_ms": round(database * 1000 / count, 2),
        "cpu_ms": round((own + database) * 1000 / count, 2),
        "wall_ms": round(wall * 1000 / count, 2),
        "statements": round(len(statements) / count, 2),
    }


COLUMNS = [
    ("stage", "stage"),
    ("python_ms", "python ms"),
    ("postgres_ms", "postgres ms"),
    ("cpu_ms", "cpu ms"),
    ("times_floor", "x floor"),
    ("wall_ms", "wall ms"),
    ("statements", "statements"),
]

if __name__ == "__main__":
    sys.exit(main())
