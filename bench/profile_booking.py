"""Profile the hot path: `book_best_candidate` on the seed_demo clinic with a big waitlist.

    .venv/bin/python bench/profile_booking.py [--size 100000] [--slots 100]

Uses bench/matching.py's clinic (``backfill_bench_<size>``, built if missing). Each run
cancels one future appointment and backfills its slot inside a transaction that is then
rolled back, so the clinic is unchanged and every run sees the same waitlist; nothing is
enqueued (on-commit work never runs). Prints the time per backfill and pyinstrument's
profile, and writes the profile as HTML under bench/results/.
"""

import argparse
import sys
import time

from environment import RESULTS, database_url, setup_django
from report import percentiles, print_table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--slots", type=int, default=100)
    args = parser.parse_args()
    setup_django(database_url(args.size))
    from matching import build_clinic

    build_clinic(args.size, args.slots, rebuild=False)
    appointments = future_appointments(args.slots)
    for appointment in appointments[:10]:  # warm-up
        backfill_and_roll_back(appointment)
    timings = [backfill_and_roll_back(appointment) for appointment in appointments]
    stats = percentiles(timings)
    print_table(
        [{"size": args.size, **stats}],
        [("size", "waitlist"), ("n", "backfills"), ("p50", "p50 ms"), ("p95", "p95 ms"), ("max", "max ms")],
        title="book_best_candidate (cancel + backfill in a rolled-back transaction; the cancel is not timed)",
    )
    profile(appointments, args.size)


def future_appointments(count):
    from datetime import timedelta

    from django.utils import timezone

    from scheduling.models import Appointment

    future = Appointment.objects.active().filter(start__gt=timezone.now() + timedelta(hours=2))
    return list(future.select_related("provider", "patient").order_by("start", "id")[:count])


def backfill_and_roll_back(appointment, profiler=None):
    """ms spent in book_best_candidate for the slot the appointment's cancellation frees."""
    from django.db import connection

    from backfill.booking import book_best_candidate
    from backfill.models import FreedSlot

    # One transaction rolled back at the end; autocommit off rather than an atomic block
    # around it, since the booking's own block is durable (nothing may wrap it).
    connection.set_autocommit(False)
    try:
        appointment.cancel("profiling", by="bench")
        slot = FreedSlot.objects.get(appointment=appointment)
        if profiler:
            profiler.start()
        started = time.perf_counter()
        filled = book_best_candidate(slot.pk)
        elapsed = (time.perf_counter() - started) * 1000
        if profiler:
            profiler.stop()
        if filled.status != FreedSlot.Status.BACKFILLED:
            print(f"slot of appointment {appointment.pk} ended {filled.status}")
    finally:
        connection.rollback()
        connection.set_autocommit(True)
    appointment.refresh_from_db()
    return elapsed


def profile(appointments, size):
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    for appointment in appointments:
        backfill_and_roll_back(appointment, profiler)
    print(profiler.output_text(unicode=False, color=False, short_mode=True))
    path = RESULTS / f"profile-booking-{size}.html"
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(profiler.output_html())
    print(f"written {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    sys.exit(main())
