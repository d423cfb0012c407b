"""The appointment page the day schedule's cards open."""

import re
from datetime import datetime, time, timedelta
from html import unescape

import pytest
from django.utils import timezone

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory
from clinic.models import InsurancePlan
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def at(day, hour):
    return timezone.make_aware(datetime.combine(day, time(hour)))


@pytest.fixture
def appointment():
    day = timezone.localdate() + timedelta(days=2)
    return AppointmentFactory(
        provider=ProviderFactory(name="Dr. Elena Diaz"),
        patient=PatientFactory(first_name="Maya", last_name="Patel"),
        start=at(day, 10),
        end=at(day, 10) + timedelta(minutes=45),
    )


def page_of(client, appointment):
    """The page as read: tags dropped, so a test asserts the words."""
    return unescape(re.sub(r"<[^>]+>", "", client.get(f"/schedule/appointments/{appointment.pk}/").text))


def cancel_backfilled(appointment, captured):
    waiting = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Hugo", last_name="Nguyen"), specialty=appointment.provider.specialty
    )
    with captured(execute=True):
        appointment.cancel("patient called in sick")
    return waiting.patient.appointments.get()


def test_it_shows_who_when_and_status(staff_client, appointment):
    text = page_of(staff_client, appointment)

    assert "Maya Patel" in text
    assert "Dr. Elena Diaz" in text
    assert f"{timezone.localtime(appointment.start):%a} " in text and ", 10:00–10:45" in text
    assert "Scheduled" in text


def test_it_asks_before_cancelling(staff_client, appointment):
    response = staff_client.post(f"/schedule/appointments/{appointment.pk}/cancel/", {"reason": "patient moved away"})

    appointment.refresh_from_db()
    assert response.status_code == 200
    assert appointment.status == Appointment.Status.SCHEDULED
    text = unescape(re.sub(r"<[^>]+>", "", response.text))
    assert "Cancel Maya Patel's appointment?" in text
    assert "because: patient moved away." in text
    assert 'name="confirm" value="yes"' in response.text


def test_it_cancels_with_the_reason_given(staff_client, appointment):
    response = staff_client.post(
        f"/schedule/appointments/{appointment.pk}/cancel/", {"reason": "patient moved away", "confirm": "yes"}
    )

    appointment.refresh_from_db()
    assert response.status_code == 302
    assert appointment.status == Appointment.Status.CANCELLED
    assert appointment.cancel_reason == "patient moved away"
    assert appointment.cancelled_by == "frontdesk"


def test_it_refuses_to_cancel_without_a_reason(staff_client, appointment):
    response = staff_client.post(f"/schedule/appointments/{appointment.pk}/cancel/", {"reason": "  "})

    appointment.refresh_from_db()
    assert response.status_code == 400
    assert "Say why it is cancelled." in response.text
    assert appointment.status == Appointment.Status.SCHEDULED


def test_it_refuses_to_cancel_twice(staff_client, appointment):
    appointment.cancel("first time")

    response = staff_client.post(f"/schedule/appointments/{appointment.pk}/cancel/", {"reason": "again"})

    assert response.status_code == 409
    assert "cancelled and cannot be cancelled" in response.text


def test_the_freed_slot_says_who_was_chosen_and_why(staff_client, appointment, django_capture_on_commit_callbacks):
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Low", last_name="Score", no_show_risk=0.65),
        specialty=appointment.provider.specialty,
    )
    cancel_backfilled(appointment, django_capture_on_commit_callbacks)

    text = page_of(staff_client, appointment)

    assert "The slot this cancellation freed" in text
    assert "Hugo Nguyen was chosen: score" in text
    assert "Low Score" in text and "Ranked lower" in text
    assert "Open Hugo Nguyen's appointment" in text


def test_it_says_where_a_learned_risk_stands(staff_client, appointment, django_capture_on_commit_callbacks):
    learned = PatientFactory(
        first_name="Ana", last_name="Model", no_show_risk=0.31, no_show_risk_model=0.31, no_show_risk_standing=0.9
    )
    WaitlistEntryFactory(patient=learned, specialty=appointment.provider.specialty, preferred_location=None)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")

    text = page_of(staff_client, appointment)

    assert "Ana Model was chosen: score" in text
    assert "No-show risk now: 0.31, in this clinic's highest fifth." in text


