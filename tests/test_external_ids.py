"""Integrators' own ids (docs/reference.md, Events): records carry them, and every related id can be one."""

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from clinic.factories import PatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment

pytestmark = pytest.mark.django_db


@pytest.fixture
def ehr(client):
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def post(client, path, body):
    return client.post(path, body, content_type="application/json")


def test_an_ehr_books_and_cancels_with_its_own_ids_only(ehr):
    PatientFactory(external_id="P-77")
    ProviderFactory(external_id="DR-5")
    start = next_weekday_at(9)
    booked = post(
        ehr,
        "/api/appointments/",
        {
            "patient_external_id": "P-77",
            "provider_external_id": "DR-5",
            "external_id": "A-1001",
            "start": start.isoformat(),
            "end": start.replace(minute=45).isoformat(),
        },
    )
    assert booked.status_code == 201, booked.json()
    found = ehr.get("/api/appointments/?external_id=A-1001").json()["results"]
    assert [item["id"] for item in found] == [booked.json()["id"]]
    cancelled = post(ehr, f"/api/appointments/{found[0]['id']}/cancel/", {"reason": "patient called"})
    assert cancelled.json()["status"] == "cancelled"


def test_an_unknown_external_id_is_a_field_error(ehr):
    start = next_weekday_at(9)
    response = post(
        ehr,
        "/api/appointments/",
        {
            "patient_external_id": "P-nobody",
            "provider": ProviderFactory().pk,
            "start": start.isoformat(),
            "end": start.replace(minute=45).isoformat(),
        },
    )
    assert response.status_code == 400
    assert response.json() == {"patient_external_id": ["No patient has the external id 'P-nobody'."]}
    assert not Appointment.objects.exists()


def test_a_nul_in_an_external_id_is_a_field_error_not_a_500(ehr):
    # PostgreSQL refuses NUL in a query; the schema fuzz found the 500 this was.
    start = next_weekday_at(9)
    response = post(
        ehr,
        "/api/appointments/",
        {
            "patient_external_id": "P-\x00",
            "provider": ProviderFactory().pk,
            "start": start.isoformat(),
            "end": start.replace(minute=45).isoformat(),
        },
    )
    assert response.status_code == 400
    assert response.json()["patient_external_id"] == ["Null characters are not allowed."]
    assert not Appointment.objects.exists()


def test_an_external_id_is_unique_per_kind_of_record(ehr):
    AppointmentFactory(external_id="A-1")
    appointment = AppointmentFactory.build()
    response = post(
        ehr,
        "/api/appointments/",
        {
            "patient": PatientFactory().pk,
            "provider": ProviderFactory().pk,
            "external_id": "A-1",
            "start": appointment.start.isoformat(),
            "end": appointment.end.isoformat(),
        },
    )
    assert response.status_code == 400
    assert "external_id" in response.json()


def test_the_waitlist_and_the_workflow_take_external_ids(ehr):
    patient = PatientFactory(external_id="P-9")
    provider = ProviderFactory(external_id="DR-9")
    entry = post(ehr, "/api/waitlist/", {"patient_external_id": "P-9", "specialty": provider.specialty_id})
    assert entry.status_code == 201 and entry.json()["patient"] == patient.pk
    workflow = post(
        ehr,
        "/api/trigger-workflow/",
        {
            "trigger_type": "provider_unavailable",
            "provider_external_id": "DR-9",
            "reason": "sick",
            "start_date": "2030-01-07",
            "end_date": "2030-01-07",
        },
    )
    assert workflow.status_code == 201
    assert workflow.json()["provider"] == provider.pk


def test_patients_and_providers_are_found_by_external_id(ehr):
    PatientFactory(external_id="P-1")
    PatientFactory(external_id="P-2")
    ProviderFactory(external_id="DR-1")
    assert [p["external_id"] for p in ehr.get("/api/patients/?external_id=P-2").json()["results"]] == ["P-2"]
    assert [p["external_id"] for p in ehr.get("/api/providers/?external_id=DR-1").json()["results"]] == ["DR-1"]
