"""One load run: cancel appointments at a fixed rate through the real code path while a
real ``qcluster`` backfills them, and measure cancellation to replacement booking.

    .venv/bin/python bench/workload.py --broker redis --rate 50 --count 500 [--workers 2] [--poll 0.05]

bench/latency.py and bench/throughput.py run this in a child process per configuration
(Django is configured for one broker per process) and read back the JSON it writes.

The clinic: seed_demo's clinic with a background waitlist of --waitlist entries, plus
--count appointments three weeks out (clear of seed_demo's), each on a provider whose
specialty has a waiting patient who matches it (high risk, any day, that location). The
appointments are cancelled in a shuffled order by --threads driver threads, on a fixed
schedule (--rate per second, open loop: a slow cancellation does not slow the schedule),
each with `Appointment.cancel`, as staff, the API and patient links do.

Latency is `FreedSlot.filled_at - Appointment.cancelled_at`: both are taken inside their
transactions just before commit, by two processes on the same clock.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from datetime import time as clock
from pathlib import Path

from environment import (
    PYTHON,
    REDIS_URL,
    RESULTS,
    ROOT,
    database_url,
    django_environment,
    load_average,
    machine_facts,
    redis_version,
    setup_django,
)
from report import percentiles

DATABASE = database_url("load")
SLOT_MINUTES = 45
FIRST_DAY = 21  # seed_demo books the next 14 days; these slots stay clear of them


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", choices=["redis", "orm"], required=True)
    parser.add_argument("--rate", type=float, required=True, help="cancellations per second")
    parser.add_argument("--count", type=int, required=True, help="cancellations")
    parser.add_argument("--workers", type=int, default=2, help="qcluster worker processes (Q_WORKERS)")
    parser.add_argument("--poll", type=float, default=0.05, help="ORM broker poll interval in s (Q_POLL)")
    parser.add_argument("--waitlist", type=int, default=10_000, help="background waitlist entries")
    parser.add_argument("--threads", type=int, default=4, help="driver threads issuing cancellations")
    parser.add_argument(
        "--hosts",
        type=int,
        default=1,
        help="qclusters, each with a HOST_NAME of its own, sharing the database and broker",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=50,
        help="cancellations before the measured ones, at the same rate, not counted (0: none)",
    )
    parser.add_argument(
        "--webhook",
        type=int,
        default=0,
        help="1: one webhook endpoint subscribed to every event, a receiver on loopback (docs/reference.md, Events)",
    )
    parser.add_argument(
        "--profile", help="directory for py-spy profiles (collapsed stacks) of the driver and the qcluster"
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    Path(args.out).write_text(json.dumps(run(args), default=str))


def run(args):
    redis = REDIS_URL if args.broker == "redis" else None
    # Each driver thread holds a pooled connection from its first cancellation to its last,
    # and this thread holds one too: a pool smaller than that made a driver thread wait
    # DB_POOL_TIMEOUT and fail (PoolTimeout), a failure of the bench, not of the product.
    setup_django(DATABASE, redis, Q_WORKERS=args.workers, Q_POLL=args.poll, DB_POOL_MAX_SIZE=args.threads + 2)
    machine = machine_facts()
    appointments = build_clinic(args.count + args.warmup, args.waitlist)
    warmup, appointments = appointments[: args.warmup], appointments[args.warmup :]
    clear_broker(redis)
    with (
        receiving_webhooks(args.webhook) as receiver,
        qcluster(args, redis) as cluster,
        webhook_cluster(args, redis) as senders,
    ):
        processes = {
            "receiver": receiver.pid if receiver else None,
            "webhook_cluster": senders.pid if senders else None,
        }
        if warmup:
            warm_up(warmup, args, receiver)
        before = cpu_seconds(cluster.pids, processes)
        backends = BackendSampler().start()
        with profiled(args.profile, cluster.process.pid):
            driven = drive(appointments, args.rate, args.threads)
        settled = wait_for_slots([a.pk for a in appointments], timeout=60 + args.count / 50)
        webhooks = wait_for_deliveries(receiver, timeout=60 + args.count / 50)
        cpu = {
            name: round((used - before.get(name, 0.0)) * 1000 / args.count, 1)
            for name, used in cpu_seconds(cluster.pids, processes).items()
        }
        cpu["postgres"] = round(backends.stop() * 1000 / args.count, 1)
        # What the floor counts too (its process and its backends), here for the whole product:
        # the driver, the clusters and the run's PostgreSQL backends; not Redis (shared), not the receiver.
        cpu["own"] = round(cpu["driver"] + cpu["qcluster"] + cpu.get("webhook_cluster", 0) + cpu["postgres"], 1)
        cpu["postgres_and_other"] = round(
            cpu["machine"]
            - cpu["driver"]
            - cpu["qcluster"]
            - cpu["redis"]
            - cpu.get("webhook_cluster", 0)
            - cpu.get("receiver", 0),
            1,
        )
        emails = email_backlog()
    latencies, statuses = measure([a.pk for a in appointments])
    stats = percentiles(latencies)
    row = {
        "broker": args.broker,
        "rate": args.rate,
        "count": args.count,
        "workers": args.workers,
        "hosts": args.hosts,
        "poll_s": args.poll if args.broker == "orm" else None,
        "achieved_rate": driven["achieved_rate"],
        "p50_ms": stats["p50"],
        "p95_ms": stats["p95"],
        "p99_ms": stats["p99"],
        "max_ms": stats["max"],
        "backfilled": statuses.get("backfilled", 0),
        "not_backfilled": args.count - statuses.get("backfilled", 0),
        "schedule_lag_p95_ms": driven["lag_p95_ms"],
        "rate_kept": rate_kept(driven, args.rate),
        "cancel_p95_ms": driven["cancel_p95_ms"],
        "cancel_errors": driven["cancel_errors"],
        "first_cancel_error": driven["first_error"],
        "settled_s": settled,
        **integrity(),
    }
    broker = redis_version(redis) + " (db 9)" if redis else f"django-q2 ORM broker on PostgreSQL, poll {args.poll} s"
    row["webhook"] = bool(args.webhook)
    row["warmup"] = args.warmup
    return {
        "row": row,
        "statuses": statuses,
        "emails": emails,
        "webhooks": webhooks,
        "cpu_ms_per_cancellation": cpu,
        "machine": machine,
        "broker": broker,
        "load_average_at_end": load_average(),
        "waitlist": args.waitlist,
    }


# --- the clinic ------------------------------------------------------------------------------


def build_clinic(count, waitlist):
    """seed_demo's clinic, plus `count` future appointments, each with a patient waiting to fill it."""
    from django.core.management import call_command
    from django.db import connection
    from django_q.models import OrmQ, Task

    from clinic.models import Patient, Provider, WebhookEndpoint
    from scheduling.models import Appointment
    from waitlist.models import WaitlistEntry

    call_command("seed_demo", reset=True, waitlist=waitlist, patients=waitlist, verbosity=0)
    WebhookEndpoint.objects.all().delete()  # an endpoint a broken run left would cost every stage its requests
    with connection.cursor() as cursor:  # seed_demo keeps the integrators' history; each run starts without it
        cursor.execute(
            "TRUNCATE clinic_event, clinic_webhookdelivery, clinic_deliveryattempt, clinic_pendingjob CASCADE"
        )
    OrmQ.objects.all().delete()
    Task.objects.all().delete()
    providers = list(Provider.objects.order_by("id"))
    starts = list(slot_starts(count, len(providers)))
    leaving = Patient.objects.bulk_create(
        [bench_patient(f"leaving{i}", risk=0.2) for i in range(count)], batch_size=5000
    )
    appointments = [
        Appointment(
            patient=patient,
            provider=providers[index % len(providers)],
            start=start,
            end=start + timedelta(minutes=SLOT_MINUTES),
            status=Appointment.Status.SCHEDULED,
        )
        for index, (patient, start) in enumerate(zip(leaving, starts, strict=False))
    ]
    appointments = Appointment.objects.bulk_create(appointments, batch_size=5000)
    waiting = Patient.objects.bulk_create(
        [bench_patient(f"waiting{i}", risk=0.9) for i in range(count)], batch_size=5000
    )
    WaitlistEntry.objects.bulk_create(
        [
            WaitlistEntry(
                patient=patient,
                specialty_id=appointment.provider.specialty_id,
                preferred_location_id=appointment.provider.location_id,
                ranking_risk=patient.risk_on_ranking_scale(),
            )
            for patient, appointment in zip(waiting, appointments, strict=False)
        ],
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    random.Random(7).shuffle(appointments)
    return appointments


def slot_starts(count, providers):
    """Back-to-back 45-minute slots from 08:00, one column per provider, from three weeks out."""
    from django.utils import timezone

    per_day = (20 - 8) * 60 // SLOT_MINUTES
    today = timezone.localdate()
    for index in range(count):
        day, rest = divmod(index, per_day * providers)
        start = datetime.combine(today + timedelta(days=FIRST_DAY + day), clock(8))
        yield timezone.make_aware(start + timedelta(minutes=SLOT_MINUTES * (rest // providers)))


def bench_patient(name, risk):
    from clinic.models import Patient

    # docs/reference.md, Numbers: the targets hold with texts on for every patient (email and text, locmem backend).
    return Patient(
        first_name=name,
        last_name="Bench",
        email=f"{name}@bench.example",
        no_show_risk=risk,
        ranking_risk=risk,  # bulk_create skips Patient.save
        phone="+16175550100",
        preferred_channel=Patient.Channel.BOTH,
        sms_consent=True,
    )


# --- the cluster -----------------------------------------------------------------------------


def clear_broker(redis):
    from django_q.models import OrmQ

    if redis:
        import redis as redis_client

        redis_client.Redis.from_url(redis).flushdb()  # db 9 is the benchmarks' own
    OrmQ.objects.all().delete()


class qcluster:
    """Real `manage.py qcluster`s, one per --hosts, each in its own process group (and with
    its own HOST_NAME, as on separate machines), ready when each says it runs and a probe task has run."""

    def __init__(self, args, redis):
        self.hosts = getattr(args, "hosts", 1)
        self.envs = [
            django_environment(
                DATABASE,
                redis,
                Q_WORKERS=args.workers,
                Q_POLL=args.poll,
                HOST_NAME=f"host{n}" if self.hosts > 1 else "",
            )
            for n in range(1, self.hosts + 1)
        ]
        self.logs = [
            RESULTS / "logs" / f"qcluster-{args.broker}-{int(args.rate)}{f'-host{n}' if self.hosts > 1 else ''}.log"
            for n in range(1, self.hosts + 1)
        ]
        self.log = self.logs[0]
        self.processes = []

    @property
    def pids(self):
        return [process.pid for process in self.processes]

    def __enter__(self):
        from django_q.tasks import async_task, result

        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.processes = [
            subprocess.Popen(
                [PYTHON, "manage.py", "qcluster"],
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
            for env, log in zip(self.envs, self.logs, strict=True)
        ]
        self.process = self.processes[0]
        probe = async_task("math.floor", 1.5, save=True)  # saved whatever save_limit says
        deadline = time.monotonic() + 60
        while result(probe) is None or not all(" running." in log.read_text() for log in self.logs):
            if time.monotonic() > deadline or any(process.poll() is not None for process in self.processes):
                self.stop()
                raise SystemExit(f"qcluster did not start; see {self.logs}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def webhook_cluster(args, redis):
    """With --webhook 1: the webhooks' own qcluster, as bin/serve runs it (niced, Q_CLUSTER_NAME=webhooks)."""
    if not args.webhook:
        yield None
        return
    env = {
        **django_environment(DATABASE, redis, Q_WORKERS=args.workers, Q_POLL=args.poll),
        "Q_CLUSTER_NAME": "webhooks",
        "WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver listens on loopback
    }
    log = RESULTS / "logs" / f"qcluster-webhooks-{args.broker}-{int(args.rate)}.log"
    process = subprocess.Popen(
        ["nice", "-n", "10", PYTHON, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while " running." not in log.read_text():
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"the webhooks' qcluster did not start; see {log}")
        time.sleep(0.2)
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class profiled:
    """py-spy sampling the driver and the whole qcluster while they work, when asked to."""

    def __init__(self, directory, cluster_pid):
        self.directory, self.targets = directory, {"driver": os.getpid(), "qcluster": cluster_pid}
        self.spies = []

    def __enter__(self):
        if self.directory:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            for name, pid in self.targets.items():
                self.spies.append(
                    subprocess.Popen(
                        [
                            str(Path(PYTHON).parent / "py-spy"),
                            "record",
                            "--pid",
                            str(pid),
                            "--subprocesses",
                            "--format",
                            "raw",
                            "--rate",
                            "250",
                            "--output",
                            str(Path(self.directory) / f"{name}.txt"),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        return self

    def __exit__(self, *exc):
        for spy in self.spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)


# --- driving and measuring -------------------------------------------------------------------


def drive(appointments, rate, threads):
    """Cancel each appointment at its slot in a fixed schedule: rate per second, open loop."""
    from django.db import connection

    lock, next_index, lags, durations, failures = threading.Lock(), [0], [], [], []
    started = time.monotonic() + 0.5

    def cancel_due():
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= len(appointments):
                break
            due = started + index / rate
            time.sleep(max(0.0, due - time.monotonic()))
            begun = time.monotonic()
            try:
                appointments[index].cancel("benchmark cancellation", by="bench")
            except Exception as error:  # counted and shown, never a dead driver thread
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                continue
            finished = time.monotonic()
            with lock:
                lags.append((begun - due) * 1000)
                durations.append((finished - begun) * 1000)
        connection.close()

    pool = [threading.Thread(target=cancel_due) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    return {
        "achieved_rate": len(appointments) / elapsed,
        "lag_p95_ms": percentiles(lags)["p95"],
        "cancel_p95_ms": percentiles(durations)["p95"],
        "cancel_errors": len(failures),
        "first_error": failures[0] if failures else None,
    }


def rate_kept(driven, rate):
    """Did the driver keep its schedule? Within 2% of the rate, and no cancellation started
    more than 100 ms late at p95: a driver that cannot keep up measures a lighter load than asked."""
    return driven["achieved_rate"] >= 0.98 * rate and (driven["lag_p95_ms"] or 0) < 100


def warm_up(appointments, args, receiver):
    """A running clinic's workers have booked before: their first jobs import modules, compile
    templates and prepare statements, a second's backlog that a cold start would leave at
    the head of the measured run (in production it happens once per worker, Q_RECYCLE jobs
    apart). These cancellations run first, at the same rate, and are waited for."""
    drive(appointments, args.rate, args.threads)
    wait_for_slots([a.pk for a in appointments], timeout=60)
    wait_for_deliveries(receiver, timeout=60)
    time.sleep(1)


def cpu_seconds(cluster_pids, others=None):
    """CPU time used so far by the driver (this process), the qcluster, Redis and the whole machine,
    and by `others` ({name: pid}, each with its children: the webhooks' cluster, the receiver).

    PostgreSQL is what the machine used beyond those (its backends come and go with
    connections, so they cannot be followed), plus whatever else ran on the machine.
    """
    tick = os.sysconf("SC_CLK_TCK")
    used = {"driver": sum(os.times()[:2]), "qcluster": 0.0, "redis": 0.0}
    others = {pid: name for name, pid in (others or {}).items() if pid}
    used.update({name: 0.0 for name in others.values()})
    cluster = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        # Its own time and that of its children already reaped (recycled workers).
        seconds = sum(int(value) for value in fields[11:15]) / tick
        if int(fields[2]) in cluster_pids:
            used["qcluster"] += seconds
            cluster.append((int(fields[19]), int(stat.parent.name), seconds))
        elif name.startswith("redis-server"):
            used["redis"] += seconds
        elif int(stat.parent.name) in others or int(fields[2]) in others:  # the process, or its group
            used[others.get(int(stat.parent.name)) or others[int(fields[2])]] += seconds
    # django-q2 starts, in order: the command, the sentinel, the workers, the monitor, the
    # pusher (Sentinel.spawn_cluster). A recycled worker would upset this; the bench's don't recycle.
    cluster.sort()
    if len(cluster) >= 5 and len(cluster_pids) == 1:
        roles = (
            ["cluster_command", "cluster_sentinel"]
            + ["cluster_workers"] * (len(cluster) - 4)
            + ["cluster_monitor", "cluster_pusher"]
        )
        for role, (_, _, seconds) in zip(roles, cluster, strict=False):
            used[role] = used.get(role, 0.0) + seconds
    # user nice system idle iowait irq softirq steal (guest time is already in user): steal is
    # the host running its other guests on our virtual cores, not work of ours.
    times = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    used["machine"] = (times[0] + times[1] + times[2] + times[5] + times[6]) / tick
    used["stolen"] = times[7] / tick
    return used


def backend_seconds():
    """{pid: CPU seconds} of the PostgreSQL backends connected to this run's database (their
    command line names it), from the kernel's accounting: the server's other databases and
    its background processes are other people's work on a shared machine."""
    name = DATABASE.rsplit("/", 1)[1].encode()
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().replace(b"\0", b" ").split()
            if words[:1] != [b"postgres:"] or name not in words:
                continue
            text = (cmdline.parent / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        found[int(cmdline.parent.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


class BackendSampler:
    """This run's PostgreSQL backends' CPU, each counted from its value at the start. Read
    every half second, so a backend that ends during the run (a cluster's connection
    replaced after CONN_MAX_AGE) still counts, less its last half second."""

    def __init__(self):
        self.first = backend_seconds()
        self.last = dict(self.first)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def sample(self):
        while not self.stopping.wait(0.5):
            self.last.update(backend_seconds())

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.last.update(backend_seconds())
        return sum(used - self.first.get(pid, 0.0) for pid, used in self.last.items())


@contextmanager
def receiving_webhooks(wanted):
    """With --webhook 1: one endpoint subscribed to every event, and its receiver on loopback
    in a process of its own, as an EHR's would be (in this process it would wait on the
    driver threads' GIL, and hold the sending worker with it)."""
    from clinic.models import WebhookEndpoint

    WebhookEndpoint.objects.all().delete()  # each run starts with only the endpoint it asks for
    if not wanted:
        yield None
        return
    from clinic.webhooks import new_secret

    # At the lowest priority: it stands in for the EHR's own machine, so on this one it
    # should take only CPU that Backfill leaves idle (its CPU is still counted, apart).
    server = subprocess.Popen(
        ["nice", "-n", "19", PYTHON, "-c", RECEIVER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(server.stdout.readline())
        WebhookEndpoint.objects.create(
            url=f"http://127.0.0.1:{port}/hooks", events=["*"], secret=new_secret(), description="bench receiver"
        )
        yield server
    finally:
        server.terminate()
        server.wait(timeout=10)


RECEIVER = """
import time
from tests.webhook_receiver import Receiver
receiver = Receiver().start()
print(receiver.port, flush=True)
while True:
    time.sleep(3600)
"""


def wait_for_deliveries(receiver, timeout):
    """Until the run's events are all delivered (inside the CPU measurement: delivering is part of the cost)."""
    if receiver is None:
        return None
    from django.db.models import Count

    from clinic.models import Event, WebhookDelivery
    from clinic.webhooks import all_sent

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all_sent():
            break
        time.sleep(0.25)
    return {
        "events": Event.objects.count(),
        "settled_s": round(time.monotonic() - started, 1),
        **dict(WebhookDelivery.objects.values_list("status").annotate(Count("id")).order_by()),
    }


def wait_for_slots(appointment_ids, timeout):
    """Seconds until no freed slot of the run is still open (or the timeout)."""
    from backfill.models import FreedSlot

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not FreedSlot.objects.filter(appointment_id__in=appointment_ids, status=FreedSlot.Status.OPEN).exists():
            break
        time.sleep(0.25)
    return round(time.monotonic() - started, 1)


def email_backlog():
    """How the confirmation emails (sent by the same cluster) fared by the time the slots were filled."""
    from django.db.models import Count

    from clinic.models import OutboundEmail

    return dict(OutboundEmail.objects.values_list("status").annotate(Count("id")).order_by())


def measure(appointment_ids):
    from collections import Counter

    from backfill.models import FreedSlot

    slots = FreedSlot.objects.filter(appointment_id__in=appointment_ids).select_related("appointment")
    latencies, statuses = [], Counter()
    for slot in slots:
        statuses[slot.status] += 1
        if slot.filled_at:
            latencies.append((slot.filled_at - slot.appointment.cancelled_at).total_seconds() * 1000)
    statuses["no freed slot"] = len(appointment_ids) - sum(statuses.values())
    return latencies, dict(statuses)


OVERLAPS = """
    SELECT count(*) FROM scheduling_appointment a JOIN scheduling_appointment b
      ON a.{who} = b.{who} AND a.id < b.id AND a.start < b."end" AND b.start < a."end"
    WHERE a.status <> 'cancelled' AND b.status <> 'cancelled'"""
# seed_demo's history holds past backfill appointments, several for some patients. What must
# hold is about the bookings to come: at most one per patient and specialty (one waiting
# entry per patient and specialty).
BOOKED_TWICE = """
    SELECT count(*) FROM (SELECT a.patient_id FROM scheduling_appointment a
    JOIN clinic_provider p ON p.id = a.provider_id
    WHERE a.source = 'backfill' AND a.status <> 'cancelled' AND a.start > %s
    GROUP BY a.patient_id, p.specialty_id HAVING count(*) > 1) twice"""


def integrity():
    """What must hold however the workers raced: checked in the database after the run."""
    from django.db import connection
    from django.utils import timezone

    from backfill.models import FreedSlot
    from waitlist.models import WaitlistEntry

    with connection.cursor() as cursor:
        counts = {}
        for name, sql in [
            ("provider_overlaps", OVERLAPS.format(who="provider_id")),
            ("patient_overlaps", OVERLAPS.format(who="patient_id")),
            ("patients_booked_twice", BOOKED_TWICE),
        ]:
            cursor.execute(sql, [timezone.now()] if "%s" in sql else None)
            counts[name] = cursor.fetchone()[0]
    filled = FreedSlot.objects.filter(status=FreedSlot.Status.BACKFILLED).count()
    booked = WaitlistEntry.objects.filter(status=WaitlistEntry.Status.BOOKED).count()
    counts["entries_vs_slots_mismatch"] = booked - filled
    return counts


def run_child(**options):
    """Run one configuration in a child process; returns its JSON."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [PYTHON, __file__, "--out", out.name]
        for name, value in options.items():
            command += [f"--{name}", str(value)]
        subprocess.run(command, check=True)
        return json.loads(Path(out.name).read_text())


if __name__ == "__main__":
    sys.exit(main())
