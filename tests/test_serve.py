"""`bin/serve` as an operator runs it (docs/reference.md, Production): the real script, gunicorn and a qcluster,
against this run's PostgreSQL test database, on a free port of the loopback.

It refuses to start on a database that is not migrated, serves the health checks and
whitenoise's hashed static files once started, and on SIGTERM stops every process it
started within 30 s. It runs with config.settings in production mode, saying only what the
loopback needs (plain HTTP), as bin/run does.
"""

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.hl7_feed import ack_fields, exchange
from tests.processes import ROOT, current_database_url, free_port, wait_until

# django_db makes pytest-django create the test database the server is pointed at.
pytestmark = [pytest.mark.postgres, pytest.mark.qcluster, pytest.mark.django_db(transaction=True)]

STOP_WITHIN_S = 30  # docs/reference.md, Production: bin/serve exits within 30 s of SIGTERM


class Server:
    """One `bin/serve` in a session of its own, its output kept in a file for failures."""

    def __init__(self, directory, database_url):
        self.port = free_port()
        self.log_path = Path(directory) / "serve.out"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url,
            "SECRET_KEY": os.environ["SECRET_KEY"],  # tests.settings made one for this run
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "BIND": f"127.0.0.1:{self.port}",
            "STATIC_ROOT": str(Path(directory) / "static"),
            "LOG_DIR": str(Path(directory) / "logs"),
            "CACHE_DIR": str(Path(directory) / "cache"),
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("REDIS_URL", None)  # the ORM broker: the test database itself
        self.process = None
        self.groups = set()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def run(self, timeout=60):
        """bin/serve to its end (it refuses to start, say); returns the CompletedProcess."""
        return subprocess.run(
            [str(ROOT / "bin" / "serve")], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, timeout=60):
        return self.launch().wait_ready(timeout)

    def launch(self):
        """bin/serve started, not yet waited for (several servers start side by side)."""
        self.process = subprocess.Popen(
            [str(ROOT / "bin" / "serve")],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout=60):
        wait_until(self._answers, timeout=timeout, interval=0.2, what=lambda: f"bin/serve to answer:\n{self.output()}")
        # gunicorn answers before the cluster has forked all of its processes.
        wait_until(
            lambda: " running." in self.log_path.read_text(),
            timeout=timeout,
            interval=0.2,
            what=lambda: f"the qcluster to run:\n{self.output()}",
        )
        self.groups = self.process_groups()
        return self

    def _answers(self):
        if self.process.poll() is not None:
            raise AssertionError(f"bin/serve exited with {self.process.returncode}:\n{self.output()}")
        try:
            return self.get("/healthz").status == 200
        except OSError:
            return False

    def get(self, path, headers=None):
        request = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.body = response.read()
                return response
        except urllib.error.HTTPError as error:  # a 503 is an answer too
            error.body = error.read()
            return error

    def output(self):
        return self.log_path.read_text()[-4000:]

    def process_groups(self):
        """bin/serve's own group and those of its children (gunicorn's and the cluster's)."""
        return {self.process.pid} | {group for _, group, _ in descendants(self.process.pid)}

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_WITHIN_S + 5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        """SIGKILL whatever is left of every group it started (after a failed test)."""
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.process.poll() is None:
            self.process.wait(timeout=10)


