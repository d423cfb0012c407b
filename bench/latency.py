"""Cancellation committed to replacement booked, through a real qcluster (docs/reference.md, Numbers).

    .venv/bin/python bench/latency.py [--brokers redis,orm] [--count 500] [--rate 50]
                                      [--workers 2] [--poll 0.05] [--webhook 0,1] [--baseline FILE]

For each broker (Redis db 9, or django-q2's ORM broker on PostgreSQL) it starts a real
``qcluster``, cancels --count appointments at --rate per second through
`Appointment.cancel`, each with a waiting patient who matches, and reports the time from
each cancellation to its slot's replacement booking (see bench/workload.py). --workers
and --poll accept comma-separated lists to compare cluster settings in one run.
"""

import argparse
import sys
import time
from itertools import product

from floor import measure_floor, times_floor
from report import compare, load, print_machine, print_table, save
from workload import run_child

TARGET_P95_MS = {"redis": 100, "orm": 300}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default="redis,orm")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--workers", default="2", help="Q_WORKERS, or a comma-separated list to compare")
    parser.add_argument("--poll", default="0.05", help="ORM broker Q_POLL in s, or a comma-separated list")
    parser.add_argument("--waitlist", type=int, default=10_000, help="background waitlist entries")
    parser.add_argument(
        "--webhook",
        default="0",
        help="1: one webhook endpoint subscribed to every event (a receiver on loopback); 0,1 compares",
    )
    parser.add_argument("--warmup", type=int, default=50, help="cancellations before the measured ones, not counted")
    parser.add_argument(
        "--floor", type=int, default=300, help="cancellations for the floor measured in the same run (bench/floor.py)"
    )
    parser.add_argument("--baseline", help="a previous bench/results/latency-*.json to compare with")
    args = parser.parse_args()
    rows, details = [], []
    # The floor with the webhooks' delivery rows when any configuration has an endpoint.
    floor = measure_floor(args.floor, args.waitlist, webhook="1" in args.webhook.split(",")) if args.floor else None
    for broker, workers, poll, webhook in configurations(args):
        child = run_child(
            broker=broker,
            rate=args.rate,
            count=args.count,
            workers=workers,
            poll=poll,
            waitlist=args.waitlist,
            webhook=webhook,
            warmup=args.warmup,
        )
        target = TARGET_P95_MS[broker]
        cpu = child["cpu_ms_per_cancellation"]
        rows.append(
            {
                **child["row"],
                "cpu_ms": cpu["own"],
                "times_floor": times_floor(cpu["own"], floor),
                "target_p95_ms": target,
                "meets_target": child["row"]["p95_ms"] < target and clean(child["row"]) and child["row"]["rate_kept"],
            }
        )
        details.append(
            {
                key: child[key]
                for key in (
                    "broker",
                    "statuses",
                    "emails",
                    "webhooks",
                    "cpu_ms_per_cancellation",
                    "load_average_at_end",
                )
            }
        )
        print(
            f"{broker} workers={workers} poll={poll} webhook={webhook}: p95 {child['row']['p95_ms']:.0f} ms",
            flush=True,
        )
    result = {
        "benchmark": "latency",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": child["machine"],
        "config": {"count": args.count, "rate": args.rate, "waitlist": args.waitlist, "warmup": args.warmup},
        "key": ["broker", "workers", "poll_s", "webhook"],
        "rows": rows,
        "details": details,
        "floor": floor,
    }
    show(result)
    save(result)
    if args.baseline:
        compare(load(args.baseline), result)


def configurations(args):
    brokers = args.brokers.split(",")
    for broker, workers, webhook in product(brokers, args.workers.split(","), args.webhook.split(",")):
        for poll in args.poll.split(",") if broker == "orm" else [args.poll.split(",")[0]]:
            yield broker, int(workers), float(poll), int(webhook)


def clean(row):
    return not (
        row.get("cancel_errors")
        or row["provider_overlaps"]
        or row["patient_overlaps"]
        or row["patients_booked_twice"]
        or row["entries_vs_slots_mismatch"]
        or row["not_backfilled"]
    )


def show(result):
    print_table(
        result["rows"],
        COLUMNS,
        title=f"Cancellation to replacement booking, {result['config']['count']} "
        f"cancellations at {result['config']['rate']:g}/s",
    )
    print_table(
        [
            {
                "broker": row["broker"],
                "workers": row["workers"],
                "poll_s": row["poll_s"],
                "webhook": row.get("webhook"),
                "webhook_cluster": "-",
                "receiver": "-",
                **detail["cpu_ms_per_cancellation"],
                "backfill": round(
                    detail["cpu_ms_per_cancellation"]["machine"]
                    - detail["cpu_ms_per_cancellation"].get("receiver", 0),
                    1,
                ),
                "times_floor": row.get("times_floor"),
                "emails": detail["emails"],
                "webhooks": detail.get("webhooks") or "-",
            }
            for row, detail in zip(result["rows"], result["details"], strict=False)
        ],
        CPU_COLUMNS,
        title="CPU ms per cancellation, by process (postgres: this run's backends; own: driver + clusters + "
        "postgres, as the floor counts; postgres+other: the machine's CPU beyond the named processes, other "
        "people's work included; the receiver stands in for the EHR's machine)",
    )
    show_floor(result.get("floor"))
    for detail in result["details"]:
        print_machine({}, broker=detail["broker"], load_average_at_end=detail["load_average_at_end"])
    print_machine(result["machine"], waitlist=result["config"]["waitlist"])


def show_floor(floor):
    if floor:
        print(
            f"\nfloor (bench/floor.py, same run, {floor['count']} cancellations"
            f"{', one delivered row per event' if floor['webhook'] else ''}): {floor['cpu_ms']:.2f} ms CPU "
            f"per cancellation ({floor['python_ms']:.2f} python + {floor['postgres_ms']:.2f} postgres), "
            f"load average at its start {' '.join(str(x) for x in floor['load_average_at_start'])}"
        )


COLUMNS = [
    ("broker", "broker"),
    ("workers", "workers"),
    ("poll_s", "poll s"),
    ("webhook", "webhook"),
    ("achieved_rate", "rate/s"),
    ("schedule_lag_p95_ms", "late p95 ms"),
    ("rate_kept", "rate kept"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("backfilled", "filled"),
    ("not_backfilled", "unfilled"),
    ("cancel_p95_ms", "cancel p95 ms"),
    ("cancel_errors", "cancel errors"),
    ("cpu_ms", "own CPU ms"),
    ("times_floor", "x floor"),
    ("provider_overlaps", "provider overlaps"),
    ("patient_overlaps", "patient overlaps"),
    ("patients_booked_twice", "booked twice"),
    ("target_p95_ms", "target p95"),
    ("meets_target", "ok"),
]
CPU_COLUMNS = [
    ("broker", "broker"),
    ("workers", "workers"),
    ("poll_s", "poll s"),
    ("webhook", "webhook"),
    ("driver", "driver"),
    ("qcluster", "qcluster"),
    ("webhook_cluster", "webhooks' cluster"),
    ("redis", "redis"),
    ("postgres", "postgres"),
    ("own", "own"),
    ("postgres_and_other", "postgres+other"),
    ("receiver", "receiver"),
    ("machine", "machine"),
    ("backfill", "machine - receiver"),
    ("times_floor", "x floor"),
    ("stolen", "stolen by the host"),
    ("emails", "emails by status"),
    ("webhooks", "webhook deliveries"),
]

if __name__ == "__main__":
    sys.exit(main())
