"""Hostile or absurd input answers 4xx, never 500; and an error that does happen is logged
with its traceback and counted in /metrics. CI runs this file on SQLite and PostgreSQL:
PostgreSQL refuses NUL in text where SQLite takes it."""

import logging
import re
from contextlib import contextmanager
from datetime import timedelta
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.authtoken.models import Token
from twilio.request_validator import RequestValidator

from clinic.factories import PatientFactory
from clinic.input_limits import MAX_JSON_DEPTH
from clinic.models import InboundText, Patient
from ops.sweep import SWEEP_FUNC

pytestmark = pytest.mark.django_db


@pytest.fixture
def ehr(client):
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    client.raise_request_exception = False
    return client


@pytest.fixture
def desk(staff_client):
    staff_client.raise_request_exception = False
    return staff_client


@pytest.mark.parametrize(
    "path",
    [
        "Patient?identifier=%00",
        "Patient?identifier=urn:backfill:external-id|%00",
        "Practitioner?identifier=%00",
        "Location?identifier=%00",
        "Appointment?identifier=%00",
        "Appointment?status=%00",
        "Appointment?date=%00",
        "Appointment?patient=Patient/%00",
        "Appointment?practitioner=%00",
        "Schedule?actor=%00",
        "Slot?schedule=%00",
        "Slot?status=%00",
        "Slot?start=%00",
        "Patient?%00=1",
        "Patient/%00",
        "Slot/freed-%00",
    ],
)
def test_a_nul_in_a_fhir_search_is_an_operation_outcome(ehr, path):
    response = ehr.get(f"/fhir/{path}")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert "NUL characters" in response.json()["issue"][0]["diagnostics"]


def test_a_superscript_digit_is_no_id(ehr):
    assert ehr.get("/fhir/Appointment?patient=%C2%B2").status_code == 400
    assert ehr.get("/fhir/Patient/%C2%B2").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/admin/scheduling/appointment/?status__exact=%00",
        "/admin/clinic/patient/?q=%00",
        "/schedule/?date=%00",
        "/dashboard/?location=%00",
        "/api/appointments/?status=%00",
        "/messages/?q=%00",
    ],
)
def test_a_nul_in_an_address_is_refused(desk, path):
    response = desk.get(path)
    assert response.status_code == 400
    assert b"NUL characters (%00) are not accepted" in response.content


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31", "1999-12-31"])
def test_the_schedule_of_a_day_outside_the_clinic_years_is_refused(desk, day):
    response = desk.get(f"/schedule/?date={day}")
    assert response.status_code == 400
    assert b"Dates must be in the years 2000 to 2099." in response.content


@pytest.mark.parametrize(
    "query", ["end_date=0001-01-01", "end_date=9999-12-31", "start_date=0001-01-01", "end_date=31-12-9999x"]
)
def test_the_dashboard_refuses_dates_out_of_range_or_garbled(desk, query):
    response = desk.get(f"/dashboard/?{query}")
    assert response.status_code == 400
    assert (
        b"Dates must be in the years 2000 to 2099." in response.content or b"Enter a valid date." in response.content
    )


