"""How long the staff explanation of one freed slot takes to answer its first page.

    .venv/bin/python bench/explain.py [--size 10000] [--slots 20] [--rounds 5] [--rebuild]

Builds (once, then reuses) the seed_demo clinic in its own PostgreSQL database
``backfill_bench_explain_<size>``, tops up one specialty until exactly --size entries wait
for it, and records --slots open freed slots of that specialty's providers. It then times
``GET /api/freed-slots/{id}/explain/`` (first page, through Django's whole stack: auth,
view, the explanation, serialization; no network) --rounds times per slot after one warm-up
pass, and prints the percentiles against the target: under 200 ms with 10,000 waiting entries.
"""

import argparse
import gc
import random
import sys
import time
from datetime import timedelta

from environment import database_url, load_average, machine_facts, setup_django
from report import percentiles, print_machine, print_table, save

TARGET_MS = {10_000: 200.0}  # the target: the first page of one slot's explanation


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000, help="waiting entries of the slot's specialty")
    parser.add_argument("--slots", type=int, default=20, help="freed slots explained")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the slots")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the clinic even if it exists")
    args = parser.parse_args()
    setup_django(
        database_url(f"explain_{args.size}"),
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        API_THROTTLE_RATE="1000000/minute",
    )
    machine = machine_facts()
    specialty = build_clinic(args.size, args.rebuild)
    slots = open_slots(specialty, args.slots)
    timings, first_page, total, queries = time_explanations(slots, args.rounds)
    stats = percentiles(timings)
    target = TARGET_MS.get(args.size)
    row = {
        "size": args.size,
        "slots": len(slots),
        "p50_ms": stats["p50"],
        "p95_ms": stats["p95"],
        "p99_ms": stats["p99"],
        "max_ms": stats["max"],
        "samples": stats["n"],
        "page_items": first_page,
        "items_in_all": total,
        "queries": queries,
        "target_ms": target,
        "meets_target": None if target is None else stats["p95"] < target,
    }
    result = {
        "benchmark": "explain",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine,
        "config": {"rounds": args.rounds},
        "key": ["size"],
        "rows": [row],
    }
    columns = [
        ("size", "waiting"),
        ("slots", "slots"),
        ("p50_ms", "p50 ms"),
        ("p95_ms", "p95 ms"),
        ("p99_ms", "p99 ms"),
        ("max_ms", "max ms"),
        ("samples", "samples"),
        ("page_items", "items/page"),
        ("items_in_all", "items in all"),
        ("queries", "queries/page"),
        ("target_ms", "target p95"),
        ("meets_target", "ok"),
    ]
    print_table(
        [row], columns, title="GET /api/freed-slots/{id}/explain/, first page (PostgreSQL, in-process client, warm)"
    )
    print_machine(machine, load_average_at_end=load_average())
    save(result)


def build_clinic(size, rebuild):
    """The seed_demo clinic, one specialty of which has exactly `size` waiting entries."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count

    from clinic.models import Patient, Specialty
    from waitlist.models import WaitlistEntry

    waiting = WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING)
    busiest = waiting.values("specialty").annotate(n=Count("id")).order_by("-n").first()
    if busiest and busiest["n"] == size and not rebuild:
        print(f"[{size:,}] reusing the clinic in {connection.settings_dict['NAME']}", flush=True)
        return Specialty.objects.get(pk=busiest["specialty"])
    print(f"[{size:,}] building the seed_demo clinic...", flush=True)
    started = time.monotonic()
    call_command("seed_demo", reset=True, patients=size, waitlist=min(size, 2000), verbosity=0)
    specialty = Specialty.objects.order_by("pk").first()
    rng = random.Random(12)
    have = set(waiting.filter(specialty=specialty).values_list("patient_id", flat=True))
    reasons = list(WaitlistEntry.Reason)
    entries = []
    for patient in Patient.objects.exclude(pk__in=have).order_by("pk")[: size - len(have)]:
        reason = rng.choice(reasons)
        entries.append(
            WaitlistEntry(
                patient=patient,
                specialty=specialty,
                preferred_location=patient.preferred_location,
                available_days=patient.available_days,
                time_windows=patient.preferred_times,
                reason=reason,
                created_at=patient.created_at - timedelta(minutes=rng.randint(0, 60 * 24 * 30)),
                ranking_risk=patient.risk_on_ranking_scale(),
                declined_first=reason == WaitlistEntry.Reason.DECLINED_REASSIGNMENT,
            )
        )
    WaitlistEntry.objects.bulk_create(entries, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(
        f"[{size:,}] built in {time.monotonic() - started:.0f} s; {specialty.name}: "
        f"{waiting.filter(specialty=specialty).count():,} waiting",
        flush=True,
    )
    return specialty


def open_slots(specialty, count):
    """Open freed slots for `count` of the specialty's future appointments (recorded, not cancelled:
    no backfill runs, and the explanation reads the waitlist as it is)."""
    from django.utils import timezone

    from backfill.models import FreedSlot
    from scheduling.models import Appointment

    future = list(
        Appointment.objects.filter(
            provider__specialty=specialty, start__gt=timezone.now() + timedelta(hours=2)
        ).order_by("start", "id")
    )
    chosen = future[:: max(1, len(future) // count)][:count]
    slots = []
    for appointment in chosen:
        slot, _ = FreedSlot.objects.get_or_create(
            appointment=appointment,
            defaults={
                "provider_id": appointment.provider_id,
                "start": appointment.start,
                "end": appointment.end,
                "reason": "benchmark",
            },
        )
        slots.append(slot)
    return slots


def time_explanations(slots, rounds):
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-explain", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    urls = [f"/api/freed-slots/{slot.pk}/explain/" for slot in slots]
    for url in urls:  # warm-up
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    body = client.get(urls[0]).json()
    statements = []  # counted by a wrapper: a request resets Django's own query log when it starts
    with connection.execute_wrapper(
        lambda execute, sql, params, many, context: statements.append(sql) or execute(sql, params, many, context)
    ):
        client.get(urls[0])
    gc.collect()
    timings = []
    for _ in range(rounds):
        for url in urls:
            started = time.perf_counter()
            client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
    return timings, len(body["results"]), body["count"], len(statements)


if __name__ == "__main__":
    sys.exit(main())
