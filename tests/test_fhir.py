"""The FHIR R4 view (SPEC 13): every resource and bundle validates with fhir.resources."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from rest_framework.authtoken.models import Token

from clinic.factories import LocationFactory, PatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import ProviderUnavailability

pytestmark = pytest.mark.django_db


@pytest.fixture
def ehr(client):
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def fhir(client, path):
    response = client.get(f"/fhir/{path}", HTTP_ACCEPT="application/fhir+json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    validate(body)
    return body


def validate(body):
    """Raises unless the body is a valid FHIR R4B resource (bundles: every entry too)."""
    get_fhir_model_class(body["resourceType"]).model_validate(body)


def test_the_capability_statement_lists_every_resource(client):
    statement = fhir(client, "metadata")
    assert statement["fhirVersion"] == "4.0.1"
    assert {r["type"] for r in statement["rest"][0]["resource"]} == {
        "Patient",
        "Practitioner",
        "Location",
        "Schedule",
        "Slot",
        "Appointment",
    }


def test_a_patient_with_its_external_id_as_identifier(ehr, settings):
    patient = PatientFactory(first_name="Maya", last_name="Patel", external_id="MRN-42")
    resource = fhir(ehr, f"Patient/{patient.pk}")
    assert resource["name"] == [{"family": "Patel", "given": ["Maya"]}]
    assert resource["identifier"] == [{"system": settings.FHIR_IDENTIFIER_SYSTEM, "value": "MRN-42"}]
    found = fhir(ehr, "Patient?identifier=MRN-42")
    assert [entry["resource"]["id"] for entry in found["entry"]] == [str(patient.pk)]


def test_practitioner_location_and_schedule(ehr):
    provider = ProviderFactory(name="Dr. Elena Diaz", location=LocationFactory(name="Riverside", address="7 Quay Rd"))
    assert fhir(ehr, f"Practitioner/{provider.pk}")["name"] == [{"text": "Dr. Elena Diaz"}]
    assert fhir(ehr, f"Location/{provider.location_id}")["address"] == {"text": "7 Quay Rd"}
    schedule = fhir(ehr, f"Schedule/{provider.pk}")
    assert schedule["actor"][0]["reference"] == f"Practitioner/{provider.pk}"
    assert fhir(ehr, f"Schedule?actor=Practitioner/{provider.pk}")["total"] == 1


def test_a_freed_slot_is_free_and_an_absence_busy_unavailable(ehr, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(start=next_weekday_at(10, days_ahead=3))
    with django_capture_on_commit_callbacks(execute=False):
        appointment.cancel("sick", by="frontdesk")
    day = timezone.localtime(appointment.start).date()
    ProviderUnavailability.objects.create(
        provider=appointment.provider,
        start_date=day + timedelta(days=7),
        end_date=day + timedelta(days=7),
        reason="training",
    )
    bundle = fhir(ehr, f"Slot?schedule=Schedule/{appointment.provider_id}")
    statuses = sorted(entry["resource"]["status"] for entry in bundle["entry"])
    assert statuses == ["busy-unavailable", "free"]
    free = fhir(ehr, f"Slot?status=free&start={day.isoformat()}")
    assert [entry["resource"]["start"] for entry in free["entry"]] == [
        timezone.localtime(appointment.start).isoformat()
    ]
    assert fhir(ehr, f"Slot/{free['entry'][0]['resource']['id']}")["status"] == "free"


def test_appointments_searched_by_patient_date_and_status(ehr):
    patient = PatientFactory()
    booked = AppointmentFactory(patient=patient, start=next_weekday_at(9, days_ahead=2))
    AppointmentFactory(patient=patient, start=next_weekday_at(9, days_ahead=9))
    cancelled = AppointmentFactory(start=next_weekday_at(11, days_ahead=2))
    cancelled.cancel("moved away", by="frontdesk")
    day = timezone.localtime(booked.start).date().isoformat()
    mine_that_day = fhir(ehr, f"Appointment?patient=Patient/{patient.pk}&date={day}")
    assert [entry["resource"]["id"] for entry in mine_that_day["entry"]] == [str(booked.pk)]
    assert mine_that_day["entry"][0]["resource"]["status"] == "booked"
    gone = fhir(ehr, f"Appointment?status=cancelled&date=ge{day}")
    assert [entry["resource"]["cancelationReason"]["text"] for entry in gone["entry"]] == ["moved away"]


def test_a_search_is_paged_with_a_next_link(ehr):
    for _ in range(3):
        PatientFactory()
    first = fhir(ehr, "Patient?_count=2")
    assert (first["total"], len(first["entry"])) == (3, 2)
    assert [link["relation"] for link in first["link"]] == ["self", "next"]


def test_bad_searches_and_unknown_ids_answer_an_operation_outcome(ehr):
    unknown = ehr.get("/fhir/Patient/999")
    assert unknown.status_code == 404
    validate(unknown.json())
    bad = ehr.get("/fhir/Appointment?date=someday")
    assert bad.status_code == 400
    assert "is not a date" in bad.json()["issue"][0]["diagnostics"]
    assert ehr.get("/fhir/Appointment?colour=blue").status_code == 400
    for edge in ("9999-12-31", "0001-01-01"):
        far = ehr.get(f"/fhir/Appointment?date={edge}")
        assert far.status_code == 400
        assert "out of range" in far.json()["issue"][0]["diagnostics"]


def test_the_fhir_view_needs_the_same_credentials_as_the_api(client):
    assert client.get("/fhir/Patient").status_code in (401, 403)
