from datetime import timedelta

import pytest
from django.utils import timezone

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def freed_slot(appointment, capture):
    """Cancel the appointment the way everyone does, running the backfill job."""
    with capture(execute=True):
        appointment.cancel("patient called in sick")
    return FreedSlot.objects.get(appointment=appointment)


def slot_on(day_offset=2, hour=10, status=FreedSlot.Status.OPEN, provider=None, **fields):
    appointment = AppointmentFactory(
        provider=provider or ProviderFactory(),
        start=next_weekday_at(hour, day_offset),
        status=Appointment.Status.CANCELLED,
    )
    return FreedSlot.objects.create(
        provider=appointment.provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        status=status,
        **fields,
    )


def test_it_shows_a_backfilled_slot_with_its_match_log(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    first = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(no_show_risk=0.9), specialty=appointment.provider.specialty
    )
    second = WaitlistEntryFactory(patient=PatientFactory(no_show_risk=0.65), specialty=appointment.provider.specialty)
    slot = freed_slot(appointment, django_capture_on_commit_callbacks)

    body = staff_client.get(f"/api/freed-slots/{slot.pk}/").json()

    slot.refresh_from_db()
    assert body["status"] == "backfilled"
    assert body["appointment"] == appointment.pk
    assert body["filled_by"] == slot.filled_by_id
    assert body["reason"] == "patient called in sick"
    assert [(m["patient"], m["rank"], m["outcome"]) for m in body["match_log"]] == [
        (first.patient_id, 1, "booked"),
        (second.patient_id, 2, "ranked_lower"),
    ]
    assert body["match_log"][0]["breakdown"] == {
        "no_show_risk": 40,
        "specialty": 20,
        "availability": 20,
        "location": 10,
    }
    assert body["match_log"][0]["score"] == 90


def test_it_lists_the_latest_run_first_in_the_match_log(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    busy = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(no_show_risk=0.95), specialty=appointment.provider.specialty
    )
    AppointmentFactory(patient=busy.patient, start=appointment.start, end=appointment.end)
    slot = freed_slot(appointment, django_capture_on_commit_callbacks)  # run 1: the only candidate is busy
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=appointment.provider.specialty)

    with django_capture_on_commit_callbacks(execute=True):
        post(staff_client, f"/api/freed-slots/{slot.pk}/retry/")

    body = staff_client.get(f"/api/freed-slots/{slot.pk}/").json()
    assert [(m["run"], m["rank"], m["patient"], m["outcome"]) for m in body["match_log"]] == [
        (2, 1, busy.patient_id, "already_booked"),
        (2, 2, entry.patient_id, "booked"),
        (1, 1, busy.patient_id, "already_booked"),
    ]


def test_it_filters_freed_slots_by_status(staff_client):
    backfilled = slot_on(status=FreedSlot.Status.NO_MATCH)
    slot_on(hour=11)

    response = staff_client.get("/api/freed-slots/?status=no_match")

    assert [s["id"] for s in response.json()["results"]] == [backfilled.pk]


def test_it_filters_freed_slots_by_provider_and_clinic_day(staff_client):
    provider = ProviderFactory()
    wanted = slot_on(day_offset=3, provider=provider)
    slot_on(day_offset=4, provider=provider)
    slot_on(day_offset=3)
    day = timezone.localtime(wanted.start).date()

    response = staff_client.get(f"/api/freed-slots/?provider={provider.pk}&date={day.isoformat()}")

    assert [s["id"] for s in response.json()["results"]] == [wanted.pk]


def test_it_answers_the_seeds_path_without_a_trailing_slash(staff_client):
    slot_on()

    response = staff_client.get("/api/freed-slots")

    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_it_refuses_an_unknown_slot_status(staff_client):
    response = staff_client.get("/api/freed-slots/?status=done")

    assert response.status_code == 400
    assert response.json() == {"status": ["Select a valid choice. done is not one of the available choices."]}


def test_it_does_not_let_freed_slots_be_edited(staff_client):
    slot = slot_on()

    response = staff_client.patch(
        f"/api/freed-slots/{slot.pk}/", {"status": "backfilled"}, content_type="application/json"
    )

    assert response.status_code == 405
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.OPEN


def test_it_retries_a_slot_that_found_nobody(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    slot = freed_slot(appointment, django_capture_on_commit_callbacks)
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=appointment.provider.specialty)

    with django_capture_on_commit_callbacks(execute=True):
        response = post(staff_client, f"/api/freed-slots/{slot.pk}/retry/")

    assert response.status_code == 202
    assert response.json()["id"] == slot.pk
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert slot.filled_by.patient == entry.patient


