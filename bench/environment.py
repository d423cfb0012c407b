"""What every benchmark needs before it measures: its own database, Django set up on it,
and the facts about the machine it ran on.

Benchmarks never touch the development database: each uses PostgreSQL databases named
``backfill_bench_*`` (created here when missing) and, for the Redis broker, Redis
database 9.
"""

import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RESULTS = ROOT / "bench" / "results"
POSTGRES_SERVER = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
# Two people benchmarking on one server at once keep apart by a suffix of their own.
DATABASE_SUFFIX = os.environ.get("BENCH_DATABASE_SUFFIX", "")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def database_url(name):
    return f"{POSTGRES_SERVER}/backfill_bench_{name}{DATABASE_SUFFIX}"


def ensure_database(url):
    """Create the benchmark's PostgreSQL database if it does not exist yet."""
    import psycopg

    server, name = url.rsplit("/", 1)
    if not name.startswith("backfill_bench"):
        raise SystemExit(f"refusing to use {name}: benchmark databases are named backfill_bench_*")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')


def django_environment(database, redis=None, **extra):
    """Environment for this process and for the qcluster it starts: production-like settings.

    DEBUG is off (no query log, as in production); logs go under bench/results/ so the
    benchmarks do not fill the developers' logs/api.log.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database,
        "DEBUG": "false",
        "SECRET_KEY": "benchmark-only-not-secret",
        "LOG_DIR": str(RESULTS / "logs"),
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "SMS_BACKEND": "locmem",
        **{name: str(value) for name, value in extra.items()},
    }
    env.pop("REDIS_URL", None)
    if redis:
        env["REDIS_URL"] = redis
    return env


def setup_django(database, redis=None, **extra):
    """Configure Django in this process for the given database and broker, migrated."""
    ensure_database(database)
    environment = django_environment(database, redis, **extra)
    os.environ.clear()
    os.environ.update(environment)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    quiet_console()


def quiet_console():
    """Keep the app's INFO lines in the log file (bench/results/logs/), off the benchmark's output."""
    import logging

    for name in ("backfill", "scheduling", "clinic", "django-q"):
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler:
                handler.setLevel(logging.WARNING)


def machine_facts():
    """The machine, database and broker a result was measured on."""
    from django.db import connection

    facts = {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        # Other developers share the working tree: say whether the code measured differs.
        "uncommitted_code": bool(_git("status", "--porcelain", "--", "backfill", "clinic", "scheduling", "waitlist")),
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        facts["database"] = cursor.fetchone()[0].split(" on ")[0]
    return facts


def redis_version(url):
    import redis

    return "Redis " + redis.Redis.from_url(url).info("server")["redis_version"]


def machine_cpu_seconds():
    """CPU the whole machine has used (user, nice, system, irq, softirq), without the time the
    host stole from the virtual cores: /proc/stat's first line."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / os.sysconf("SC_CLK_TCK")


def load_average():
    return [round(load, 2) for load in os.getloadavg()]


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
