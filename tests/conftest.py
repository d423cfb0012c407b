import os

import pytest
from django.core.cache import cache
from django.db import connection

from clinic.catalogs import compile_catalogs
from tests.processes import broker_url, redis_server  # noqa: F401  (fixtures of the tests that run real processes)

# The catalogs as the .po files say now (bin/setup compiles them too; a run straight after an
# edit must not read a stale .mo).
compile_catalogs()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Postgres-only tests skip on SQLite locally, but CI runs the suite on PostgreSQL too.

    bin/test runs the suite on two workers (pytest-xdist, --dist loadgroup). The tests that
    start real processes share fixed Redis databases and need the machine's time, so they all
    run on one worker, one after another. Each is transactional, so as a group they still run
    after every test that reads the rows the migrations made (pytest-django's order)."""
    from django.conf import settings

    for item in items:
        if "qcluster" in item.keywords or "redis" in item.keywords:
            item.add_marker(pytest.mark.xdist_group("real processes"))
    if settings.DATABASE_IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL (CI runs these)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def anymail_test_backend(settings):
    """pytest-django forces locmem; anymail's test backend also fills mail.outbox and gives
    each message an ESP id and status, like a real ESP would."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"


@pytest.fixture(autouse=True)
def fresh_limits():
    """Throttle counts live in the cache: each test starts with none spent."""
    cache.clear()


@pytest.fixture(autouse=True)
def no_remembered_endpoints():
    """Whether any webhook endpoint is active is remembered for a few seconds per process;
    an earlier test's endpoint, rolled back, must not make this one ask for deliveries."""
    from clinic.models import WebhookEndpoint
    from integrations.hl7.models import Hl7Endpoint

    WebhookEndpoint.forget_whether_any_active()
    Hl7Endpoint.forget_whether_any_active()


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="frontdesk", password="frontdesk-pass", email="desk@clinic.example", is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def on_postgres():
    return connection.vendor == "postgresql"


def pytest_report_header(config):
    return f"database: {os.environ.get('DATABASE_URL') or 'SQLite (embedded default)'}"


ROLE_MIGRATIONS = [
    ("backfill", "0006_roles"),
    ("backfill", "0008_managers_read_no_show_models"),
    ("backfill", "0009_webhook_permissions"),
    ("backfill", "0010_insurance_plan_permissions"),
    ("backfill", "0011_front_desk_keeps_to_its_verbs"),
    ("backfill", "0012_texts_and_contact_rules"),
    ("backfill", "0013_managers_see_every_webhook_endpoint"),
    ("backfill", "0014_managers_read_the_audit_trail"),
    ("backfill", "0015_managers_keep_the_api_tokens"),
    ("hl7", "0002_roles"),
    ("backfill", "0016_staff_read_message_content"),
    ("privacy", "0002_managers_export_and_erase_nightly_retention"),
]


def replay_migrations(migrations):
    """The data steps of these migrations, in order, each on the models as they were at that
    migration: what a transactional test's flush emptied comes back as the migrations made it.
    (serialized_rollback instead clashes with the content types a flush remakes.)"""
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.operations import RunPython

    loader = MigrationExecutor(connection).loader
    for app, name in migrations:
        state_apps = loader.project_state((app, name)).apps
        for operation in loader.get_migration(app, name).operations:
            if isinstance(operation, RunPython):
                operation.code(state_apps, None)


@pytest.fixture
def roles():
    """The three roles, made again if an earlier transactional test's flush emptied them
    (pytest-django runs transactional tests last; seed_demo gives its logins these groups)."""
    from django.contrib.auth.models import Group

    if not Group.objects.exists():
        replay_migrations(ROLE_MIGRATIONS)


SWEEP_MIGRATIONS = [
    ("backfill", "0002_sweep_schedule"),
    ("backfill", "0007_sweep_every_half_minute"),
    ("ops", "0001_the_sweep_is_ops"),
]


@pytest.fixture
def sweep_schedules():
    """The sweep's two schedules, made again if an earlier transactional test's flush emptied them."""
    from django_q.models import Schedule

    if not Schedule.objects.filter(func="ops.sweep.sweep").exists():
        replay_migrations(SWEEP_MIGRATIONS)
