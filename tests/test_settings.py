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
    "import json, config.settings as s; print(json.dumps({'engine': s.DATABASES['default']['ENGINE'],"
    " 'name': str(s.DATABASES['default']['NAME']),"
    " 'broker': 'redis' if 'redis' in s.Q_CLUSTER else s.Q_CLUSTER.get('orm'),"
    " 'redis': s.Q_CLUSTER.get('redis'), 'min_score': s.BACKFILL['MIN_SCORE'], 'chain': s.BACKFILL['CHAIN_BACKFILL'],"
    " 'email': s.EMAIL_BACKEND, 'debug': s.DEBUG, 'options': s.DATABASES['default'].get('OPTIONS', {})}))"
)
# The machine's environment without anything Backfill reads (tests/settings.py sets some).
OURS = {
    "DATABASE_URL",
    "REDIS_URL",
    "EMAIL_BACKEND",
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "POSTGRES_PREPARED_STATEMENTS",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "DB_POOL",
    "SECURE_PROXY_SSL_HEADER",
    "CSRF_TRUSTED_ORIGINS",
    "ANYMAIL_WEBHOOK_SECRET",
    "DJANGO_SETTINGS_MODULE",
    "SITE_URL",
    "PORT",
    "WEBHOOK_ALLOW_PRIVATE",
    "PROXY_COUNT",
    "MFA_REQUIRED_ROLES",
}
CLEAN = {k: v for k, v in os.environ.items() if k not in OURS and not k.startswith("BACKFILL_")}
A_SECRET = "a-test-secret-key-that-is-long-enough-for-django-deploy-checks-x7"


def run_settings(code=PROBE, **env):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**CLEAN, **env}, capture_output=True, text=True)


def settings_with(**env):
    result = run_settings(**{"SECRET_KEY": A_SECRET, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_defaults_to_sqlite_and_the_orm_broker():
    probe = settings_with()
    assert probe["engine"] == "django.db.backends.sqlite3"
    assert probe["broker"] == "default"


def test_database_url_selects_postgresql():
    probe = settings_with(DATABASE_URL="postgres://postgres@db.example:5432/clinic")
    assert (probe["engine"], probe["name"]) == ("django.db.backends.postgresql", "clinic")


def test_postgresql_binds_on_the_server_and_prepares_unless_turned_off():
    url = "postgres://postgres@db.example:5432/clinic"
    options = settings_with(DATABASE_URL=url)["options"]
    assert (options["server_side_binding"], options["prepare_threshold"]) == (True, 5)
    assert (
        "server_side_binding" not in settings_with(DATABASE_URL=url, POSTGRES_PREPARED_STATEMENTS="false")["options"]
    )


def test_postgresql_connections_come_from_a_bounded_pool():
    url = "postgres://postgres@db.example:5432/clinic"
    assert settings_with(DATABASE_URL=url, DB_POOL_MAX_SIZE="6")["options"]["pool"]["max_size"] == 6
    assert "pool" not in settings_with(DATABASE_URL=url, DB_POOL="0")["options"]


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


def test_it_refuses_to_start_without_a_secret_key_and_says_why():
    result = run_settings()
    assert result.returncode != 0
    assert "Backfill cannot start: SECRET_KEY must be set" in result.stderr
    assert "Traceback" not in result.stderr


SECURITY_PROBE = (
    "import json, config.settings as s; print(json.dumps({name: getattr(s, name, None) for name in ("
    "'DEBUG', 'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS',"
    " 'SECURE_PROXY_SSL_HEADER', 'CSRF_TRUSTED_ORIGINS', 'EMAIL_BACKEND', 'ANYMAIL')}))"
)


def test_the_console_email_backend_is_the_default_only_with_debug_on():
    assert settings_with(DEBUG="1")["email"] == "django.core.mail.backends.console.EmailBackend"
    assert settings_with()["email"] == "django.core.mail.backends.smtp.EmailBackend"


def test_with_nothing_set_it_is_production():
    result = run_settings(SECURITY_PROBE, SECRET_KEY=A_SECRET)
    probe = json.loads(result.stdout)
    assert probe["DEBUG"] is False
    assert (probe["SECURE_SSL_REDIRECT"], probe["SESSION_COOKIE_SECURE"], probe["CSRF_COOKIE_SECURE"]) == (
        True,
        True,
        True,
    )
    assert probe["SECURE_HSTS_SECONDS"] >= 31536000
    # Console email only prints: production sends, and never holds a built-in webhook secret.
    assert probe["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert probe["ANYMAIL"] == {}


def test_each_security_setting_is_turned_by_its_own_variable():
    result = run_settings(
        SECURITY_PROBE,
        SECRET_KEY=A_SECRET,
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_HSTS_SECONDS="0",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        CSRF_TRUSTED_ORIGINS="https://clinic.example",
    )
    probe = json.loads(result.stdout)
    assert (probe["SECURE_SSL_REDIRECT"], probe["SESSION_COOKIE_SECURE"], probe["CSRF_COOKIE_SECURE"]) == (
        False,
        False,
        False,
    )
    assert probe["SECURE_HSTS_SECONDS"] == 0
    assert probe["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert probe["CSRF_TRUSTED_ORIGINS"] == ["https://clinic.example"]


def test_check_deploy_is_clean_with_only_the_three_production_variables():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            **CLEAN,
            "SECRET_KEY": A_SECRET,
            "ALLOWED_HOSTS": "clinic.example",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/backfill",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_links_follow_the_port_unless_the_site_url_is_set():
    code = "import config.settings as s; print(s.SITE_URL)"
    assert run_settings(code, SECRET_KEY=A_SECRET, PORT="8123").stdout.strip() == "http://127.0.0.1:8123"
    assert run_settings(code, SECRET_KEY=A_SECRET).stdout.strip() == "http://127.0.0.1:8000"
    assert (
        run_settings(code, SECRET_KEY=A_SECRET, PORT="8123", SITE_URL="https://clinic.example/").stdout.strip()
        == "https://clinic.example"
    )


def test_check_deploy_refuses_webhooks_to_internal_addresses():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            **CLEAN,
            "SECRET_KEY": A_SECRET,
            "ALLOWED_HOSTS": "clinic.example",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/backfill",
            "WEBHOOK_ALLOW_PRIVATE": "1",
        },
    )
    assert result.returncode != 0
    assert "(clinic.E001) WEBHOOK_ALLOW_PRIVATE is on" in result.stderr


def test_only_the_demo_on_plain_http_may_turn_the_second_factor_off():
    probe = "import config.settings as s; print(s.MFA_REQUIRED_ROLES)"
    production = run_settings(probe, SECRET_KEY=A_SECRET, MFA_REQUIRED_ROLES="none")
    assert production.returncode != 0
    assert "only the demo may do" in production.stderr
    demo = run_settings(probe, SECRET_KEY=A_SECRET, MFA_REQUIRED_ROLES="none", SECURE_SSL_REDIRECT="0")
    assert demo.stdout.strip() == "[]"
    assert run_settings(probe, SECRET_KEY=A_SECRET).stdout.strip() == "['Clinic manager', 'Integrator']"
