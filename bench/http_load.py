"""Backfill served by `bin/serve` under API load, and docs/reference.md, Numbers end to end through the API.

    .venv/bin/python bench/http_load.py [--seconds 60] [--clients 16,32] [--count 500] [--rate 50]

It builds the ``backfill_bench_http`` clinic (seed_demo with a --waitlist of 2,000 and an
Integrator with an API token), empties Redis db 5 (BENCH_HTTP_REDIS_URL; not the other
benchmarks' db 9, so a latency run beside it keeps its queue) and starts ``bin/serve``
itself on a free port of the loopback: production mode with only what plain HTTP needs
turned off, the API throttle raised, everything else bin/serve's defaults (gunicorn
WEB_WORKERS x WEB_THREADS, Django's pool of DB_POOL_MAX_SIZE connections per process, a
qcluster on Redis). A set WEB_WORKERS, WEB_THREADS, DB_POOL_MAX_SIZE or Q_WORKERS reaches it.

Part A, load: --clients concurrent API clients (threads, one keep-alive connection and the
Integrator's token each) for --seconds each. Half their requests read (appointments of a
day, the waiting list, freed slots), a quarter create (a patient, then an appointment for
them at a far-future time no other request takes) and a quarter cancel an appointment they
created, whose slot the qcluster then backfills. An error is a connection failure or any
answer but 2xx and 409 (counted apart: a conflict is an answer). Meanwhile PostgreSQL's
sessions on the database (this script's own excepted) are counted every 0.2 s: the peak
must stay within the bound, WEB_WORKERS x DB_POOL_MAX_SIZE plus one per qcluster process.

Part B, docs/reference.md, Numbers end to end: --count appointments three weeks out, each with a waiting
patient who matches (bench/workload.py's clinic), cancelled through
POST /api/appointments/{id}/cancel/ at --rate per second (open loop, --drivers threads),
and the time from each cancellation to its replacement booking: from the request sent (the
target, < 150 ms p95), from the API's answer received, and from the cancellation committed
(bench/latency.py's measure). Timestamps are this machine's one clock.

Finally SIGTERM to bin/serve: how long bin/serve, and every process it started, took to exit.

(Not bench/http.py: run as `bench/<script>.py`, every benchmark has bench/ first on its
import path, where a file named http.py would hide the standard library's http package
from Django.)
"""

import argparse
import http.client
import io
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path

from environment import (
    RESULTS,
    ROOT,
    database_url,
    django_environment,
    load_average,
    machine_cpu_seconds,
    machine_facts,
    redis_version,
    setup_django,
)
from floor import measure_floor, times_floor
from latency import show_floor
from report import percentiles, print_machine, print_table, save
from workload import bench_patient, integrity, slot_starts, wait_for_slots

DATABASE = database_url("http")
DATABASE_NAME = DATABASE.rsplit("/", 1)[1]
REDIS_URL = os.environ.get("BENCH_HTTP_REDIS_URL", "redis://127.0.0.1:6379/5")
TARGET_P95_MS = 150  # docs/reference.md, Numbers: cancel through the API -> replacement booked, Redis, 50/s
STOP_WITHIN_S = 30  # docs/reference.md, Production
# This script's own PostgreSQL sessions carry this name, so the count leaves them out.
DRIVER_APPLICATION = "backfill-bench-driver"
# Plain HTTP on the loopback, said explicitly as bin/run does (production mode is the default).
LOOPBACK_HTTP = {
    "SECURE_SSL_REDIRECT": 0,
    "SESSION_COOKIE_SECURE": 0,
    "CSRF_COOKIE_SECURE": 0,
    "SECURE_HSTS_SECONDS": 0,
}
MAX_REQUESTS_PER_CLIENT = 100_000  # a bound besides --seconds
REQUEST_TIMEOUT_S = 30
FAR_FUTURE_DAYS = 365  # Part A's appointments: clear of seed_demo's 14 days and Part B's slots
APPOINTMENT_MINUTES = 30


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60, help="duration of each Part A load")
    parser.add_argument("--clients", default="16,32", help="concurrent API clients, comma-separated")
    parser.add_argument("--count", type=int, default=500, help="Part B cancellations")
    parser.add_argument("--rate", type=float, default=50, help="Part B cancellations per second")
    parser.add_argument("--drivers", type=int, default=8, help="Part B threads issuing cancellations")
    parser.add_argument("--waitlist", type=int, default=2000, help="background waitlist entries")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load, not measured, before Part A")
    parser.add_argument(
        "--floor", type=int, default=300, help="cancellations for the floor measured in the same run (bench/floor.py)"
    )
    args = parser.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime at start: {uptime}", flush=True)
    result = run(args)
    result["machine"]["uptime_at_start"] = uptime
    show(result)
    save(result)


