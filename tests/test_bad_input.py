"""Bad input gets a clear answer and changes nothing; no 500, no broken message (docs/reference.md, Production)."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import OperationalError
from rest_framework.authtoken.models import Token

from clinic.factories import ProviderFactory
from clinic.log import OneLineFormatter
from clinic.models import OutboundEmail, Patient
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from scheduling.models import Appointment

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["Ada\nKing", "Ada\rKing", "Ada\x00", "Ada\x1b[31m"])
def test_the_api_refuses_control_characters_in_a_name(staff_client, name):
    response = staff_client.post(
        "/api/patients/",
        {"first_name": name, "last_name": "King", "email": "ada@example.com"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "Use a single line of text, without line breaks or control characters." in response.json()["first_name"]
    assert not Patient.objects.exists()


def test_the_api_refuses_a_cancel_reason_that_would_forge_a_log_line(staff_client):
    appointment = AppointmentFactory()
    response = staff_client.post(
        f"/api/appointments/{appointment.pk}/cancel/",
        {"reason": "late\n2026-12-02 INFO backfill [BACKFILL] Auto-backfilled"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "reason" in response.json()
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.SCHEDULED


def test_a_reason_given_in_code_is_kept_on_one_line():
    appointment = AppointmentFactory()
    appointment.cancel("sick\nsince Monday", by="frontdesk")
    assert Appointment.objects.get(pk=appointment.pk).cancel_reason == "sick since Monday"


def test_a_log_line_cannot_be_forged():
    record = logging.LogRecord(
        "scheduling", logging.INFO, __file__, 1, "appointment.cancelled reason=%s", ("late\nFAKE",), None
    )
    line = OneLineFormatter("%(message)s").format(record)
    assert line == "appointment.cancelled reason=late\\nFAKE"


def test_subjects_are_plain_text_on_one_line(django_capture_on_commit_callbacks):
    provider = ProviderFactory(name="O'Neil & Sons")
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks():
        email = queue_email(OutboundEmail.Kind.ACCEPT_CONFIRMATION, appointment)
    assert email.subject.startswith("Confirmed: O'Neil & Sons, ")
    assert "\n" not in email.subject


def test_an_absurd_admin_filter_answers_400(staff_client):
    response = staff_client.get("/admin/scheduling/appointment/?start__year=99999999999")
    assert response.status_code == 400
    assert b"out of range" in response.content


@pytest.fixture
def failing_locations(monkeypatch):
    def fail_with(error):
        def list_locations(self, request, *args, **kwargs):
            raise error

        monkeypatch.setattr("clinic.api.LocationViewSet.list", list_locations)

    return fail_with


def test_the_api_answers_json_503_while_the_database_is_down(client, staff_user, failing_locations):
    failing_locations(OperationalError("connection refused"))
    client.raise_request_exception = False
    response = client.get("/api/locations/", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff_user).key}")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "5"
    assert "briefly unavailable" in response.json()["detail"]


def test_the_api_answers_json_on_a_server_error(client, staff_user, failing_locations):
    failing_locations(RuntimeError("a bug"))
    client.raise_request_exception = False
    response = client.get("/api/locations/", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff_user).key}")
    assert response.status_code == 500
    assert response.json() == {"detail": "Something went wrong on our side. The error is logged; retry shortly."}


def test_a_page_answers_503_not_500_while_the_database_is_down(client, staff_client, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr("frontdesk.views.DaySchedule.for_day", down)
    staff_client.raise_request_exception = False
    response = staff_client.get("/schedule/")
    assert response.status_code == 503
    assert b"Back in a moment" in response.content


def test_every_page_carries_a_content_security_policy_without_inline_scripts(client):
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy


URLS_PROBE = (
    "import django, json; django.setup(); from django.urls import resolve, Resolver404\n"
    "def exists(path):\n"
    "    try: resolve(path); return True\n"
    "    except Resolver404: return False\n"
    "print(json.dumps({esp: exists(f'/anymail/{esp}/tracking/') for esp in ('sendgrid', 'mailgun', 'postmark')}))"
)


def tracking_urls(**env):
    base = {"DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": "x" * 50, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", URLS_PROBE], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_tracking_webhook_exists_until_an_esp_and_its_secret_are_set():
    assert tracking_urls() == {"sendgrid": False, "mailgun": False, "postmark": False}
    assert tracking_urls(EMAIL_BACKEND="anymail.backends.sendgrid.EmailBackend") == {
        "sendgrid": False,
        "mailgun": False,
        "postmark": False,
    }
    assert tracking_urls(
        EMAIL_BACKEND="anymail.backends.sendgrid.EmailBackend", ANYMAIL_WEBHOOK_SECRET="desk:s3cret-long"
    ) == {"sendgrid": True, "mailgun": False, "postmark": False}
