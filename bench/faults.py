"""Faults against a real `bin/serve`: a PostgreSQL restart, a Redis outage, a killed worker.

    .venv/bin/python bench/faults.py [--faults postgres,redis,worker] [--rate 2] [--outage 15]

It makes its own PostgreSQL (initdb in a temporary directory, on a free port of the loopback)
and its own redis-server, builds a small clinic there (appointments on the next days, each
with a high-risk patient waiting to fill it, and an Integrator's API token), and starts
`bin/serve` on them with the production defaults (the watchdog looks every 5 s and calls a
cluster stalled after 30 s). For each fault in turn, API cancellations stream in at --rate a
second from 5 s before the fault to 10 s after it, and then:

  postgres  `pg_ctl restart -m fast`: every connection the server and its clusters kept is cut;
  redis     the redis-server stopped for --outage seconds, then started again (empty: no
            persistence, as a restarted cache server is);
  worker    SIGKILL of the bookings' worker that holds the queue's read lock (waiting in
            `get()`), what the OOM killer does.

What it reports per fault: the cancellations answered 2xx and not; seconds from the fault's end
(the server back, Redis back, the kill) until every slot freed up to then was filled again;
the slowest fill of a slot freed after it; the watchdog's restarts; and whether anybody ended
up double-booked. Everything it started it stops, and the temporary directory is removed
unless --keep. A result is written to bench/results/faults-<time>.json.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The project, not bench/, first on the import path, as manage.py has it: a bench script
# must never hide a library of the same name.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
RESULTS = ROOT / "bench" / "results"
LEAD_S = 5
TAIL_S = 10
READ = 0  # read(2) on x86-64: the worker waiting in the queue's get() holds its read lock


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_postgres(command):
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class PrivatePostgres:
    def __init__(self, directory):
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.data = Path(directory) / "pg"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/backfill_faults"

    def ctl(self, *args):
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.data.parent / "pg.log"), "-w", *args]
        subprocess.run(as_postgres(command), check=True, capture_output=True)

    def start(self):
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres")
            shutil.chown(self.data.parent, "postgres")
        subprocess.run(
            as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"]),
            check=True,
            capture_output=True,
        )
        options = f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.ctl("-o", options, "start")
        subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "backfill_faults"],
            check=True,
        )
        return self

    def restart(self):
        self.ctl("-m", "fast", "restart")

    def stop(self):
        self.ctl("-m", "immediate", "stop")


class PrivateRedis:
    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def environment(database_url, redis_url, port, directory):
    return {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "faults-run-" + os.urandom(16).hex(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "BIND": f"127.0.0.1:{port}",
        "STATIC_ROOT": str(Path(directory) / "static"),
        "LOG_DIR": str(Path(directory) / "logs"),
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "SMS_BACKEND": "locmem",
        "PYTHONUNBUFFERED": "1",
    }


def build_clinic(count):
    """`count` appointments on the next days, each with a high-risk patient waiting for its specialty."""
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from clinic.factories import HighRiskPatientFactory, LocationFactory, ProviderFactory, SpecialtyFactory
    from scheduling.factories import AppointmentFactory, next_weekday_at
    from waitlist.factories import WaitlistEntryFactory

    specialty, location = SpecialtyFactory(name="Orthopedic PT"), LocationFactory(name="Downtown")
    hours = range(9, 17)
    providers = [ProviderFactory(specialty=specialty, location=location) for _ in range(-(-count // len(hours)))]
    appointments = [
        AppointmentFactory(provider=provider, start=next_weekday_at(hour, days_ahead=3))
        for provider in providers
        for hour in hours
    ][:count]
    for _ in range(count):
        WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=specialty)
    integrator = User.objects.create_user("faults-ehr")
    integrator.groups.add(Group.objects.get(name="Integrator"))
    return [appointment.pk for appointment in appointments], Token.objects.create(user=integrator).key


class Server:
    def __init__(self, env, directory):
        self.env = env
        self.port = int(env["BIND"].rsplit(":", 1)[1])
        self.log = Path(directory) / "serve.out"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [str(ROOT / "bin" / "serve")],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while self.log.read_text().count(" running.") < 2:  # both clusters
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bin/serve did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=35)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


class Stream(threading.Thread):
    """API cancellations at `rate` a second, one thread, each answer's status kept."""

    def __init__(self, port, token, ids, rate):
        super().__init__(daemon=True)
        self.port, self.token, self.ids, self.rate = port, token, ids, rate
        self.answers = []

    def run(self):
        started = time.monotonic()
        for n, pk in enumerate(self.ids):
            time.sleep(max(0.0, started + n / self.rate - time.monotonic()))
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/api/appointments/{pk}/cancel/",
                data=json.dumps({"reason": "patient called in sick"}).encode(),
                headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    self.answers.append(response.status)
            except urllib.error.HTTPError as error:
                self.answers.append(error.code)
            except OSError as error:
                self.answers.append(type(error).__name__)