def processes():
    """(pid, parent, group, state) of every process on the machine, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it exited while we looked
            continue
        fields = text[text.rindex(")") + 2 :].split()
        found.append((int(stat.parent.name), int(fields[1]), int(fields[2]), fields[0]))
    return found


def descendants(pid):
    """(pid, group, command) of every process below `pid`."""
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


def environment_of(pid):
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def niceness(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])


def alive_in(groups):
    """Processes still running in these process groups (a zombie has stopped already)."""
    return [pid for pid, _, group, state in processes() if group in groups and state != "Z"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, django_db_setup):
    """One server for the tests that only read; django_db_setup made and migrated the database."""
    started = Server(tmp_path_factory.mktemp("serve"), current_database_url()).start()
    yield started
    started.stop()


@pytest.fixture
def server_to_stop(tmp_path, django_db_setup):
    started = Server(tmp_path, current_database_url()).start()
    yield started
    started.kill()


@pytest.fixture
def unmigrated_database():
    """A new, empty PostgreSQL database next to the test database, dropped afterwards."""
    url = current_database_url()
    server_url, name = url.rsplit("/", 1)
    name = f"{name}_unmigrated"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        yield f"{server_url}/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_it_refuses_to_start_while_migrations_are_unapplied_and_says_to_migrate(tmp_path, unmigrated_database):
    result = Server(tmp_path, unmigrated_database).run()

    assert result.returncode != 0
    assert "unapplied migrations" in result.stderr and "manage.py migrate" in result.stderr, result.stderr
    assert not (tmp_path / "static").exists(), "it collected static files before refusing"


def test_it_answers_healthz_in_json(server):
    response = server.get("/healthz")

    assert (response.status, response.headers["Content-Type"]) == (200, "application/json")
    assert json.loads(response.body) == {"status": "ok"}


def test_it_serves_static_files_under_hashed_compressed_names(server):
    page = server.get("/accounts/login/").body.decode()
    stylesheet = re.search(r'<link rel="stylesheet" href="(/static/[^"]+\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, f"no stylesheet with a hashed name on the login page:\n{page}"

    response = server.get(stylesheet[1], headers={"Accept-Encoding": "gzip"})

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers["Content-Encoding"] == "gzip"
    assert "immutable" in response.headers["Cache-Control"]  # a hashed name never changes content


def test_it_answers_readyz_in_json_with_each_check(server):
    response = server.get("/readyz")

    body = json.loads(response.body)
    # The sweep's schedule may be gone (an earlier transactional test flushed it): 503 then.
    assert (response.status, body["status"]) in {(200, "ready"), (503, "unavailable")}, body
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"] == {"ok": True}


def test_sigterm_stops_gunicorn_and_the_qcluster_with_all_their_processes_within_30_s(server_to_stop):
    server = server_to_stop
    commands = [command for _, _, command in descendants(server.process.pid)]
    assert sum("gunicorn" in command for command in commands) >= 3, commands  # a master and its 2 workers
    assert sum("qcluster" in command for command in commands) >= 4, commands  # sentinel, workers, monitor, pusher
    # The webhooks' own cluster runs beside it, below the bookings' CPU priority.
    senders = [
        pid
        for pid, _, command in descendants(server.process.pid)
        if "qcluster" in command and b"Q_CLUSTER_NAME=webhooks" in environment_of(pid)
    ]
    assert senders, commands
    assert all(niceness(pid) == 10 for pid in senders)
    groups = server.groups

    began = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    returncode = server.process.wait(timeout=STOP_WITHIN_S + 5)
    wait_until(
        lambda: not alive_in(groups),
        timeout=max(0.5, STOP_WITHIN_S - (time.monotonic() - began)),
        what=lambda: f"every process of bin/serve to exit: {alive_in(groups)}",
    )

    assert time.monotonic() - began < STOP_WITHIN_S
    assert returncode == 0, server.output()


def test_with_hl7_bind_it_runs_the_hl7_listener_and_stops_it_with_the_rest(tmp_path, django_db_setup):
    server = Server(tmp_path, current_database_url())
    hl7_port = free_port()
    server.env["HL7_BIND"] = f"127.0.0.1:{hl7_port}"
    server.start()
    try:
        wait_until(lambda: "Listening for HL7" in server.log_path.read_text(), what=server.output)
        [ack] = exchange(hl7_port, "MSH|^~\\&|EHR|HOSP|BACKFILL|CLINIC|20300105083000||ORM^O01|C1|P|2.5.1\r")
        assert ack_fields(ack)[:2] == ("AR", "C1")  # answered: not a message Backfill takes
        listeners = [pid for pid, _, command in descendants(server.process.pid) if "hl7_listen" in command]
        assert listeners

        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=STOP_WITHIN_S + 5) == 0
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in listeners), timeout=10)
    finally:
        server.kill()
