from datetime import timedelta

import pytest
from django.utils import timezone

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


def post(client, url, data):
    return client.post(url, data, content_type="application/json")


def booking(patient, provider, start, minutes=45):
    return {
        "patient": patient.pk,
        "provider": provider.pk,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
    }


def test_it_books_an_appointment_from_the_api(staff_client):
    patient, provider, start = PatientFactory(), ProviderFactory(), next_weekday_at(9)

    response = post(staff_client, "/api/appointments/", booking(patient, provider, start))

    assert response.status_code == 201
    appointment = Appointment.objects.get()
    assert (appointment.patient, appointment.provider, appointment.start) == (patient, provider, start)
    assert appointment.source == Appointment.Source.API
    assert response.json() == {
        "id": appointment.pk,
        "patient": patient.pk,
        "provider": provider.pk,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=45)).isoformat(),
        "status": "scheduled",
        "source": "api",
        "cancel_reason": "",
        "external_id": None,
    }


def test_it_ignores_a_status_sent_on_create(staff_client):
    data = {
        **booking(PatientFactory(), ProviderFactory(), next_weekday_at(9)),
        "status": "completed",
        "source": "backfill",
    }

    post(staff_client, "/api/appointments/", data)

    appointment = Appointment.objects.get()
    assert (appointment.status, appointment.source) == ("scheduled", "api")


def test_it_refuses_a_booking_over_the_providers_other_appointment_with_409(staff_client):
    existing = AppointmentFactory(start=next_weekday_at(10))

    response = post(
        staff_client,
        "/api/appointments/",
        booking(PatientFactory(), existing.provider, existing.start + timedelta(minutes=15)),
    )

    assert response.status_code == 409
    assert response.json() == {"detail": "The provider already has an appointment at that time."}
    assert Appointment.objects.count() == 1


def test_it_refuses_a_booking_when_the_patient_is_busy_with_409(staff_client):
    existing = AppointmentFactory(start=next_weekday_at(10))

    response = post(staff_client, "/api/appointments/", booking(existing.patient, ProviderFactory(), existing.start))

    assert response.status_code == 409
    assert response.json() == {"detail": "The patient already has an appointment at that time."}


def test_it_allows_back_to_back_appointments(staff_client):
    existing = AppointmentFactory(start=next_weekday_at(10))

    response = post(staff_client, "/api/appointments/", booking(PatientFactory(), existing.provider, existing.end))

    assert response.status_code == 201


def test_it_refuses_an_appointment_ending_before_it_starts(staff_client):
    response = post(
        staff_client, "/api/appointments/", booking(PatientFactory(), ProviderFactory(), next_weekday_at(9), -30)
    )

    assert response.status_code == 400
    assert response.json() == {"end": ["The appointment must end after it starts."]}
    assert not Appointment.objects.exists()


def test_it_refuses_a_booking_with_missing_fields(staff_client):
    response = post(staff_client, "/api/appointments/", {"patient": PatientFactory().pk})

    assert response.status_code == 400
    assert response.json() == {
        "provider": ["This field is required."],
        "start": ["This field is required."],
        "end": ["This field is required."],
    }


def test_it_does_not_offer_updating_or_deleting_appointments(staff_client):
    appointment = AppointmentFactory()
    url = f"/api/appointments/{appointment.pk}/"

    patched = staff_client.patch(url, {"status": "completed"}, content_type="application/json")
    deleted = staff_client.delete(url)

    assert (patched.status_code, deleted.status_code) == (405, 405)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.SCHEDULED


def test_it_cancels_and_backfills_the_freed_slot(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=appointment.provider.specialty)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            staff_client, f"/api/appointments/{appointment.pk}/cancel/", {"reason": "patient called in sick"}
        )

    assert response.status_code == 200
    slot = FreedSlot.objects.get(appointment=appointment)
    assert response.json()["freed_slot"] == slot.pk
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_reason"] == "patient called in sick"
    appointment.refresh_from_db()
    assert appointment.cancelled_by == "frontdesk"
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert slot.filled_by.patient == entry.patient


