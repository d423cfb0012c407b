"""A day's HL7 feed over one MLLP connection: messages applied per second and the ACK's p95.

    .venv/bin/python bench/hl7_feed_rate.py [--count 5000] [--providers 20] [--broker redis|orm]
        [--baseline FILE] [--port N]

(Not bench/hl7.py: run as a script, a file's own directory comes first on the import path,
so a bench/hl7.py would stand in for the python-hl7 library in every benchmark here.)

It starts `manage.py hl7_listen` (its own process, config.settings, PostgreSQL database
backfill_bench_hl7, the queue on Redis at BENCH_REDIS_URL, emptied before and after, as a
clinic with Redis runs; `--broker orm` puts it in PostgreSQL) and sends --count messages
over one connection with python-hl7's client, each after the previous one's ACK, as an
EHR's interface engine does: about 60% SIU^S12 new
bookings, 15% S14 changes of time, 15% S15 cancellations (each runs the cancellation's whole
path: the freed slot, its event, the patient's email queued; no qcluster runs, so the
backfill jobs wait on the broker), 10% ADT^A08 patient updates. It reports messages per
second and the time from sending a message to its ACK (p50/p95/p99); targets: 200 messages/s
and p95 under 50 ms. Every message must be answered AA. The CPU per message of the listener
and of PostgreSQL (the benchmark database's server processes) does not depend on what else
the machine runs as much as the clock does.
"""

import argparse
import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from environment import PYTHON, REDIS_URL, ROOT, database_url, django_environment, machine_facts, setup_django
from report import compare, load, percentiles, print_machine, print_table, save

TARGET_PER_SECOND = 200
TARGET_P95_MS = 50
SAMPLES = ROOT / "tests" / "data" / "hl7"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--providers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--broker", choices=["redis", "orm"], default="redis")
    parser.add_argument("--baseline", help="a previous bench/results/hl7-*.json to compare with")
    parser.add_argument("--port", type=int, default=0, help="the listener's port; default a free one")
    args = parser.parse_args()
    database = database_url("hl7")
    redis = REDIS_URL if args.broker == "redis" else None
    setup_django(database, redis)
    providers = a_clinic(args.providers)
    feed = list(a_days_feed(args.count, providers, random.Random(args.seed)))
    port = args.port or free_port()
    empty_queue(redis)
    listener = start_listener(database, redis, port)
    try:
        listener_before, postgres_before = process_cpu_ms(listener.pid), postgres_cpu_ms()
        timings, outcomes, elapsed = asyncio.run(send_all(port, feed))
        listener_ms = process_cpu_ms(listener.pid) - listener_before
        postgres_ms = sum(ms - postgres_before.get(pid, 0) for pid, ms in postgres_cpu_ms().items())
    finally:
        stop(listener)
        empty_queue(redis)
    row = {
        "messages": len(feed),
        "per_second": round(len(feed) / elapsed, 1),
        **{f"{name}_ms": round(value, 2) for name, value in percentiles(timings).items() if name != "n"},
        "not_aa": sum(count for code, count in outcomes.items() if code != "AA"),
        "listener_cpu_ms": round(listener_ms / len(feed), 2),
        "postgres_cpu_ms": round(postgres_ms / len(feed), 2),
    }
    row["meets_target"] = (
        row["per_second"] >= TARGET_PER_SECOND and row["p95_ms"] < TARGET_P95_MS and row["not_aa"] == 0
    )
    print_table(
        [row],
        [
            ("messages", "messages"),
            ("per_second", "msg/s"),
            ("p50_ms", "p50 ms"),
            ("p95_ms", "p95 ms"),
            ("p99_ms", "p99 ms"),
            ("max_ms", "max ms"),
            ("not_aa", "not AA"),
            ("listener_cpu_ms", "listener CPU ms/msg"),
            ("postgres_cpu_ms", "PostgreSQL CPU ms/msg"),
            ("meets_target", "meets target"),
        ],
        title=f"A day's HL7 feed over one connection (targets: {TARGET_PER_SECOND} msg/s, p95 < {TARGET_P95_MS} ms)",
    )
    machine = machine_facts()
    print_machine(machine, broker=args.broker, outcomes=dict(outcomes))
    result = {
        "benchmark": "hl7",
        "started_at": datetime.now().isoformat(),
        "machine": machine,
        "config": vars(args),
        "key": ["messages"],
        "rows": [row],
    }
    save(result)
    if args.baseline:
        compare(load(args.baseline), result)


def a_clinic(count):
    """A location, a specialty and `count` providers with the external ids the feed names;
    what earlier runs left of the feed (its appointments, patients and messages) goes."""
    from django_q.models import OrmQ

    from backfill.models import FreedSlot
    from clinic.models import Location, Patient, Provider, Specialty
    from integrations.hl7.models import Hl7Message
    from scheduling.models import Appointment

    Hl7Message.objects.all().delete()
    OrmQ.objects.all().delete()  # the backfill jobs earlier runs' cancellations asked for
    FreedSlot.objects.filter(appointment__patient__external_id__startswith="BENCH").delete()
    Appointment.objects.filter(patient__external_id__startswith="BENCH").delete()
    Patient.objects.filter(external_id__startswith="BENCH").delete()
    location, _ = Location.objects.get_or_create(
        external_id="BENCHLOC", defaults={"name": "Bench site", "time_zone": "America/New_York"}
    )
    specialty, _ = Specialty.objects.get_or_create(external_id="BENCHSPEC", defaults={"name": "Bench therapy"})
    codes = []
    for n in range(count):
        provider, _ = Provider.objects.get_or_create(
            external_id=f"BENCHP{n}",
            defaults={
                "name": f"Dr. Bench {n}",
                "email": f"bench{n}@clinic.example",
                "specialty": specialty,
                "location": location,
            },
        )
        codes.append(provider.external_id)
    return codes