def test_it_refuses_to_retry_a_backfilled_slot_with_409(staff_client):
    slot = slot_on(status=FreedSlot.Status.BACKFILLED, filled_by=AppointmentFactory())

    response = post(staff_client, f"/api/freed-slots/{slot.pk}/retry/")

    assert response.status_code == 409
    assert response.json() == {"detail": "This slot is backfilled; there is nothing to retry."}


def test_it_books_a_chosen_entry_into_a_slot_by_hand(staff_client):
    slot = slot_on(status=FreedSlot.Status.NO_MATCH)
    entry = WaitlistEntryFactory(patient=PatientFactory(no_show_risk=0.1), specialty=slot.provider.specialty)

    response = post(staff_client, f"/api/freed-slots/{slot.pk}/book/", {"waitlist_entry": entry.pk})

    assert response.status_code == 200
    assert response.json()["status"] == "manual"
    slot.refresh_from_db()
    entry.refresh_from_db()
    assert slot.filled_by.patient == entry.patient
    assert entry.status == WaitlistEntry.Status.BOOKED


def test_it_refuses_to_book_an_entry_of_another_specialty_with_409(staff_client):
    slot = slot_on(status=FreedSlot.Status.NO_MATCH)
    entry = WaitlistEntryFactory(specialty=SpecialtyFactory(name="Pediatric PT"))

    response = post(staff_client, f"/api/freed-slots/{slot.pk}/book/", {"waitlist_entry": entry.pk})

    assert response.status_code == 409
    assert response.json() == {"detail": "That patient is waiting for another specialty."}
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.NO_MATCH


def test_it_refuses_to_book_an_unknown_entry(staff_client):
    slot = slot_on()

    response = post(staff_client, f"/api/freed-slots/{slot.pk}/book/", {"waitlist_entry": 424242})

    assert response.status_code == 400
    assert response.json() == {"waitlist_entry": ['Invalid pk "424242" - object does not exist.']}


def test_it_lists_a_page_of_freed_slots_in_a_bounded_number_of_queries(staff_client, django_assert_max_num_queries):
    provider = ProviderFactory()
    for hour in range(20):
        slot_on(provider=provider, hour=0, day_offset=2 + hour)

    with django_assert_max_num_queries(4):  # session, user, count, page
        response = staff_client.get("/api/freed-slots/")

    assert response.json()["count"] == 20


def test_it_shows_a_long_match_log_in_a_bounded_number_of_queries(
    staff_client, django_assert_max_num_queries, django_capture_on_commit_callbacks, settings
):
    settings.BACKFILL = {**settings.BACKFILL, "CANDIDATE_POOL": 10}
    appointment = AppointmentFactory()
    WaitlistEntryFactory.create_batch(8, specialty=appointment.provider.specialty)
    slot = freed_slot(appointment, django_capture_on_commit_callbacks)

    with django_assert_max_num_queries(4):  # session, user, slot, match log
        body = staff_client.get(f"/api/freed-slots/{slot.pk}/").json()

    assert len(body["match_log"]) == 8


# --- Stats --------------------------------------------------------------------------------


def test_it_reports_backfill_stats_for_a_date_range(staff_client):
    freed_at = timezone.now() - timedelta(days=2)
    slot_on(
        status=FreedSlot.Status.BACKFILLED,
        filled_by=AppointmentFactory(start=next_weekday_at(9)),
        freed_at=freed_at,
        fill_ms=400,
    )
    slot_on(hour=11, status=FreedSlot.Status.NO_MATCH, freed_at=freed_at)
    day = timezone.localtime(freed_at).date()

    body = staff_client.get(f"/api/stats/?start_date={day}&end_date={day}").json()

    assert (body["freed"], body["backfilled"], body["no_match"]) == (2, 1, 1)
    assert body["fill_rate"] == 0.5
    assert body["revenue_recovered"] == 120
    assert body["median_time_to_fill_seconds"] == 0.4


def test_it_reports_the_last_30_days_by_default(staff_client):
    slot_on(freed_at=timezone.now() - timedelta(days=29))
    slot_on(hour=11, freed_at=timezone.now() - timedelta(days=31))

    body = staff_client.get("/api/stats").json()

    today = timezone.localdate()
    assert (body["start_date"], body["end_date"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert body["freed"] == 1


def test_it_refuses_stats_ending_before_they_start(staff_client):
    response = staff_client.get("/api/stats/?start_date=2030-02-01&end_date=2030-01-01")

    assert response.status_code == 400
    assert response.json() == {"end_date": ["The end date must not be before the start date."]}


def test_it_refuses_a_malformed_stats_date(staff_client):
    response = staff_client.get("/api/stats/?start_date=last-week")

    assert response.status_code == 400
    assert response.json() == {"start_date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]}
