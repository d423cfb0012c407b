"""When the checks before a write miss a concurrent one, the database's constraints refuse
it; the API answers 409, never 500, and nothing is saved."""

from datetime import timedelta

import pytest

from clinic.factories import PatientFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def post(client, url, data):
    return client.post(url, data, content_type="application/json")


def test_it_answers_409_when_the_overlap_constraint_catches_a_concurrent_booking(staff_client, monkeypatch):
    existing = AppointmentFactory(start=next_weekday_at(10))
    # As if the other booking committed between our check and our insert.
    monkeypatch.setattr(Appointment, "find_conflict", lambda self: None)

    response = post(
        staff_client,
        "/api/appointments/",
        {
            "patient": PatientFactory().pk,
            "provider": existing.provider_id,
            "start": existing.start.isoformat(),
            "end": (existing.start + timedelta(minutes=30)).isoformat(),
        },
    )

    assert response.status_code == 409
    assert response.json() == {"detail": "The appointment overlaps another one."}
    assert Appointment.objects.count() == 1


def test_it_answers_409_when_a_duplicate_waiting_entry_slips_past_the_check(staff_client, monkeypatch):
    entry = WaitlistEntryFactory()
    monkeypatch.setattr(WaitlistEntry, "clean", lambda self: None)

    response = post(staff_client, "/api/waitlist/", {"patient": entry.patient_id, "specialty": entry.specialty_id})

    assert response.status_code == 409
    assert response.json() == {"detail": "This conflicts with a change saved at the same time; reload and try again."}
    assert WaitlistEntry.objects.count() == 1