def test_a_multipart_form_to_the_api_is_a_415_with_an_idempotency_key_too(ehr):
    """The NUL check parses the form; the idempotency middleware still reads the raw body."""
    response = ehr.post("/api/waitlist/", {"patient_id": "1"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 415


def test_a_form_without_its_multipart_boundary_is_a_400(ehr):
    response = ehr.generic("POST", "/api/waitlist/", b"x", content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.json() == {"detail": "The form could not be read: check its Content-Type."}


@pytest.mark.parametrize("zone", ["x" * 300, "Europe/" + "é" * 200, "../../../etc/passwd"])
def test_a_time_zone_that_no_file_can_hold_is_a_400(desk, zone):
    body = f'{{"name": "Riverside", "time_zone": "{zone}"}}'
    response = desk.post("/api/locations/", body, content_type="application/json")
    assert response.status_code == 400
    assert "is not a time zone" in response.json()["time_zone"][0]


def test_json_nested_100000_deep_is_a_400(desk):
    response = desk.post("/api/patients/", "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": f"JSON nested deeper than {MAX_JSON_DEPTH} levels is not accepted."}


def test_json_nested_just_too_deep_is_a_400_and_changes_nothing(desk):
    patient = {"first_name": "Ada", "last_name": "King", "email": "ada@example.com"}
    deep_enough = {**patient, "notes": {"a": [[]] * 3}}
    for _ in range(MAX_JSON_DEPTH - 4):
        deep_enough["notes"] = [deep_enough["notes"]]
    assert desk.post("/api/patients/", deep_enough, content_type="application/json").status_code == 201
    too_deep = {**deep_enough, "email": "ada2@example.com", "notes": [deep_enough["notes"]]}
    response = desk.post("/api/patients/", too_deep, content_type="application/json")
    assert response.status_code == 400
    assert Patient.objects.count() == 1


@pytest.mark.parametrize("field", ["Body", "From", "MessageSid", "To"])
def test_a_signed_twilio_reply_with_a_nul_is_refused(client, field):
    patient = PatientFactory(preferred_channel="sms", sms_consent=True)
    data = {"MessageSid": "SM1", "From": str(patient.phone), "To": settings.TWILIO_FROM_NUMBER, "Body": "STOP"}
    data[field] += "\x00"
    response = signed_post(client, "/sms/twilio/inbound/", data)
    assert response.status_code == 400
    assert not InboundText.objects.exists()
    assert Patient.objects.get(pk=patient.pk).sms_consent


@pytest.mark.parametrize("field", ["MessageSid", "MessageStatus", "ErrorCode"])
def test_a_signed_twilio_status_callback_with_a_nul_is_refused(client, field):
    data = {"MessageSid": "SM1", "MessageStatus": "delivered", "ErrorCode": "0"}
    data[field] += "\x00"
    assert signed_post(client, "/sms/twilio/status/", data).status_code == 400


def signed_post(client, path, data):
    """As Twilio posts: a urlencoded form, signed."""
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(f"http://testserver{path}", data)
    return client.post(
        path, urlencode(data), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature
    )


def test_an_unhandled_error_is_logged_with_its_traceback_and_counted(client, staff_user, monkeypatch):
    def broken(self, request, *args, **kwargs):
        raise RuntimeError("a bug in the list")

    monkeypatch.setattr("clinic.api.LocationViewSet.list", broken)
    client.raise_request_exception = False
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=staff_user).key}"
    with written_to_the_log() as written:
        response = client.get("/api/locations/")
    assert response.status_code == 500
    assert "The error is logged" in response.json()["detail"]
    assert (
        "ERROR django.request Internal Server Error: /api/locations/\nTraceback (most recent call last):"
        in written.text
    )
    assert "RuntimeError: a bug in the list" in written.text
    assert errors_counted(client) == 1
    client.get("/api/locations/")
    assert errors_counted(client) == 2


@contextmanager
def written_to_the_log():
    """What the block writes to django.request's log file (logs/api.log), in `.text` after it."""
    log_file = next(
        Path(handler.baseFilename)
        for handler in logging.getLogger("django.request").handlers
        if isinstance(handler, RotatingFileHandler)
    )
    logged_before = log_file.stat().st_size if log_file.exists() else 0
    written = SimpleNamespace(text="")
    yield written
    with log_file.open() as log:
        log.seek(logged_before)
        written.text = log.read()


def test_a_503_a_view_chooses_to_answer_is_no_error_in_the_log(client):
    Schedule.objects.filter(func=SWEEP_FUNC).update(next_run=timezone.now() - timedelta(minutes=10))
    with written_to_the_log() as written:
        assert client.get("/readyz").status_code == 503
    assert "/readyz" not in written.text


def errors_counted(client):
    metrics = client.get("/metrics").content.decode()
    return float(re.search(r'^backfill_unhandled_errors_total\{kind="error"\} (\S+)$', metrics, re.M).group(1))


def test_an_error_met_while_the_cache_is_down_is_still_answered_and_logged(client, staff_user, monkeypatch, caplog):
    def broken(self, request, *args, **kwargs):
        raise RuntimeError("a bug in the list")

    class CacheDown:
        def __getattr__(self, name):
            raise ConnectionError("Redis is down")

    monkeypatch.setattr("clinic.api.LocationViewSet.list", broken)
    monkeypatch.setattr("clinic.errors.cache", CacheDown())
    client.raise_request_exception = False
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=staff_user).key}"
    with caplog.at_level(logging.WARNING, logger="clinic"), propagating("clinic"):
        assert client.get("/api/locations/").status_code == 500
    assert "unhandled_error.not_counted error=ConnectionError" in caplog.text
    metrics = client.get("/metrics")
    assert metrics.status_code == 200  # the rest of the metrics still answer
    assert "backfill_unhandled_errors_total{" not in metrics.content.decode()


@contextmanager
def propagating(name):
    """Loggers of Backfill's write to their own handlers only; caplog listens at the root."""
    logger = logging.getLogger(name)
    logger.propagate = True
    try:
        yield
    finally:
        logger.propagate = False


def test_the_api_schema_says_every_operation_may_answer_400(client):
    """A NUL in any address is a 400, so the schema (and the fuzz test reading it) says so."""
    schema = client.get("/api/schema/?format=json").json()
    operations = [operation for path in schema["paths"].values() for operation in path.values()]
    assert operations
    assert all("400" in operation["responses"] for operation in operations)