def test_it_answers_a_null_freed_slot_when_the_slot_is_too_soon_to_fill(staff_client):
    soon = timezone.now() + timedelta(minutes=20)
    appointment = AppointmentFactory(start=soon, end=soon + timedelta(minutes=45))

    response = post(staff_client, f"/api/appointments/{appointment.pk}/cancel/", {"reason": "running late"})

    assert response.status_code == 200
    assert response.json()["freed_slot"] is None
    assert not FreedSlot.objects.exists()


def test_it_requires_a_reason_to_cancel(staff_client):
    appointment = AppointmentFactory()

    response = post(staff_client, f"/api/appointments/{appointment.pk}/cancel/", {"reason": "  "})

    assert response.status_code == 400
    assert response.json() == {"reason": ["This field may not be blank."]}
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.SCHEDULED


def test_it_refuses_to_cancel_twice_with_409(staff_client):
    appointment = AppointmentFactory(status=Appointment.Status.CANCELLED)

    response = post(staff_client, f"/api/appointments/{appointment.pk}/cancel/", {"reason": "again"})

    assert response.status_code == 409
    assert response.json() == {"detail": "This appointment is cancelled and cannot be cancelled."}


def test_it_filters_appointments_by_provider_status_and_source(staff_client):
    provider = ProviderFactory()
    wanted = AppointmentFactory(provider=provider, source=Appointment.Source.API)
    AppointmentFactory(provider=provider, source=Appointment.Source.STAFF, start=wanted.end)
    AppointmentFactory(source=Appointment.Source.API)

    response = staff_client.get(f"/api/appointments/?provider={provider.pk}&source=api&status=scheduled")

    assert [a["id"] for a in response.json()["results"]] == [wanted.pk]


def test_it_filters_appointments_by_the_clinic_day(staff_client):
    # 23:30 in New York is already the next day in UTC: the filter uses the clinic's day.
    late = next_weekday_at(23).replace(minute=30)
    evening = AppointmentFactory(start=late, end=late + timedelta(minutes=20))
    AppointmentFactory(start=late + timedelta(hours=1), end=late + timedelta(hours=2))

    response = staff_client.get(f"/api/appointments/?date={late.date().isoformat()}")

    assert [a["id"] for a in response.json()["results"]] == [evening.pk]


def test_it_filters_appointments_by_start_range(staff_client):
    first = AppointmentFactory(start=next_weekday_at(9))
    second = AppointmentFactory(start=next_weekday_at(11))
    AppointmentFactory(start=next_weekday_at(14))
    after, before = first.start.isoformat(), next_weekday_at(12).isoformat()

    response = staff_client.get("/api/appointments/", {"start_after": after, "start_before": before})

    assert [a["id"] for a in response.json()["results"]] == [first.pk, second.pk]


def test_it_refuses_an_unknown_status_filter(staff_client):
    response = staff_client.get("/api/appointments/?status=lost")

    assert response.status_code == 400
    assert response.json() == {"status": ["Select a valid choice. lost is not one of the available choices."]}


def test_it_refuses_a_malformed_date_filter(staff_client):
    response = staff_client.get("/api/appointments/?date=tomorrow")

    assert response.status_code == 400
    assert response.json() == {"date": ["Enter a valid date."]}


def test_it_lists_a_page_of_appointments_in_a_bounded_number_of_queries(staff_client, django_assert_max_num_queries):
    provider = ProviderFactory()
    for hour in range(20):
        AppointmentFactory(provider=provider, start=next_weekday_at(0) + timedelta(hours=hour))

    with django_assert_max_num_queries(4):  # session, user, count, page
        response = staff_client.get("/api/appointments/")

    assert response.json()["count"] == 20


def test_it_refuses_an_appointment_centuries_away(staff_client):
    data = {**booking(PatientFactory(), ProviderFactory(), next_weekday_at(9)), "start": "1559-06-30T11:59:30Z"}

    response = post(staff_client, "/api/appointments/", data)

    assert response.status_code == 400
    assert response.json() == {"start": ["Dates must be in the years 2000 to 2099."]}
    assert not Appointment.objects.exists()
