"""Profile the HL7 feed's per-message path in one process: bench/hl7_feed_rate.py's feed,
applied by `integrations.hl7.inbound.receive_in_worker_thread` in a loop (no MLLP, no thread hop).

    .venv/bin/python bench/profile_hl7.py [--count 1000] [--top 40] [--sort tottime]

Uses the feed benchmark's database (backfill_bench_hl7 plus BENCH_DATABASE_SUFFIX) and Redis
(BENCH_REDIS_URL, emptied before and after). Prints the CPU per message of this process and of
PostgreSQL, then cProfile's top functions; writes the profile under bench/results/.
"""

import argparse
import cProfile
import pstats
import random
import sys
import time

from environment import REDIS_URL, RESULTS, database_url, setup_django
from hl7_feed_rate import a_clinic, a_days_feed, empty_queue, postgres_cpu_ms


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--providers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--no-profile", action="store_true", help="only the CPU per message")
    args = parser.parse_args()
    setup_django(database_url("hl7"), REDIS_URL)
    from integrations.hl7.inbound import Lookups, receive_in_worker_thread

    providers = a_clinic(args.providers)
    feed = [text.encode("utf-8") for text in a_days_feed(args.count, providers, random.Random(args.seed))]
    empty_queue(REDIS_URL)
    lookups = Lookups()
    # CPU time, not the clock: waiting for PostgreSQL is in its own column
    profiler = None if args.no_profile else cProfile.Profile(time.process_time)
    postgres_before, cpu_before, began = postgres_cpu_ms(own=True), time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    answers = [receive_in_worker_thread(block, "bench", lookups) for block in feed]
    if profiler:
        profiler.disable()
    cpu_ms = (time.process_time() - cpu_before) * 1000 / len(feed)
    elapsed = time.perf_counter() - began
    postgres_ms = sum(ms - postgres_before.get(pid, 0) for pid, ms in postgres_cpu_ms(own=True).items()) / len(feed)
    empty_queue(REDIS_URL)
    not_aa = sum(1 for ack in answers if not ack or "MSA|AA|" not in ack)
    print(
        f"{len(feed)} messages, {len(feed) / elapsed:.1f}/s, not AA {not_aa}; CPU per message: "
        f"this process {cpu_ms:.2f} ms{' (profiled)' if profiler else ''}, PostgreSQL {postgres_ms:.2f} ms"
    )
    if profiler:
        path = RESULTS / "profile_hl7.prof"
        profiler.dump_stats(path)
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
        print(f"written {path}")


if __name__ == "__main__":
    sys.exit(main())