def run(args):
    # Before bin/serve starts, so neither slows the other.
    floor = measure_floor(args.floor) if args.floor else None  # its 10,000 waiting, whatever Part B has
    setup_django(DATABASE, REDIS_URL, DB_POOL=0, PGAPPNAME=DRIVER_APPLICATION)
    machine = machine_facts()
    started = time.monotonic()
    token = build_clinic(args.waitlist)
    clear_redis()
    print(f"clinic built in {time.monotonic() - started:.0f} s; starting bin/serve", flush=True)
    sessions = SessionCounter().start()
    server = Server().start()
    try:
        print(
            f"bin/serve answering after {server.startup_s:.1f} s on port {server.port}; bound "
            f"{server.connection_bound} PostgreSQL connections",
            flush=True,
        )
        api = Api(server.port, token)
        lanes = Lanes()  # one for the whole run: no time is handed out twice
        run_clients(api, clients=4, seconds=args.warmup, lanes=lanes)
        rows = [
            load_row(api, clients, args.seconds, lanes, sessions, server)
            for clients in [int(n) for n in args.clients.split(",")]
        ]
        wait_for_open_slots(timeout=60)
        end_to_end = end_to_end_row(api, args, sessions, server, floor)
    finally:
        shutdown = server.stop()
        sessions.stop()
    return {
        "benchmark": "http",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine,
        "config": {
            "seconds": args.seconds,
            "count": args.count,
            "rate": args.rate,
            "drivers": args.drivers,
            "waitlist": args.waitlist,
            **server.config(),
        },
        "key": ["clients"],
        "rows": rows,
        "end_to_end": end_to_end,
        "shutdown": shutdown,
        "broker": redis_version(REDIS_URL) + f" (db {REDIS_URL.rsplit('/', 1)[1]})",
        "load_average_at_end": load_average(),
        "floor": floor,
    }


# --- the clinic ------------------------------------------------------------------------------


def build_clinic(waitlist):
    """seed_demo's clinic and an Integrator's API token; returns the token."""
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django_q.models import OrmQ, Task
    from rest_framework.authtoken.models import Token

    # Its summary names the demo's logins, which this benchmark does not use.
    call_command("seed_demo", reset=True, waitlist=waitlist, patients=waitlist, verbosity=0, stdout=io.StringIO())
    OrmQ.objects.all().delete()
    Task.objects.all().delete()
    integrator, _ = User.objects.get_or_create(username="bench-integrator")
    integrator.groups.set([Group.objects.get(name="Integrator")])  # made by migration backfill 0006
    Token.objects.filter(user=integrator).delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return Token.objects.create(user=integrator).key


