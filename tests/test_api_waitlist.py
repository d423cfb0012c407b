from datetime import timedelta

import pytest
from django.utils import timezone

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def post(client, url, data):
    return client.post(url, data, content_type="application/json")


def test_it_adds_a_patient_with_their_own_preferences_by_default(staff_client):
    patient = PatientFactory(preferred_location=LocationFactory(name="Uptown"), available_days=["tue", "thu"])
    specialty = SpecialtyFactory()

    response = post(staff_client, "/api/waitlist/", {"patient": patient.pk, "specialty": specialty.pk})

    assert response.status_code == 201
    entry = WaitlistEntry.objects.get()
    assert (entry.preferred_location, entry.available_days) == (patient.preferred_location, ["tue", "thu"])
    assert (entry.reason, entry.status) == ("staff", "waiting")
    body = response.json()
    assert body["preferred_location"] == patient.preferred_location_id
    assert body["available_days"] == ["tue", "thu"]
    assert body["created_at"]


def test_it_keeps_preferences_given_explicitly(staff_client):
    patient = PatientFactory(available_days=["tue"])
    provider = ProviderFactory()
    earliest = timezone.localdate() + timedelta(days=30)
    latest = earliest + timedelta(days=31)

    post(
        staff_client,
        "/api/waitlist/",
        {
            "patient": patient.pk,
            "specialty": provider.specialty_id,
            "preferred_location": None,
            "preferred_provider": provider.pk,
            "available_days": [],
            "reason": "patient_request",
            "earliest_date": earliest.isoformat(),
            "latest_date": latest.isoformat(),
        },
    )

    entry = WaitlistEntry.objects.get()
    assert entry.preferred_location is None
    assert entry.preferred_provider == provider
    assert entry.available_days == []
    assert entry.reason == "patient_request"
    assert (entry.earliest_date, entry.latest_date) == (earliest, latest)


def test_it_refuses_a_second_waiting_entry_for_the_same_specialty(staff_client):
    entry = WaitlistEntryFactory()

    response = post(staff_client, "/api/waitlist/", {"patient": entry.patient_id, "specialty": entry.specialty_id})

    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["This patient is already waiting for this specialty."]}
    assert WaitlistEntry.objects.count() == 1


def test_it_refuses_a_latest_date_before_the_earliest(staff_client):
    response = post(
        staff_client,
        "/api/waitlist/",
        {
            "patient": PatientFactory().pk,
            "specialty": SpecialtyFactory().pk,
            "earliest_date": (timezone.localdate() + timedelta(days=40)).isoformat(),
            "latest_date": (timezone.localdate() + timedelta(days=10)).isoformat(),
        },
    )

    assert response.status_code == 400
    assert response.json() == {"latest_date": ["The latest date must not be before the earliest date."]}
    assert not WaitlistEntry.objects.exists()


def test_it_refuses_a_preferred_provider_of_another_specialty(staff_client):
    other = ProviderFactory(specialty=SpecialtyFactory(name="Pediatric PT"))

    response = post(
        staff_client,
        "/api/waitlist/",
        {
            "patient": PatientFactory().pk,
            "specialty": SpecialtyFactory(name="Orthopedic PT").pk,
            "preferred_provider": other.pk,
        },
    )

    assert response.status_code == 400
    assert response.json() == {"preferred_provider": ["The preferred provider practises another specialty."]}


def test_it_refuses_an_unknown_reason(staff_client):
    response = post(
        staff_client,
        "/api/waitlist/",
        {
            "patient": PatientFactory().pk,
            "specialty": SpecialtyFactory().pk,
            "reason": "vip",
        },
    )

    assert response.status_code == 400
    assert response.json() == {"reason": ['"vip" is not a valid choice.']}


def test_it_books_a_new_entry_into_an_open_freed_slot(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    slot = FreedSlot.objects.get(appointment=appointment)
    assert slot.status == FreedSlot.Status.NO_MATCH
    patient = HighRiskPatientFactory()

    with django_capture_on_commit_callbacks(execute=True):
        post(staff_client, "/api/waitlist/", {"patient": patient.pk, "specialty": appointment.provider.specialty_id})

    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert slot.filled_by.patient == patient
    assert WaitlistEntry.objects.get().status == WaitlistEntry.Status.BOOKED


def test_it_removes_an_entry_but_keeps_its_history(staff_client):
    entry = WaitlistEntryFactory()

    response = staff_client.delete(f"/api/waitlist/{entry.pk}/")

    assert response.status_code == 204
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.REMOVED
    assert staff_client.get(f"/api/waitlist/{entry.pk}/").json()["status"] == "removed"


def test_it_removes_an_entry_only_once_but_answers_the_same(staff_client):
    entry = WaitlistEntryFactory(status=WaitlistEntry.Status.REMOVED)

    assert staff_client.delete(f"/api/waitlist/{entry.pk}/").status_code == 204


def test_it_refuses_to_remove_a_booked_entry_with_409(staff_client):
    entry = WaitlistEntryFactory(status=WaitlistEntry.Status.BOOKED)

    response = staff_client.delete(f"/api/waitlist/{entry.pk}/")

    assert response.status_code == 409
    assert response.json() == {"detail": "This waitlist entry is booked; only waiting entries can be removed."}
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.BOOKED


def test_it_filters_the_waitlist_by_status_specialty_and_patient(staff_client):
    wanted = WaitlistEntryFactory(specialty=SpecialtyFactory(name="Sports PT"))
    WaitlistEntryFactory(specialty=wanted.specialty, status=WaitlistEntry.Status.REMOVED)
    WaitlistEntryFactory(specialty=SpecialtyFactory(name="Pediatric PT"))

    by_status = staff_client.get(f"/api/waitlist/?status=waiting&specialty={wanted.specialty_id}").json()
    by_patient = staff_client.get(f"/api/waitlist/?patient={wanted.patient_id}").json()

    assert [e["id"] for e in by_status["results"]] == [wanted.pk]
    assert [e["id"] for e in by_patient["results"]] == [wanted.pk]


def test_it_answers_the_seeds_path_without_a_trailing_slash(staff_client):
    WaitlistEntryFactory()

    response = staff_client.get("/api/waitlist")

    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_it_lists_a_page_of_the_waitlist_in_a_bounded_number_of_queries(staff_client, django_assert_max_num_queries):
    WaitlistEntryFactory.create_batch(20)

    with django_assert_max_num_queries(4):  # session, user, count, page
        response = staff_client.get("/api/waitlist/")

    assert len(response.json()["results"]) == 20
