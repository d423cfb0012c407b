"""Every door calls the same action and gets the same effects: the patient told, the slot
freed, who acted recorded; and the chain backfill is a job of its own."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from backfill import tasks
from backfill.actions import receive_text
from backfill.models import FreedSlot
from clinic.actions import Via
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory
from clinic.models import Event, InboundText, OutboundEmail
from ops.sweep import sweep
from scheduling.actions import cancel_appointment, record_no_show
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.messages import queue_email
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def appointment():
    return AppointmentFactory(patient=PatientFactory(first_name="Maya"), provider=ProviderFactory(name="Dr. Diaz"))


def cancelled(appointment):
    appointment.refresh_from_db()
    return appointment.status, appointment.cancelled_by, FreedSlot.objects.filter(appointment=appointment).exists()


def test_the_schedule_pages_cancel_emails_the_patient_like_the_admin_and_the_api(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            f"/schedule/appointments/{appointment.pk}/cancel/", {"reason": "clinic closed", "confirm": "yes"}
        )

    assert response.status_code == 302
    assert cancelled(appointment) == ("cancelled", "frontdesk", True)
    told = OutboundEmail.objects.get(appointment=appointment)
    assert (told.kind, told.status) == (OutboundEmail.Kind.CLINIC_CANCELLATION, "sent")
    assert "the clinic has had to cancel this appointment (clinic closed)" in mail.outbox[0].body


@pytest.mark.parametrize(
    ("channel", "kind"),
    [
        (Via.STAFF_PAGE, OutboundEmail.Kind.CLINIC_CANCELLATION),
        (Via.ADMIN, OutboundEmail.Kind.CLINIC_CANCELLATION),
        (Via.API, OutboundEmail.Kind.CLINIC_CANCELLATION),
        (Via.FEED, OutboundEmail.Kind.CLINIC_CANCELLATION),
        (Via.PATIENT_LINK, OutboundEmail.Kind.CANCEL_CONFIRMATION),
    ],
)
def test_the_cancel_action_tells_the_patient_by_who_cancelled(
    appointment, channel, kind, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        cancel_appointment(appointment, by="someone", channel=channel, reason="closed")

    assert cancelled(appointment) == ("cancelled", "someone", True)
    assert list(OutboundEmail.objects.values_list("kind", flat=True)) == [kind]


def test_without_notify_the_patient_is_told_nothing_but_the_slot_is_freed(
    appointment, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        cancel_appointment(appointment, by="demo", channel=Via.DEMO, reason="called in sick", notify=False)

    assert cancelled(appointment) == ("cancelled", "demo", True)
    assert not OutboundEmail.objects.exists()


def test_a_text_reply_cancels_through_the_action_and_the_reply_is_the_confirmation(
    django_capture_on_commit_callbacks,
):
    patient = PatientFactory(preferred_channel="sms", sms_consent=True)
    appointment = AppointmentFactory(patient=patient)
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)
        answer = receive_text("SM1", str(patient.phone), "Cancel")

    assert answer.outcome == "cancelled"
    assert cancelled(appointment) == ("cancelled", "patient", True)
    assert OutboundEmail.objects.filter(appointment=appointment).count() == 1  # only the text it replied to


def test_a_text_whose_action_fails_frees_its_message_sid_for_twilios_retry(django_capture_on_commit_callbacks):
    patient = PatientFactory(preferred_channel="sms", sms_consent=True)
    with mock.patch("backfill.actions._act", side_effect=RuntimeError("database went away")):
        with pytest.raises(RuntimeError):
            receive_text("SM2", str(patient.phone), "STOP")
    assert not InboundText.objects.exists()

    assert receive_text("SM2", str(patient.phone), "STOP").outcome == "opted_out"


def test_recording_a_no_show_needs_the_appointment_to_have_started():
    started = AppointmentFactory(
        start=timezone.now() - timedelta(minutes=20), end=timezone.now() + timedelta(minutes=25)
    )

    record_no_show(started, by="feed", channel=Via.FEED)

    started.refresh_from_db()
    assert started.status == Appointment.Status.NO_SHOW


def test_the_book_by_hand_page_emails_the_patient(staff_client, appointment, django_capture_on_commit_callbacks):
    entry = WaitlistEntryFactory(patient=PatientFactory(first_name="Hugo"), specialty=appointment.provider.specialty)
    with django_capture_on_commit_callbacks(execute=False):  # the slot recorded; no backfill job runs
        appointment.cancel("sick")
    FreedSlot.objects.update(status=FreedSlot.Status.NO_MATCH)  # as if its run had found nobody
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            f"/schedule/appointments/{appointment.pk}/book/", {"entry": entry.pk, "confirm": "yes"}
        )

    booked = entry.patient.appointments.get()
    assert response.status_code == 302
    assert FreedSlot.objects.get(appointment=appointment).status == FreedSlot.Status.MANUAL
    assert OutboundEmail.objects.get(appointment=booked).kind == OutboundEmail.Kind.BACKFILL_CONFIRMATION


@pytest.fixture
def chain(settings):
    """A patient waiting for an earlier time than their booked one, and a slot freed before it."""
    settings.BACKFILL = {**settings.BACKFILL, "CHAIN_BACKFILL": True}
    provider = ProviderFactory()
    mover = HighRiskPatientFactory()
    later = AppointmentFactory(provider=provider, patient=mover, start=next_weekday_at(hour=10, days_ahead=6))
    entry = WaitlistEntryFactory(patient=mover, specialty=provider.specialty, original_appointment=later)
    freed = AppointmentFactory(provider=provider, start=next_weekday_at(hour=10, days_ahead=2))
    return later, entry, freed


def test_the_booking_only_enqueues_the_chain_release_and_the_job_does_it(chain, django_capture_on_commit_callbacks):
    later, entry, freed = chain
    with django_capture_on_commit_callbacks(execute=False):
        freed.cancel("sick")
    slot = FreedSlot.objects.get(appointment=freed)

    with mock.patch("backfill.models.enqueue") as enqueue:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.backfill_slot(slot.pk)
    later.refresh_from_db()
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.BOOKED
    assert later.status == Appointment.Status.SCHEDULED  # not released inside the booking
    enqueue.assert_called_once_with(
        "backfill.tasks.release_later_appointment", entry.pk, group="backfill", task_name=f"chain-entry-{entry.pk}"
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.release_later_appointment(entry.pk) == later.pk
        assert tasks.release_later_appointment(entry.pk) is None  # twice: released once
    later.refresh_from_db()
    assert later.status == Appointment.Status.CANCELLED
    assert later.cancelled_by == "backfill"
    assert FreedSlot.objects.filter(appointment=later).exists()  # backfilled in turn


def test_a_patient_a_chain_release_frees_is_told_they_now_come_earlier(chain, django_capture_on_commit_callbacks):
    later, entry, freed = chain
    with django_capture_on_commit_callbacks(execute=False):
        freed.cancel("sick")
    with mock.patch("backfill.models.enqueue"), django_capture_on_commit_callbacks(execute=True):
        tasks.backfill_slot(FreedSlot.objects.get(appointment=freed).pk)
    earlier = entry.patient.appointments.exclude(pk=later.pk).get()

    with django_capture_on_commit_callbacks(execute=True):
        tasks.release_later_appointment(entry.pk)

    released = OutboundEmail.objects.get(appointment=later)
    assert released.kind == OutboundEmail.Kind.CLINIC_CANCELLATION
    assert "released" in released.subject
    assert earlier.provider.name in released.text_body
    assert "you no longer need" in released.text_body
    assert "We are sorry" not in released.text_body
    assert Event.objects.filter(type="appointment.cancelled", subject=f"appointment:{later.pk}").exists()


def test_the_sweep_enqueues_a_chain_release_whose_job_was_lost(chain, django_capture_on_commit_callbacks):
    later, entry, freed = chain
    with django_capture_on_commit_callbacks(execute=False):
        freed.cancel("sick")
    with mock.patch("backfill.models.enqueue"), django_capture_on_commit_callbacks(execute=True):
        tasks.backfill_slot(FreedSlot.objects.get(appointment=freed).pk)  # its job is lost

    with django_capture_on_commit_callbacks(execute=True):
        result = sweep(now=timezone.now() + timedelta(minutes=10))

    later.refresh_from_db()
    assert result["chain_releases"] == 1
    assert later.status == Appointment.Status.CANCELLED


def test_adding_a_waitlist_entry_in_the_admin_joins_through_the_action_and_looks_for_slots(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the slot recorded; no backfill job runs
        appointment.cancel("sick")
    patient = HighRiskPatientFactory(first_name="Hugo")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/waitlist/waitlistentry/add/",
            {
                "patient": patient.pk,
                "specialty": appointment.provider.specialty_id,
                "reason": "staff",
                "created_at_0": timezone.localdate().isoformat(),
                "created_at_1": "09:00:00",
            },
        )

    assert response.status_code == 302
    entry = WaitlistEntry.objects.get(patient=patient)
    assert entry.status == WaitlistEntry.Status.BOOKED  # the new entry's search booked the open slot
    assert Event.objects.filter(type="waitlist_entry.created", subject=f"waitlist_entry:{entry.pk}").exists()


def test_adding_an_appointment_in_the_admin_books_through_the_action(staff_client):
    patient, provider = PatientFactory(), ProviderFactory()
    start = next_weekday_at(hour=9, days_ahead=3)
    local = timezone.localtime(start)
    response = staff_client.post(
        "/admin/scheduling/appointment/add/",
        {
            "patient": patient.pk,
            "provider": provider.pk,
            "start_0": local.date().isoformat(),
            "start_1": "09:00:00",
            "end_0": local.date().isoformat(),
            "end_1": "09:45:00",
        },
    )

    booked = Appointment.objects.get(patient=patient)
    assert response.status_code == 302
    assert (booked.source, booked.provider) == (Appointment.Source.STAFF, provider)
    assert Event.objects.filter(type="appointment.created", subject=f"appointment:{booked.pk}").count() == 1


def test_a_due_slot_is_claimed_by_one_sweep_only(appointment):
    with mock.patch("backfill.models.enqueue"):
        appointment.cancel("sick")  # recorded; its job is lost
    later = timezone.now() + timedelta(minutes=5)

    assert tasks.claim_due_slots(later) == [FreedSlot.objects.get().pk]
    assert tasks.claim_due_slots(later) == []  # the first moved its next attempt on


def admin_form(appointment, **changes):
    """The admin's change form as posted, times on the clinic's clock as the form shows them."""
    start = timezone.localtime(changes.pop("start", appointment.start))
    end = timezone.localtime(changes.pop("end", appointment.end))
    return {
        "patient": appointment.patient_id,
        "provider": changes.pop("provider", appointment.provider).pk,
        "start_0": start.date(),
        "start_1": start.time(),
        "end_0": end.date(),
        "end_1": end.time(),
        "external_id": appointment.external_id or "",
    }


def test_the_admins_edit_of_an_appointments_time_moves_it_like_any_other_move(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    waiting = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=appointment.provider.specialty)
    later = timedelta(days=1)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            f"/admin/scheduling/appointment/{appointment.pk}/change/",
            admin_form(appointment, start=appointment.start + later, end=appointment.end + later),
        )

    assert response.status_code == 302
    moved = Appointment.objects.get(replaces=appointment)
    assert (moved.start, moved.patient, moved.status) == (appointment.start + later, appointment.patient, "scheduled")
    assert cancelled(appointment) == (Appointment.Status.CANCELLED, "frontdesk", True)
    assert Event.objects.filter(type="appointment.cancelled", subject=f"appointment:{appointment.pk}").exists()
    assert Event.objects.filter(type="appointment.created", subject=f"appointment:{moved.pk}").exists()
    told = OutboundEmail.objects.get(appointment=moved)
    assert told.kind == OutboundEmail.Kind.APPOINTMENT_MOVED
    assert "The clinic has moved your appointment" in told.text_body
    assert FreedSlot.objects.get(appointment=appointment).filled_by.patient == waiting.patient  # the old time refilled


def test_the_admins_edit_of_an_appointment_into_a_busy_time_is_refused_and_changes_nothing(staff_client, appointment):
    busy = AppointmentFactory(provider=appointment.provider, start=appointment.start + timedelta(days=1))

    response = staff_client.post(
        f"/admin/scheduling/appointment/{appointment.pk}/change/",
        admin_form(appointment, start=busy.start, end=busy.end),
    )

    assert response.status_code == 200
    assert "already has an appointment at that time" in response.content.decode()
    assert cancelled(appointment) == (Appointment.Status.SCHEDULED, "", False)
    assert not OutboundEmail.objects.exists()


def test_the_admins_add_of_an_absence_reassigns_the_providers_patients_like_the_command(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    colleague = ProviderFactory(specialty=appointment.provider.specialty, location=appointment.provider.location)
    day = timezone.localtime(appointment.start).date()

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/scheduling/providerunavailability/add/",
            {"provider": appointment.provider.pk, "start_date": day, "end_date": day, "reason": "sick"},
        )

    assert response.status_code == 302
    assert appointment.provider.unavailabilities.get().reason == "sick"
    assert Event.objects.filter(type="provider.unavailable").count() == 1
    offer = Appointment.objects.get(replaces=appointment)
    assert (offer.provider, offer.status) == (colleague, Appointment.Status.OFFERED)
    assert cancelled(appointment)[0] == Appointment.Status.CANCELLED
    assert OutboundEmail.objects.get(appointment=offer).kind == OutboundEmail.Kind.REASSIGNMENT_OFFER


def test_the_admin_refuses_an_absence_the_workflow_refuses(staff_client, appointment):
    response = staff_client.post(
        "/admin/scheduling/providerunavailability/add/",
        {"provider": appointment.provider.pk, "start_date": "2020-01-06", "end_date": "2020-01-07", "reason": ""},
    )

    assert response.status_code == 200
    assert "The end date has passed" in response.content.decode()
    assert not appointment.provider.unavailabilities.exists()