def message(name, fields):
    import hl7

    parsed = hl7.parse("\r".join((SAMPLES / f"{name}.hl7").read_text().splitlines()))
    for key, value in fields.items():
        parsed[key] = value
    return str(parsed)


def a_days_feed(count, providers, rng, patients=500):
    """The messages in order: new bookings, and changes and cancellations of them. Every
    booking and every change of time takes a slot of its own, and no patient is booked twice
    at one time, so no message clashes."""
    first_day = (datetime.now() + timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)
    slots = (
        (
            providers[n % len(providers)],
            first_day + timedelta(days=n // (len(providers) * 16), minutes=30 * ((n // len(providers)) % 16)),
        )
        for n in itertools.count()
    )
    busy = defaultdict(set)  # MRN -> the starts of its appointments
    booked, sent_at = [], datetime.now() - timedelta(hours=1)
    for n in range(count):
        sent_at += timedelta(milliseconds=10)
        kind = rng.random()
        common = {"MSH.10": f"BENCH{n}", "MSH.7": sent_at.strftime("%Y%m%d%H%M%S.%f")[:18]}
        if kind < 0.6 or len(booked) < 10:
            provider, start = next(slots)
            mrn = next(
                f"BENCHM{k % patients}" for k in itertools.count(n) if start not in busy[f"BENCHM{k % patients}"]
            )
            appointment = {"id": f"BENCHA{n}", "mrn": mrn, "provider": provider, "start": start}
            busy[mrn].add(start)
            booked.append(appointment)
            yield message("siu_s12", {**common, **siu_fields(appointment)})
        elif kind < 0.75:
            moved = booked.pop(rng.randrange(len(booked)))
            provider, start = next(slot for slot in slots if slot[1] not in busy[moved["mrn"]])
            busy[moved["mrn"]] = busy[moved["mrn"]] - {moved["start"]} | {start}
            appointment = {**moved, "provider": provider, "start": start}
            booked.append(appointment)
            yield message("siu_s12", {**common, **siu_fields(appointment), "MSH.9": "SIU^S14^SIU_S12"})
        elif kind < 0.9:
            appointment = booked.pop(rng.randrange(len(booked)))
            busy[appointment["mrn"]].discard(appointment["start"])
            yield message("siu_s15", {**common, **siu_fields(appointment)})
        else:
            appointment = rng.choice(booked)
            yield message(
                "adt_a04",
                {**common, "MSH.9": "ADT^A08^ADT_A01", "PID.3": f"{appointment['mrn']}^^^NORTHSIDE^MR"},
            )


def siu_fields(appointment):
    return {
        "SCH.1": appointment["id"],
        "SCH.2": appointment["id"],
        "SCH.11": "",
        "PID.3": f"{appointment['mrn']}^^^NORTHSIDE^MR",
        "AIS.3": "BENCHSPEC",
        "AIS.4": appointment["start"].strftime("%Y%m%d%H%M%S"),
        "AIS.7": "15",
        "AIL.3": "BENCHLOC",
        "AIP.3": appointment["provider"],
    }


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_cpu_ms(pid):
    """User and system CPU of a process, all its threads, in ms (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def postgres_cpu_ms(own=False):
    """{pid: CPU ms} of the server processes serving the benchmark database, this one's
    aside unless `own` (bench/profile_hl7.py applies the feed on this process's connections)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            + ("" if own else " AND pid <> pg_backend_pid()")
        )
        pids = [pid for (pid,) in cursor.fetchall()]
    found = {}
    for pid in pids:
        try:
            found[pid] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6
        except OSError:  # ended meanwhile
            pass
    return found


def empty_queue(redis):
    """No qcluster runs: the backfill and email jobs the cancellations ask for are dropped."""
    if redis:
        import redis as redis_client

        redis_client.Redis.from_url(redis).flushdb()


def start_listener(database, redis, port):
    log = (ROOT / "bench" / "results" / "hl7-listener.out").open("w")
    process = subprocess.Popen(
        [PYTHON, "manage.py", "hl7_listen", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=django_environment(database, redis),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while "Listening for HL7" not in Path(log.name).read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the listener did not start:\n{Path(log.name).read_text()[-2000:]}")
        time.sleep(0.1)
    return process


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


async def send_all(port, feed):
    import hl7
    from hl7.mllp import open_hl7_connection

    from integrations.hl7.reading import value

    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    timings, outcomes = [], {}
    began = time.perf_counter()
    for text in feed:
        sent = time.perf_counter()
        writer.writeblock(text.encode("utf-8"))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readblock(), 30)
        timings.append((time.perf_counter() - sent) * 1000)
        code = value(hl7.parse(ack.decode("utf-8")), "MSA", 1)
        outcomes[code] = outcomes.get(code, 0) + 1
    elapsed = time.perf_counter() - began
    writer.close()
    await writer.wait_closed()
    return timings, outcomes, elapsed


if __name__ == "__main__":
    sys.exit(main())
