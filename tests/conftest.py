import os

import pytest
from django.core.cache import cache
from django.db import connection


def pytest_collection_modifyitems(config, items):
    """Postgres-only tests skip on SQLite locally, but CI runs the suite on PostgreSQL too."""
    from django.conf import settings

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