def main_cluster_workers(server):
    """bin/serve -> supervise_qcluster (the bookings') -> qcluster -> sentinel -> workers first."""

    def children(pid):
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                environ = (stat.parent / "environ").read_bytes()
            except OSError:
                continue
            state, parent = text[text.rindex(")") + 2 :].split()[:2]
            if int(parent) == pid and state != "Z" and b"Q_CLUSTER_NAME=webhooks" not in environ:
                found.append(int(stat.parent.name))
        return sorted(found)

    supervisors = [pid for pid in children(server.process.pid) if b"supervise_qcluster" in cmdline(pid)]
    (qcluster,) = children(supervisors[0])
    (sentinel,) = children(qcluster)
    return children(sentinel)[:2]  # Q_WORKERS, forked before the monitor and the pusher


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def holder_of_the_queue_lock(workers):
    for _ in range(200):
        for pid in workers:
            try:
                if int(Path(f"/proc/{pid}/syscall").read_text().split()[0]) == READ:
                    return pid
            except (OSError, ValueError):
                pass
        time.sleep(0.05)
    raise RuntimeError("no worker was waiting for a job")


def restarts():
    from clinic.models import ClusterHeartbeat

    return sum(ClusterHeartbeat.objects.values_list("restarts", flat=True))


def run_fault(fault, server, postgres, redis, ids, token, args):
    from django.db import connection
    from django.utils import timezone

    from backfill.models import FreedSlot

    restarts_before = restarts()
    connection.close()
    stream = Stream(server.port, token, ids, args.rate)
    stream.start()
    time.sleep(LEAD_S)
    if fault == "postgres":
        postgres.restart()
    elif fault == "redis":
        redis.stop()
        time.sleep(args.outage)
        redis.start()
    elif fault == "worker":
        os.kill(holder_of_the_queue_lock(main_cluster_workers(server)), signal.SIGKILL)
    ended_at = timezone.now()
    ended = time.monotonic()
    stream.join()
    connection.close()  # after a PostgreSQL restart this process's connection is dead too
    slots = FreedSlot.objects.filter(appointment_id__in=ids)
    while slots.filter(status=FreedSlot.Status.OPEN).exists() and time.monotonic() - ended < 180:
        time.sleep(0.25)
    before = slots.filter(freed_at__lte=ended_at)
    after = slots.filter(freed_at__gt=ended_at, filled_at__isnull=False)
    last_refill = max((s.filled_at for s in before if s.filled_at), default=ended_at)
    return {
        "fault": fault,
        "cancellations": len(ids),
        "answers": {str(code): stream.answers.count(code) for code in sorted(set(stream.answers), key=str)},
        "slots_freed": slots.count(),
        "still_open": slots.filter(status=FreedSlot.Status.OPEN).count(),
        "refilled_after_s": round(max(0.0, (last_refill - ended_at).total_seconds()), 1),
        "slowest_fill_after_s": round(max((s.fill_ms or 0 for s in after), default=0) / 1000, 2),
        "watchdog_restarts": restarts() - restarts_before,
    }


@contextmanager
def services(keep):
    directory = tempfile.mkdtemp(prefix="backfill-faults-")
    postgres, redis = PrivatePostgres(directory), PrivateRedis()
    try:
        postgres.start()
        redis.start()
        yield directory, postgres, redis
    finally:
        redis.stop()
        try:
            postgres.stop()
        except subprocess.CalledProcessError:
            pass
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default="postgres,redis,worker")
    parser.add_argument("--rate", type=float, default=2, help="API cancellations a second")
    parser.add_argument("--outage", type=float, default=15, help="seconds Redis stays down")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args()
    faults = args.faults.split(",")
    per_fault = int(args.rate * (LEAD_S + args.outage + TAIL_S))  # cancellations over each fault's run
    with services(args.keep) as (directory, postgres, redis):
        env = environment(postgres.url, redis.url, free_port(), directory)
        os.environ.update({**env, "DB_POOL": "0"})
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        ids, token = build_clinic(per_fault * len(faults))
        server = Server(env, directory).start()
        results = []
        try:
            time.sleep(6)  # the watchdogs' first check jobs answered
            for n, fault in enumerate(faults):
                ids_now = ids[n * per_fault : (n + 1) * per_fault]
                results.append(run_fault(fault, server, postgres, redis, ids_now, token, args))
                print(json.dumps(results[-1]), flush=True)
            from tests.processes import assert_nobody_double_booked

            assert_nobody_double_booked()
        finally:
            server.stop()
            if args.keep:
                print(f"logs: {directory}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"faults-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"args": vars(args), "results": results, "nobody_double_booked": True}, indent=2))
    print(f"nobody double-booked; written to {out}")


if __name__ == "__main__":
    main()
