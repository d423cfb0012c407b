"""Real processes for the tests that need them: a qcluster, a private redis-server, and threads
that each use their own database connection.

A qcluster is `manage.py qcluster` with config.settings (not tests.settings, whose queue runs
in-process), pointed at the test database pytest-django created. It runs in its own process
group so a test can SIGKILL the whole cluster (sentinel, pusher, monitor, workers) at once,
the way a machine dies.

The fixtures `redis_server` (a private redis-server) and `broker_url` (each test run on the
ORM broker and on Redis, this process enqueueing to the same one) are shared by the tests of
crashes, the watchdog and Redis outages (tests/conftest.py makes them available), as is
`a_morning_to_fill`, the clinic they fill.

assert_nobody_double_booked() states what must hold however many workers raced or crashed.
(This module is not a test module, so pytest does not rewrite its asserts: each carries
its own message.)
"""

import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection, connections
from django.db.models import Exists, OuterRef
from django_q.brokers import get_broker
from django_q.conf import Conf

import clinic.queue
from backfill.models import FreedSlot, MatchLog
from clinic.factories import HighRiskPatientFactory, LocationFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition, timeout=15.0, interval=0.05, what="the condition"):
    """Poll until condition() is truthy; return its value or fail saying what was awaited.

    ``what`` may be a callable, evaluated only on failure (e.g. a qcluster's output).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def enqueue_to_redis(monkeypatch, redis_url):
    """Make this test process enqueue to Redis, as a web process with REDIS_URL does.

    django-q2 reads Q_CLUSTER into Conf once, at import; tests.settings chose the ORM broker
    and in-process (sync) jobs. get_broker() picks Redis when no other broker is set.
    """
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "BROKER_CLASS", None)  # clinic.queue.OrmBroker, the ORM broker's
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    fresh_shared_broker(monkeypatch)


def enqueue_to_orm(monkeypatch):
    """Make this test process enqueue to the ORM broker (the test database) instead of running jobs itself."""
    monkeypatch.setattr(Conf, "SYNC", False)
    fresh_shared_broker(monkeypatch)


def fresh_shared_broker(monkeypatch):
    # clinic.queue keeps one broker per process; this test's broker differs from the settings'.
    monkeypatch.setattr(clinic.queue, "shared_broker", functools.cache(get_broker))


def current_database_url():
    """The URL of the database this test run uses (pytest-django's test_… database)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class QCluster:
    """One `manage.py qcluster` process group, its output kept in a log file for failures."""

    def __init__(self, database_url, redis_url=None, workers=2, name=None, command="qcluster", env=None):
        self.command = command  # or "supervise_qcluster": the cluster under its watchdog, as bin/serve runs it
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "Q_WORKERS": str(workers),
            "Q_SYNC": "false",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "LOG_DIR": tempfile.mkdtemp(prefix="qcluster-logs-"),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("REDIS_URL", None)
        if redis_url:
            self.env["REDIS_URL"] = redis_url
        if name:  # one of settings.Q_CLUSTER's ALT_CLUSTERS, e.g. the webhooks' cluster
            self.env["Q_CLUSTER_NAME"] = name
        self.env.update(env or {})
        self.log_path = Path(self.env["LOG_DIR"]) / "qcluster.out"
        self.process = None

    def start(self, timeout=30):
        self.log_path.write_text("")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", self.command],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            self._running, timeout=timeout, interval=0.1, what=lambda: f"the qcluster to start:\n{self.output()}"
        )
        return self

    def _running(self):
        if self.process.poll() is not None:
            raise AssertionError(f"qcluster exited with {self.process.returncode}:\n{self.output()}")
        return " running." in self.log_path.read_text()

    def output(self):
        return self.log_path.read_text()[-4000:]

    def kill(self):
        """SIGKILL every process of the cluster at once: no cleanup, no acknowledgements."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self, timeout=15):
        if self.process is None or self.process.poll() is not None:
            self._kill_leftovers()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self._kill_leftovers()

    def _kill_leftovers(self):
        # Workers the sentinel did not reap (or a killed cluster's orphans) share the group.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process.poll() is None:
            self.process.wait(timeout=10)


@contextmanager
def running_qcluster(redis_url=None, workers=2, name=None):
    cluster = QCluster(current_database_url(), redis_url=redis_url, workers=workers, name=name).start()
    try:
        yield cluster
    finally:
        cluster.stop()
        end_other_sessions()


def end_other_sessions(timeout=10):
    """Wait for every other connection to the test database to go, ending stragglers.

    A worker killed while waiting for a row lock leaves its server session behind until the
    lock comes free; pytest-django's flush and final DROP DATABASE need it gone.
    """
    sessions = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while True:
            cursor.execute(sessions)
            pids = [row[0] for row in cursor.fetchall()]
            if not pids:
                return
            if time.monotonic() > deadline:
                cursor.execute(f"SELECT pg_terminate_backend(pid) FROM ({sessions}) AS stragglers")
                return
            time.sleep(0.1)


def sessions_waiting_for_a_lock():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


class RedisServer:
    """A private redis-server on a free port, so a test can take it down without hurting anyone."""

    def __init__(self):
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def _answers(self):
        import redis

        try:
            return redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
        except redis.ConnectionError:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def run_in_threads(jobs, start_together=True):
    """Run each callable in its own thread, released at the same moment; return results in order.

    Each thread closes its database connection when done, so none is left open for
    pytest-django's flush. An exception in a job is returned in its place, not raised.
    """
    barrier = threading.Barrier(len(jobs)) if start_together else None
    results = [None] * len(jobs)

    def run(index, job):
        try:
            if barrier:
                barrier.wait(timeout=30)
            results[index] = job()
        except Exception as error:  # returned to the test, which asserts on it
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index, job)) for index, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


# What must hold after any number of workers, crashes and retries (docs/reference.md, Numbers).


def overlapping(party):
    """Active appointments that overlap another active appointment of the same patient/provider."""
    clash = (
        Appointment.objects.active()
        .filter(**{party: OuterRef(party)}, start__lt=OuterRef("end"), end__gt=OuterRef("start"))
        .exclude(pk=OuterRef("pk"))
    )
    return list(Appointment.objects.active().filter(Exists(clash)).values_list("pk", flat=True))


def assert_nobody_double_booked():
    clashes = {party: overlapping(party) for party in ("patient", "provider")}
    assert clashes == {"patient": [], "provider": []}, f"overlapping active appointments: {clashes}"
    backfills = sorted(Appointment.objects.filter(source=Appointment.Source.BACKFILL).values_list("pk", flat=True))
    # Each booking used exactly one waitlist entry, and each entry was booked at most once.
    entries = Counter(
        WaitlistEntry.objects.filter(status=WaitlistEntry.Status.BOOKED).values_list("booked_appointment", flat=True)
    )
    assert sorted(entries) == backfills and set(entries.values()) <= {1}, f"entries {entries} vs bookings {backfills}"
    # Each booking filled exactly one slot, at the slot's own provider and time.
    slots = FreedSlot.objects.filter(status=FreedSlot.Status.BACKFILLED).select_related("filled_by")
    filled = sorted(slot.filled_by_id for slot in slots)
    assert filled == backfills, f"slots filled by {filled} vs bookings {backfills}"
    misplaced = [
        slot.pk
        for slot in slots
        if (slot.filled_by.provider_id, slot.filled_by.start) != (slot.provider_id, slot.start)
    ]
    assert misplaced == [], f"slots filled at another provider or time: {misplaced}"
    booked_logs = Counter(MatchLog.objects.filter(outcome=MatchLog.Outcome.BOOKED).values_list("slot", flat=True))
    assert booked_logs == Counter(slot.pk for slot in slots), f"match logs saying booked: {booked_logs}"


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["orm", pytest.param("redis", marks=pytest.mark.redis)])
def broker_url(request, monkeypatch):
    """None for the ORM broker, else a private Redis; this process enqueues to the same one."""
    if request.param == "orm":
        enqueue_to_orm(monkeypatch)
        return None
    url = request.getfixturevalue("redis_server").url
    enqueue_to_redis(monkeypatch, url)
    return url


def a_morning_to_fill(slots):
    """One provider's morning of `slots` hourly appointments, and as many high-risk patients waiting."""
    provider = ProviderFactory(
        specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory(name="Downtown")
    )
    appointments = [AppointmentFactory(provider=provider, start=next_weekday_at(9 + hour)) for hour in range(slots)]
    entries = [
        WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty) for _ in range(slots)
    ]
    return appointments, entries
