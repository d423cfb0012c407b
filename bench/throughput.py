"""The highest cancellation rate this machine sustains for a minute with p95 under 250 ms (docs/reference.md, Numbers).

    .venv/bin/python bench/throughput.py [--rates 50,100,150] [--duration 60] [--workers 2] [--baseline FILE]

For each rate, a fresh clinic and a real qcluster on the Redis broker take rate x duration
cancellations at that rate (bench/workload.py). A rate is sustained when p95 stays under
250 ms, every slot is refilled, and the database shows no overlapping appointment and no
patient booked twice.
"""

import argparse
import sys
import time

from floor import measure_floor, times_floor
from latency import clean, show_floor
from report import compare, load, print_machine, print_table, save
from workload import run_child

TARGET_P95_MS = 250
TARGET_RATE = 100


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="50,100,150", help="cancellations per second, comma-separated")
    parser.add_argument("--duration", type=float, default=60, help="seconds at each rate")
    parser.add_argument("--workers", type=int, default=2, help="Q_WORKERS")
    parser.add_argument(
        "--hosts",
        type=int,
        default=1,
        help="qclusters sharing the database and broker, each with its own HOST_NAME (docs/operations.md)",
    )
    parser.add_argument("--waitlist", type=int, default=10_000, help="background waitlist entries")
    parser.add_argument(
        "--warmup", type=float, default=1, help="seconds at the rate before the measured ones, not counted"
    )
    parser.add_argument(
        "--webhook", type=int, default=0, help="1: one webhook endpoint subscribed to every event (as latency.py)"
    )
    parser.add_argument(
        "--floor", type=int, default=300, help="cancellations for the floor measured in the same run (bench/floor.py)"
    )
    parser.add_argument("--baseline", help="a previous bench/results/throughput-*.json to compare with")
    args = parser.parse_args()
    rows, details = [], []
    floor = measure_floor(args.floor, args.waitlist, webhook=bool(args.webhook)) if args.floor else None
    for rate in [float(rate) for rate in args.rates.split(",")]:
        child = run_child(
            broker="redis",
            rate=rate,
            count=int(rate * args.duration),
            workers=args.workers,
            waitlist=args.waitlist,
            warmup=int(rate * args.warmup),
            webhook=args.webhook,
            hosts=args.hosts,
        )
        row = child["row"]
        cpu = child["cpu_ms_per_cancellation"]
        row["cpu_ms"] = cpu["own"]  # driver + clusters + this run's PostgreSQL backends, as the floor counts
        row["times_floor"] = times_floor(row["cpu_ms"], floor)
        row["sustained"] = row["p95_ms"] < TARGET_P95_MS and clean(row) and row["rate_kept"]
        rows.append(row)
        details.append(
            {key: child[key] for key in ("statuses", "emails", "cpu_ms_per_cancellation", "load_average_at_end")}
        )
        print(f"{rate:g}/s: p95 {row['p95_ms']:.0f} ms, sustained: {row['sustained']}", flush=True)
    best = max((row["rate"] for row in rows if row["sustained"]), default=None)
    result = {
        "benchmark": "throughput",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": child["machine"],
        "config": {
            "duration_s": args.duration,
            "workers": args.workers,
            "hosts": args.hosts,
            "waitlist": args.waitlist,
            "broker": child["broker"],
            "webhook": bool(args.webhook),
        },
        "key": ["rate"],
        "rows": rows,
        "details": details,
        "highest_sustained_rate": best,
        "floor": floor,
    }
    show(result)
    save(result)
    if args.baseline:
        compare(load(args.baseline), result)


def show(result):
    print_table(
        result["rows"],
        COLUMNS,
        title=f"Sustained cancellations, {result['config']['duration_s']:g} s per rate, "
        f"{result['config']['broker']}, "
        f"{result['config'].get('hosts', 1)} host(s) x {result['config']['workers']} workers",
    )
    print_table(
        [
            {"rate": row["rate"], **detail["cpu_ms_per_cancellation"], "times_floor": row.get("times_floor")}
            for row, detail in zip(result["rows"], result["details"], strict=False)
        ],
        CPU_COLUMNS,
        title="CPU ms per cancellation, by process (postgres+other: the machine's CPU beyond the others)",
    )
    show_floor(result.get("floor"))
    best = result["highest_sustained_rate"]
    print(f"\nhighest sustained rate: {best or 'none'}/s (target {TARGET_RATE}/s with p95 < {TARGET_P95_MS} ms)")
    for row, detail in zip(result["rows"], result["details"], strict=False):
        print_machine({}, rate=row["rate"], load_average_at_end=detail["load_average_at_end"])
    print_machine(result["machine"], waitlist=result["config"]["waitlist"])


COLUMNS = [
    ("rate", "target/s"),
    ("achieved_rate", "achieved/s"),
    ("schedule_lag_p95_ms", "late p95 ms"),
    ("rate_kept", "rate kept"),
    ("count", "cancellations"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("backfilled", "filled"),
    ("not_backfilled", "unfilled"),
    ("settled_s", "drain s"),
    ("cancel_errors", "cancel errors"),
    ("cpu_ms", "own CPU ms"),
    ("times_floor", "x floor"),
    ("provider_overlaps", "provider overlaps"),
    ("patient_overlaps", "patient overlaps"),
    ("patients_booked_twice", "booked twice"),
    ("sustained", "ok"),
]
CPU_COLUMNS = [
    ("rate", "rate/s"),
    ("driver", "driver"),
    ("qcluster", "qcluster"),
    ("webhook_cluster", "webhooks' cluster"),
    ("receiver", "receiver"),
    ("redis", "redis"),
    ("postgres", "postgres"),
    ("own", "own"),
    ("postgres_and_other", "postgres+other"),
    ("machine", "machine"),
    ("times_floor", "x floor"),
]

if __name__ == "__main__":
    sys.exit(main())