def add_cancellable_appointments(count):
    """`count` appointments three weeks out, each with a waiting patient who matches it
    (as bench/workload.py builds them), in a shuffled order."""
    from clinic.models import Patient, Provider
    from scheduling.models import Appointment
    from waitlist.models import WaitlistEntry

    providers = list(Provider.objects.order_by("id"))
    leaving = Patient.objects.bulk_create([bench_patient(f"leaving{i}", risk=0.2) for i in range(count)])
    appointments = Appointment.objects.bulk_create(
        [
            Appointment(
                patient=patient,
                provider=providers[index % len(providers)],
                start=start,
                end=start + timedelta(minutes=45),
                status=Appointment.Status.SCHEDULED,
            )
            for index, (patient, start) in enumerate(zip(leaving, slot_starts(count, len(providers)), strict=False))
        ]
    )
    waiting = Patient.objects.bulk_create([bench_patient(f"waiting{i}", risk=0.9) for i in range(count)])
    WaitlistEntry.objects.bulk_create(
        [
            WaitlistEntry(
                patient=patient,
                specialty_id=appointment.provider.specialty_id,
                preferred_location_id=appointment.provider.location_id,
                ranking_risk=patient.risk_on_ranking_scale(),
            )
            for patient, appointment in zip(waiting, appointments, strict=False)
        ]
    )
    random.Random(7).shuffle(appointments)
    return [appointment.pk for appointment in appointments]


def clear_redis():
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()  # this benchmark's own db (the queue and the cache)


def wait_for_open_slots(timeout):
    """Let the cluster finish Part A's backfills before Part B measures its own."""
    from backfill.models import FreedSlot

    deadline = time.monotonic() + timeout
    while FreedSlot.objects.filter(status=FreedSlot.Status.OPEN).exists() and time.monotonic() < deadline:
        time.sleep(0.25)


# --- the server ------------------------------------------------------------------------------


