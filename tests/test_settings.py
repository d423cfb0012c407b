"""Settings come from the environment; with nothing set, the embedded default needs no services."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from clinic.models import Location

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import json, clinic.settings as s; print(json.dumps({'engine': s.DATABASES['default']['ENGINE'],"
    " 'name': str(s.DATABASES['default']['NAME']), 'broker': 'redis' if 'redis' in s.Q_CLUSTER else s.Q_CLUSTER.get('orm'),"
    " 'redis': s.Q_CLUSTER.get('redis'), 'min_score': s.BACKFILL['MIN_SCORE'], 'chain': s.BACKFILL['CHAIN_BACKFILL'],"
    " 'email': s.EMAIL_BACKEND, 'debug': s.DEBUG, 'options': s.DATABASES['default'].get('OPTIONS', {})}))"
)
CLEAN = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "EMAIL_BACKEND", "DEBUG", "SECRET_KEY",
                                                              "POSTGRES_PREPARED_STATEMENTS"}
         and not k.startswith("BACKFILL_")}


def settings_with(**env):
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**CLEAN, **env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_defaults_to_sqlite_and_the_orm_broker():
    probe = settings_with()
    assert probe["engine"] == "django.db.backends.sqlite3"
    assert probe["broker"] == "default"
    assert probe["email"] == "django.core.mail.backends.console.EmailBackend"


def test_database_url_selects_postgresql():
    probe = settings_with(DATABASE_URL="postgres://postgres@db.example:5432/clinic")
    assert (probe["engine"], probe["name"]) == ("django.db.backends.postgresql", "clinic")


def test_postgresql_binds_on_the_server_and_prepares_unless_turned_off():
    url = "postgres://postgres@db.example:5432/clinic"
    assert settings_with(DATABASE_URL=url)["options"] == {"server_side_binding": True, "prepare_threshold": 5}
    assert "server_side_binding" not in settings_with(DATABASE_URL=url, POSTGRES_PREPARED_STATEMENTS="false")["options"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_statement_run_a_few_times_is_prepared_on_postgresql():
    for _ in range(6):
        list(Location.objects.filter(name="Downtown"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ['%"clinic_location"%'])
        assert cursor.fetchone()[0] == 1


def test_redis_url_selects_the_redis_broker():
    probe = settings_with(REDIS_URL="redis://cache.example:6379/2")
    assert (probe["broker"], probe["redis"]) == ("redis", "redis://cache.example:6379/2")


def test_backfill_tunables_are_overridden_one_by_one():
    probe = settings_with(BACKFILL_MIN_SCORE="40", BACKFILL_CHAIN_BACKFILL="true")
    assert (probe["min_score"], probe["chain"]) == (40, True)


def test_production_refuses_to_start_without_a_secret_key():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**CLEAN, "DEBUG": "false"}, capture_output=True, text=True)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