def test_the_backfilled_appointment_tells_its_story_and_its_messages(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    booked = cancel_backfilled(appointment, django_capture_on_commit_callbacks)

    text = page_of(staff_client, booked)

    assert "Booked from the waitlist" in text
    assert "by cancelling Maya Patel's appointment (patient called in sick)" in text
    assert "Backfill confirmation" in text
    assert "An earlier appointment opened up" in text


def test_it_books_a_waiting_patient_by_hand(staff_client, appointment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    entry = WaitlistEntryFactory(
        patient=PatientFactory(first_name="Rosa", last_name="Lopez", no_show_risk=0.1),
        specialty=appointment.provider.specialty,
    )
    assert "Rosa Lopez" in page_of(staff_client, appointment)  # offered as a choice

    response = staff_client.post(
        f"/schedule/appointments/{appointment.pk}/book/", {"entry": entry.pk, "confirm": "yes"}
    )

    entry.refresh_from_db()
    booked = entry.booked_appointment
    assert response.status_code == 302
    assert entry.status == WaitlistEntry.Status.BOOKED
    assert FreedSlot.objects.get(appointment=appointment).status == FreedSlot.Status.MANUAL
    assert (booked.source, booked.booked_by) == (Appointment.Source.STAFF, "frontdesk")
    assert "Booked" in (text := page_of(staff_client, booked))
    assert ", by hand from the waitlist, by frontdesk" in text


def test_book_by_hand_shows_the_rules_the_patient_fails_and_asks_to_confirm(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    appointment.provider.accepted_insurance_plans.add(InsurancePlan.objects.create(name="Aetna Choice", payer="Aetna"))
    entry = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(
            first_name="Rosa",
            last_name="Lopez",
            insurance_plan=InsurancePlan.objects.create(name="Cigna Open", payer="Cigna"),
        ),
        specialty=appointment.provider.specialty,
    )
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    assert "Dr. Elena Diaz does not take Cigna Open" in page_of(staff_client, appointment)  # left out, and why

    response = staff_client.post(f"/schedule/appointments/{appointment.pk}/book/", {"entry": entry.pk})

    text = unescape(re.sub(r"<[^>]+>", "", response.text))
    entry.refresh_from_db()
    assert response.status_code == 200
    assert entry.status == WaitlistEntry.Status.WAITING  # nothing booked until confirmed
    assert "Book Rosa Lopez into this slot by hand?" in text
    assert "The backfill would not book Rosa Lopez:" in text
    assert "Dr. Elena Diaz does not take Cigna Open" in text
    assert "Book Rosa Lopez anyway" in text
    assert "recorded as booked by hand, by frontdesk" in text


def test_no_book_by_hand_while_the_backfill_is_booking(staff_client, appointment, django_capture_on_commit_callbacks):
    entry = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Hugo"), specialty=appointment.provider.specialty
    )
    with django_capture_on_commit_callbacks(execute=False):  # freed; its job not run yet
        appointment.cancel("patient called in sick")

    text = page_of(staff_client, appointment)
    response = staff_client.post(
        f"/schedule/appointments/{appointment.pk}/book/", {"entry": entry.pk, "confirm": "yes"}
    )

    assert "Backfill running." in text
    assert "Nothing to do while the backfill is booking this slot" in text
    assert "Book by hand" not in text and "Retry backfill" not in text
    assert response.status_code == 409
    assert "The backfill is booking this slot right now" in response.text
    assert FreedSlot.objects.get(appointment=appointment).status == FreedSlot.Status.OPEN


def test_a_slot_whose_job_never_came_offers_the_front_desk_the_slot(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    WaitlistEntryFactory(patient=HighRiskPatientFactory(first_name="Hugo"), specialty=appointment.provider.specialty)
    with django_capture_on_commit_callbacks(execute=False):
        appointment.cancel("patient called in sick")
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    FreedSlot.objects.update(freed_at=ten_minutes_ago, next_attempt_at=ten_minutes_ago)  # the queue was down

    text = page_of(staff_client, appointment)

    assert "Backfill running." not in text
    assert "The backfill has not come back to this slot" in text
    assert "Book by hand" in text and "Retry backfill" in text


def test_a_slot_nobody_fits_lists_everyone_left_out_and_why(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Lena", last_name="Ortiz", no_show_risk=0.2),
        specialty=appointment.provider.specialty,
    )
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")

    text = page_of(staff_client, appointment)

    assert FreedSlot.objects.get().attempts == 1
    assert "Backfill runs1: nobody waiting fits every rule" in text
    assert "No backfill run has considered anyone" not in text
    assert re.search(r"Lena Ortiz\s*Left out\s*\d+\s*No-show risk 0.20 is under the minimum", text)


def test_it_writes_a_coded_cancel_reason_in_words(staff_client, appointment):
    appointment.cancel("declined_reassignment", by="patient")

    text = page_of(staff_client, appointment)

    assert "by the patient: the patient declined the move to another provider" in text
    assert "declined_reassignment" not in text


def test_it_refuses_to_book_nobody(staff_client, appointment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")

    response = staff_client.post(f"/schedule/appointments/{appointment.pk}/book/", {"entry": ""})

    assert response.status_code == 400
    assert "Choose a waitlisted patient." in response.text
    assert FreedSlot.objects.get(appointment=appointment).status == FreedSlot.Status.NO_MATCH


def test_it_retries_a_slot_nobody_filled(staff_client, appointment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Late", last_name="Comer"), specialty=appointment.provider.specialty
    )
    FreedSlot.objects.update(status=FreedSlot.Status.NO_MATCH)  # as if the entry came after the run

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/schedule/appointments/{appointment.pk}/retry/")

    assert response.status_code == 302
    assert FreedSlot.objects.get(appointment=appointment).filled_by.patient.last_name == "Comer"


def test_it_draws_a_long_history_in_a_few_queries(
    staff_client, appointment, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    WaitlistEntryFactory.create_batch(20, specialty=appointment.provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")

    with django_assert_max_num_queries(18):  # the waitlist explained, a page at a time, included
        response = staff_client.get(f"/schedule/appointments/{appointment.pk}/")

    assert response.status_code == 200


def test_an_account_without_the_permission_cannot_cancel(client, django_user_model, appointment):
    client.force_login(django_user_model.objects.create_user("nobody", is_staff=True))

    response = client.post(f"/schedule/appointments/{appointment.pk}/cancel/", {"reason": "x"})

    assert response.status_code == 403
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.SCHEDULED