class Server:
    """`bin/serve` in a session of its own, on a free port, its output in bench/results/logs/."""

    def __init__(self):
        self.port = free_port()
        self.env = django_environment(
            DATABASE,
            REDIS_URL,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            BIND=f"127.0.0.1:{self.port}",
            API_THROTTLE_RATE="100000/minute",
            STATIC_ROOT=RESULTS / "static-http",
            PYTHONUNBUFFERED=1,
            **LOOPBACK_HTTP,
        )
        for name in ("DB_POOL", "PGAPPNAME"):  # this script's own, not the server's
            self.env.pop(name, None)
        self.log = RESULTS / "logs" / "serve-http.log"
        self.groups = set()

    def start(self, timeout=120):
        self.log.parent.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        self.process = subprocess.Popen(
            [str(ROOT / "bin" / "serve")],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        while not (self._answers() and " running." in self.log.read_text()):
            if self.process.poll() is not None or time.monotonic() - began > timeout:
                self.stop()
                raise SystemExit(f"bin/serve did not start; see {self.log}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        self.startup_s = time.monotonic() - began
        self.processes = descendants(self.process.pid)
        self.groups = {self.process.pid} | {group for _, group, _ in self.processes}
        return self

    def _answers(self):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False

    @property
    def cluster_processes(self):
        return sum("qcluster" in command for _, _, command in self.processes)

    @property
    def web_workers(self):
        # The master is bin/serve's child; its workers are its children, in its group.
        return sum("gunicorn" in command for _, _, command in self.processes) - 1

    @property
    def connection_bound(self):
        return self.web_workers * int(self.env.get("DB_POOL_MAX_SIZE", 4)) + self.cluster_processes

    def config(self):
        return {
            "web_workers": self.web_workers,
            "web_threads": int(self.env.get("WEB_THREADS", 4)),
            "db_pool_max_size": int(self.env.get("DB_POOL_MAX_SIZE", 4)),
            "qcluster_processes": self.cluster_processes,
            "connection_bound": self.connection_bound,
        }

    def stop(self):
        """SIGTERM, as a process manager stops it; how long until it, then all it started, exited."""
        if not self.groups:  # it did not start: whatever it started so far
            self.groups = {self.process.pid} | {group for _, group, _ in descendants(self.process.pid)}
        began = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            returncode = self.process.wait(timeout=STOP_WITHIN_S + 10)
        except subprocess.TimeoutExpired:
            returncode = None
        exited = time.monotonic() - began
        while alive_in(self.groups) and time.monotonic() - began < STOP_WITHIN_S + 10:
            time.sleep(0.1)
        all_gone = time.monotonic() - began
        left = [(pid, command_line(pid)) for pid in alive_in(self.groups)]
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        return {
            "serve_exit_s": round(exited, 2),
            "all_processes_gone_s": round(all_gone, 2),
            "returncode": returncode,
            "left_behind": left,
            "ok": returncode == 0 and not left and all_gone < STOP_WITHIN_S,
        }


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes():
    """(pid, parent, group, state) of every process, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        found.append((int(stat.parent.name), int(fields[1]), int(fields[2]), fields[0]))
    return found


def descendants(pid):
    children = {}
    for child, parent, group, _ in processes():
        children.setdefault(parent, []).append((child, group))
    below, todo = [], [pid]
    while todo:
        for child, group in children.get(todo.pop(), []):
            below.append((child, group, command_line(child)))
            todo.append(child)
    return below


def command_line(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def alive_in(groups):
    return [pid for pid, _, group, state in processes() if group in groups and state != "Z"]


class SessionCounter:
    """PostgreSQL sessions on the benchmark's database, counted every 0.2 s in a thread."""

    QUERY = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name <> %s"

    def start(self):
        import psycopg

        self.connection = psycopg.connect(DATABASE, autocommit=True, application_name=DRIVER_APPLICATION)
        self.peak, self.running = 0, True
        self.thread = threading.Thread(target=self._count, daemon=True)
        self.thread.start()
        return self

    def _count(self):
        while self.running:
            sessions = self.connection.execute(self.QUERY, [DATABASE_NAME, DRIVER_APPLICATION]).fetchone()[0]
            self.peak = max(self.peak, sessions)
            time.sleep(0.2)

    def take_peak(self):
        """The peak since the last call."""
        peak, self.peak = self.peak, 0
        return peak

    def stop(self):
        self.running = False
        self.thread.join(timeout=5)
        self.connection.close()


# --- the clients -----------------------------------------------------------------------------


class Api:
    def __init__(self, port, token):
        self.port, self.token = port, token

    def client(self):
        return ApiClient(self.port, self.token)


class ApiClient:
    """One integrator's keep-alive connection; each call returns (status, body, ms)."""

    def __init__(self, port, token):
        self.port = port
        self.headers = {
            "Authorization": f"Token {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        self.connection = None

    def call(self, method, path, payload=None):
        body = json.dumps(payload) if payload is not None else None
        began = time.perf_counter()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
            self.connection.request(method, path, body=body, headers=self.headers)
            response = self.connection.getresponse()
            data = response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return None, f"{type(error).__name__}: {error}", (time.perf_counter() - began) * 1000
        ms = (time.perf_counter() - began) * 1000
        try:
            return status, json.loads(data) if data else None, ms
        except ValueError:
            return status, data[:200].decode(errors="replace"), ms

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Lanes:
    """Far-future times, each handed out once: (provider, start) never taken twice, so
    creates do not conflict with each other (nor with a backfill of a cancelled one)."""

    def __init__(self):
        from django.utils import timezone

        from clinic.models import Provider

        self.providers = list(Provider.objects.order_by("id").values_list("id", flat=True))
        first_day = timezone.localdate() + timedelta(days=FAR_FUTURE_DAYS)
        self.base = timezone.make_aware(datetime.combine(first_day, clock(0)))
        self.counter, self.lock = itertools.count(), threading.Lock()

    def take(self):
        with self.lock:
            index = next(self.counter)
        start = self.base + timedelta(minutes=APPOINTMENT_MINUTES * (index // len(self.providers)))
        return self.providers[index % len(self.providers)], start


class Tally:
    """What one load's requests answered, shared by its client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples = {}  # kind -> [ms]
        self.statuses = {}  # status -> count
        self.conflicts_by_kind = {}
        self.errors, self.conflicts, self.error_samples = 0, 0, []

    def record(self, kind, status, body, ms):
        with self.lock:
            self.samples.setdefault(kind, []).append(ms)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 409:
                self.conflicts += 1
                self.conflicts_by_kind[kind] = self.conflicts_by_kind.get(kind, 0) + 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{kind} {status}: {str(body)[:200]}")
            elif status is None or not 200 <= status < 300:
                self.errors += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{kind} {status}: {str(body)[:200]}")

    def all_ms(self):
        return [ms for samples in self.samples.values() for ms in samples]


def client_loop(api, lanes, index, deadline, tally, days):
    """One API client until the deadline: half reads, a quarter creates, a quarter cancels."""
    client, rng, mine = api.client(), random.Random(index), []

    def call(kind, method, path, payload=None):
        status, body, ms = client.call(method, path, payload)
        tally.record(kind, status, body, ms)
        if status is None:
            time.sleep(0.1)  # no server: retry, not spin
        return status, body

    for number in range(MAX_REQUESTS_PER_CLIENT):
        if time.monotonic() >= deadline:
            break
        draw = rng.random()
        if draw < 0.5:
            read(call, rng, days)
        elif draw < 0.75 or not mine:
            appointment = create(call, lanes, index, number)
            if appointment:
                mine.append(appointment)
        else:
            call("cancel", "POST", f"/api/appointments/{mine.pop(0)}/cancel/", {"reason": "bench"})
    client.close()


def read(call, rng, days):
    choice = rng.randrange(3)
    if choice == 0:
        call("list appointments", "GET", f"/api/appointments/?date={rng.choice(days)}")
    elif choice == 1:
        call("list waitlist", "GET", "/api/waitlist/?status=waiting")
    else:
        call("list freed slots", "GET", "/api/freed-slots/")


def create(call, lanes, index, number):
    status, patient = call(
        "create patient",
        "POST",
        "/api/patients/",
        {
            "first_name": "Http",
            "last_name": f"Client{index}",
            "email": f"http{index}-{number}@bench.example",
            "no_show_risk": 0.1,
        },
    )
    if status != 201:
        return None
    provider, start = lanes.take()
    status, appointment = call(
        "create appointment",
        "POST",
        "/api/appointments/",
        {
            "patient": patient["id"],
            "provider": provider,
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=APPOINTMENT_MINUTES)).isoformat(),
        },
    )
    return appointment["id"] if status == 201 else None


def run_clients(api, clients, seconds, lanes):
    from django.utils import timezone

    today = timezone.localdate()
    days = [(today + timedelta(days=offset)).isoformat() for offset in range(14)]  # seed_demo's days
    tally, deadline = Tally(), time.monotonic() + seconds
    began = time.monotonic()
    threads = [
        threading.Thread(target=client_loop, args=(api, lanes, index, deadline, tally, days))
        for index in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT_S + 10)
    return tally, time.monotonic() - began


def load_row(api, clients, seconds, lanes, sessions, server):
    sessions.take_peak()
    tally, elapsed = run_clients(api, clients, seconds, lanes)
    stats = percentiles(tally.all_ms())
    peak = sessions.take_peak()
    print(
        f"{clients} clients: {stats['n'] / elapsed:.0f} requests/s, p95 {stats['p95']:.0f} ms, "
        f"{tally.errors} errors, peak {peak} connections",
        flush=True,
    )
    for sample in tally.error_samples:
        print(f"  answered: {sample}", flush=True)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": stats["n"],
        "requests_per_s": stats["n"] / elapsed,
        "p50_ms": stats["p50"],
        "p95_ms": stats["p95"],
        "p99_ms": stats["p99"],
        "max_ms": stats["max"],
        "errors": tally.errors,
        "conflicts_409": tally.conflicts,
        "peak_connections": peak,
        "connection_bound": server.connection_bound,
        "ok": tally.errors == 0 and peak <= server.connection_bound,
        "by_kind": {
            kind: {
                **percentiles(samples),
                "count": len(samples),
                "conflicts_409": tally.conflicts_by_kind.get(kind, 0),
            }
            for kind, samples in tally.samples.items()
        },
        "statuses": {str(status): count for status, count in tally.statuses.items()},
        "error_samples": tally.error_samples,
    }


# --- Part B: docs/reference.md, Numbers through the API ---------------------------------------------------------


def end_to_end_row(api, args, sessions, server, floor):
    appointment_ids = add_cancellable_appointments(args.count)
    sessions.take_peak()
    # The machine's CPU while the cancellations run and their slots are filled, less this
    # driver's (it stands in for the EHR): bin/serve, PostgreSQL, Redis, and whatever else
    # ran on the machine then (compare the load averages).
    machine, driver = machine_cpu_seconds(), sum(os.times()[:2])
    sent, answered, elapsed = cancel_through_api(api, appointment_ids, args.rate, args.drivers)
    settled = wait_for_slots(appointment_ids, timeout=60 + args.count / 50)
    machine, driver = machine_cpu_seconds() - machine, sum(os.times()[:2]) - driver
    cpu_ms = round((machine - driver) * 1000 / args.count, 1)
    peak = sessions.take_peak()
    from_request, from_answer, from_commit, statuses = measure(appointment_ids, sent, answered)
    stats = {
        name: percentiles(samples)
        for name, samples in (("request", from_request), ("answer", from_answer), ("commit", from_commit))
    }
    failed = sum(1 for status, _, _ in answered.values() if status != 200)
    cancel_ms = percentiles([ms for _, ms, _ in answered.values()])
    filled = statuses.get("backfilled", 0)
    checks = integrity()
    clean = not any(checks.values()) and filled == args.count and failed == 0
    return {
        "rate": args.rate,
        "count": args.count,
        "achieved_rate": args.count / elapsed,
        "rate_kept": args.count / elapsed >= 0.98 * args.rate,
        "cpu_ms": cpu_ms,
        "driver_cpu_ms": round(driver * 1000 / args.count, 1),
        "times_floor": times_floor(cpu_ms, floor),
        "request_p50_ms": stats["request"]["p50"],
        "request_p95_ms": stats["request"]["p95"],
        "request_p99_ms": stats["request"]["p99"],
        "request_max_ms": stats["request"]["max"],
        "answer_p95_ms": stats["answer"]["p95"],
        "commit_p50_ms": stats["commit"]["p50"],
        "commit_p95_ms": stats["commit"]["p95"],
        "cancel_p50_ms": cancel_ms["p50"],
        "cancel_p95_ms": cancel_ms["p95"],
        "cancel_errors": failed,
        "backfilled": filled,
        "not_backfilled": args.count - filled,
        "settled_s": settled,
        "peak_connections": peak,
        "connection_bound": server.connection_bound,
        **checks,
        "target_p95_ms": TARGET_P95_MS,
        "statuses": statuses,
        "ok": stats["request"]["p95"] is not None
        and stats["request"]["p95"] < TARGET_P95_MS
        and clean
        and args.count / elapsed >= 0.98 * args.rate
        and peak <= server.connection_bound,
    }


def cancel_through_api(api, appointment_ids, rate, drivers):
    """POST each cancel at its time in a fixed schedule (open loop): when it was sent, and
    what the API answered in how long."""
    lock, next_index, sent, answered = threading.Lock(), [0], {}, {}
    began = time.monotonic() + 0.5

    def cancel_due():
        client = api.client()
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= len(appointment_ids):
                break
            time.sleep(max(0.0, began + index / rate - time.monotonic()))
            appointment_id = appointment_ids[index]
            sent[appointment_id] = time.time()
            status, _, ms = client.call(
                "POST", f"/api/appointments/{appointment_id}/cancel/", {"reason": "benchmark cancellation"}
            )
            answered[appointment_id] = (status, ms, time.time())
        client.close()

    threads = [threading.Thread(target=cancel_due) for _ in range(drivers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent, answered, time.monotonic() - began


def measure(appointment_ids, sent, answered):
    """ms from the request sent, from the answer received, and from the commit, to filled."""
    from collections import Counter

    from backfill.models import FreedSlot

    from_request, from_answer, from_commit, statuses = [], [], [], Counter()
    for slot in FreedSlot.objects.filter(appointment_id__in=appointment_ids).select_related("appointment"):
        statuses[slot.status] += 1
        if slot.filled_at:
            filled = slot.filled_at.timestamp()
            from_request.append((filled - sent[slot.appointment_id]) * 1000)
            # Negative when the booking committed before the API's answer reached the client.
            from_answer.append((filled - answered[slot.appointment_id][2]) * 1000)
            from_commit.append((filled - slot.appointment.cancelled_at.timestamp()) * 1000)
    statuses["no freed slot"] = len(appointment_ids) - sum(statuses.values())
    return from_request, from_answer, from_commit, dict(statuses)


# --- the report -----------------------------------------------------------------------------


def show(result):
    config = result["config"]
    print_table(
        result["rows"],
        LOAD_COLUMNS,
        title=(
            f"Part A: API clients for {config['seconds']:g} s each through bin/serve "
            f"({config['web_workers']} gunicorn "
            f"workers x {config['web_threads']} threads, pool {config['db_pool_max_size']} per worker, "
            f"{config['qcluster_processes']} qcluster processes)"
        ),
    )
    print_table(
        [
            {"clients": row["clients"], "kind": kind, **stats}
            for row in result["rows"]
            for kind, stats in sorted(row["by_kind"].items())
        ],
        KIND_COLUMNS,
        title="Part A by request",
    )
    row = result["end_to_end"]
    print_table(
        [row],
        END_TO_END_COLUMNS,
        title=(
            f"Part B: {row['count']} cancellations through POST /api/appointments/{{id}}/cancel/ "
            f"at {row['rate']:g}/s, "
            f"ms to the replacement booked"
        ),
    )
    print_table([result["shutdown"]], SHUTDOWN_COLUMNS, title="SIGTERM to bin/serve")
    show_floor(result.get("floor"))
    print_machine(
        result["machine"],
        broker=result["broker"],
        waitlist=config["waitlist"],
        load_average_at_end=result["load_average_at_end"],
    )


LOAD_COLUMNS = [
    ("clients", "clients"),
    ("seconds", "s"),
    ("requests", "requests"),
    ("requests_per_s", "requests/s"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("max_ms", "max ms"),
    ("errors", "errors"),
    ("conflicts_409", "409s"),
    ("peak_connections", "peak PG conns"),
    ("connection_bound", "bound"),
    ("ok", "ok"),
]
KIND_COLUMNS = [
    ("clients", "clients"),
    ("kind", "request"),
    ("count", "count"),
    ("p50", "p50 ms"),
    ("p95", "p95 ms"),
    ("p99", "p99 ms"),
    ("max", "max ms"),
    ("conflicts_409", "409s"),
]
END_TO_END_COLUMNS = [
    ("achieved_rate", "rate/s"),
    ("rate_kept", "rate kept"),
    ("request_p50_ms", "sent p50"),
    ("request_p95_ms", "sent p95"),
    ("request_p99_ms", "sent p99"),
    ("request_max_ms", "sent max"),
    ("answer_p95_ms", "answer p95"),
    ("commit_p50_ms", "commit p50"),
    ("commit_p95_ms", "commit p95"),
    ("cancel_p95_ms", "cancel call p95"),
    ("cancel_errors", "errors"),
    ("cpu_ms", "CPU ms"),
    ("times_floor", "x floor"),
    ("backfilled", "filled"),
    ("not_backfilled", "unfilled"),
    ("provider_overlaps", "provider overlaps"),
    ("patient_overlaps", "patient overlaps"),
    ("patients_booked_twice", "booked twice"),
    ("peak_connections", "peak PG conns"),
    ("connection_bound", "bound"),
    ("target_p95_ms", "target sent p95"),
    ("ok", "ok"),
]
SHUTDOWN_COLUMNS = [
    ("serve_exit_s", "bin/serve exited s"),
    ("all_processes_gone_s", "all processes gone s"),
    ("returncode", "exit status"),
    ("left_behind", "left behind"),
    ("ok", "ok (< 30 s)"),
]

if __name__ == "__main__":
    sys.exit(main())
