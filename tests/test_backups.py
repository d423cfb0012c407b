"""Backups that restore: bin/backup of a seeded demo clinic, restored by bin/restore into an
empty database, has the same rows in every table; a database with data is not overwritten
unless told."""

import os
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def url_of(name):
    settings = connection.settings_dict
    user, password = settings["USER"], settings["PASSWORD"]
    auth = f"{user}:{password}@" if password else f"{user}@"
    return f"postgres://{auth}{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{name}"


def run(script, database, *args):
    env = {**os.environ, "DATABASE_URL": url_of(database)}
    return subprocess.run([str(ROOT / "bin" / script), *args], env=env, capture_output=True, text=True, timeout=300)


def row_counts(database):
    with connect(database) as db:
        tables = [t for (t,) in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        return {table: db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}


@pytest.fixture
def empty_database():
    name = f"backfill_restore_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url_of("postgres").replace("postgres://", "postgresql://"), autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(url_of("postgres").replace("postgres://", "postgresql://"), autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_backup_of_the_demo_clinic_restores_with_the_same_rows_in_every_table(tmp_path, empty_database, roles):
    call_command("seed_demo", patients=40, days=3, history_days=10, verbosity=0)
    source = connection.settings_dict["NAME"]
    dump = tmp_path / "clinic.dump"

    backup = run("backup", source, str(dump))
    assert backup.returncode == 0, backup.stderr
    restore = run("restore", empty_database, str(dump))
    assert restore.returncode == 0, restore.stderr

    counts = row_counts(source)
    assert counts["clinic_patient"] >= 40 and counts["scheduling_appointment"] > 0 and counts["audit_auditevent"] > 0
    assert row_counts(empty_database) == counts


def test_restore_refuses_a_database_that_holds_data_unless_forced(tmp_path, empty_database, roles):
    call_command("seed_demo", patients=10, days=1, history_days=5, verbosity=0)
    source = connection.settings_dict["NAME"]
    dump = tmp_path / "clinic.dump"
    assert run("backup", source, str(dump)).returncode == 0
    assert run("restore", empty_database, str(dump)).returncode == 0
    with connect(empty_database) as db:
        db.execute("UPDATE clinic_patient SET first_name = 'Changed since the backup'")

    refused = run("restore", empty_database, str(dump))

    assert refused.returncode == 1
    assert "already holds" in refused.stderr
    assert changed_names(empty_database) == row_counts(source)["clinic_patient"]
    forced = run("restore", empty_database, str(dump), "--force")
    assert forced.returncode == 0, forced.stderr
    assert changed_names(empty_database) == 0
    assert row_counts(empty_database) == row_counts(source)


def connect(database):
    return psycopg.connect(url_of(database).replace("postgres://", "postgresql://"), autocommit=True)


def changed_names(database):
    with connect(database) as db:
        return db.execute(
            "SELECT count(*) FROM clinic_patient WHERE first_name = 'Changed since the backup'"
        ).fetchone()[0]
