"""Cancelling confirms: the admin asks why and says what happened; patients are told."""

from datetime import timedelta
from html import unescape

import pytest
from django.core import mail
from django.utils import timezone

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for
from scheduling.models import Appointment
from scheduling.reassignment import mark_provider_unavailable
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db

APPOINTMENTS = "/admin/scheduling/appointment/"


def cancel_in_admin(client, appointment, **form):
    return client.post(
        APPOINTMENTS, {"action": "cancel_appointments", "_selected_action": [appointment.pk], **form}, follow=True
    )


def page(response):
    return unescape(response.content.decode())


@pytest.fixture
def appointment():
    return AppointmentFactory(
        patient=PatientFactory(first_name="Chloe", last_name="Khan"), provider=ProviderFactory(name="Dr. Noah Brown")
    )


def test_it_asks_for_a_reason_and_says_what_will_happen_before_cancelling(staff_client, appointment):
    response = cancel_in_admin(staff_client, appointment)

    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.SCHEDULED
    assert "Chloe Khan with Dr. Noah Brown" in page(response)
    assert "Chloe is emailed that the clinic cancelled, with your reason." in page(response)
    assert "the backfill books the best-fitting waiting patient" in page(response)


def test_it_warns_that_an_opted_out_patient_gets_no_email(staff_client):
    appointment = AppointmentFactory(patient=PatientFactory(first_name="Otto", email_opt_out=True))
    assert "Otto has opted out of email and not agreed to texts: tell them yourself." in page(
        cancel_in_admin(staff_client, appointment)
    )


def test_a_blank_reason_is_refused_and_changes_nothing(staff_client, appointment):
    response = cancel_in_admin(staff_client, appointment, apply="1", reason="  ")

    appointment.refresh_from_db()
    assert response.status_code == 400
    assert "This field is required." in page(response)
    assert appointment.status == Appointment.Status.SCHEDULED


# Committed for real: the action's result is read after the cancellation commits and the
# in-process backfill ran, as with a fast worker. (A superuser acts: the flush after a
# transactional test empties the roles, which pytest-django runs after all the others.)
COMMITTED = pytest.mark.django_db(transaction=True)


@COMMITTED
def test_the_result_names_who_got_the_slot(staff_client, appointment):
    WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Hugo", last_name="Nguyen"), specialty=appointment.provider.specialty
    )
    response = cancel_in_admin(staff_client, appointment, apply="1", reason="the clinic is closed that morning")

    appointment.refresh_from_db()
    slot = FreedSlot.objects.get(appointment=appointment)
    assert (appointment.status, appointment.cancel_reason) == ("cancelled", "the clinic is closed that morning")
    assert "Chloe Khan with Dr. Noah Brown" in page(response)
    assert "Chloe Khan is emailed. The slot went to Hugo Nguyen" in page(response)
    assert f'href="/admin/backfill/freedslot/{slot.pk}/change/"' in response.content.decode()


def test_while_the_search_runs_the_result_links_to_the_slot(staff_client, appointment):
    # No on-commit callbacks run here: the backfill job has not run yet, as with a busy worker.
    response = cancel_in_admin(staff_client, appointment, apply="1", reason="closed")

    slot = FreedSlot.objects.get(appointment=appointment)
    assert (
        f'The backfill is looking for a waiting patient: <a href="/admin/backfill/freedslot/{slot.pk}/change/">'
        "see the slot</a>."
    ) in page(response)
    assert FreedSlot.objects.get(appointment=appointment).status == FreedSlot.Status.OPEN


@COMMITTED
def test_when_nobody_fits_the_result_offers_booking_by_hand(staff_client, appointment):
    response = cancel_in_admin(staff_client, appointment, apply="1", reason="closed")
    assert "Nobody on the waitlist fits the slot: <a href=" in page(response)
    assert "see why, or book a patient by hand</a>." in page(response)


def test_a_slot_too_soon_to_fill_is_said_so(staff_client):
    soon = AppointmentFactory(start=timezone.now() + timedelta(minutes=5), end=timezone.now() + timedelta(minutes=50))
    response = cancel_in_admin(staff_client, soon, apply="1", reason="closed")
    assert "The slot was not offered to the waitlist: it starts too soon" in page(response)
    assert not FreedSlot.objects.exists()


def test_the_patient_is_emailed_when_the_clinic_cancels(staff_client, appointment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        cancel_in_admin(staff_client, appointment, apply="1", reason="the clinic is closed that morning")

    stored = OutboundEmail.objects.get(kind=OutboundEmail.Kind.CLINIC_CANCELLATION)
    assert (stored.appointment_id, stored.recipient, stored.status) == (
        appointment.pk,
        appointment.patient.email,
        "sent",
    )
    assert "the clinic has had to cancel this appointment (the clinic is closed that morning)" in mail.outbox[0].body
    assert "Dr. Noah Brown" in mail.outbox[0].body


def test_the_patient_is_emailed_when_an_integrator_cancels(
    staff_client, appointment, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            f"/api/appointments/{appointment.pk}/cancel/",
            {"reason": "provider on leave"},
            content_type="application/json",
        )
    assert OutboundEmail.objects.filter(kind="clinic_cancellation", appointment=appointment).count() == 1


def test_an_opted_out_patient_gets_no_email_when_the_clinic_cancels(staff_client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(patient=PatientFactory(email_opt_out=True))
    with django_capture_on_commit_callbacks(execute=True):
        cancel_in_admin(staff_client, appointment, apply="1", reason="closed")
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    assert not OutboundEmail.objects.exists()


def test_a_patient_cancelling_from_their_link_gets_a_confirmation(
    client, appointment, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(link_for(appointment, "cancel").removeprefix("http://testserver"))

    stored = OutboundEmail.objects.get(kind=OutboundEmail.Kind.CANCEL_CONFIRMATION)
    assert (stored.appointment_id, stored.status) == (appointment.pk, "sent")
    assert stored.subject.startswith("Cancelled: Dr. Noah Brown")
    assert "As you asked, this appointment is cancelled" in stored.text_body


def test_a_second_click_on_the_link_sends_no_second_confirmation(
    client, appointment, django_capture_on_commit_callbacks
):
    url = link_for(appointment, "cancel").removeprefix("http://testserver")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url)
        client.post(url)
    assert OutboundEmail.objects.filter(kind="cancel_confirmation").count() == 1


def test_an_opted_out_patient_cancelling_from_their_link_gets_nothing(client, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(patient=PatientFactory(email_opt_out=True))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(link_for(appointment, "cancel").removeprefix("http://testserver"))
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    assert not OutboundEmail.objects.exists()


def workflow_notice(provider, django_capture_on_commit_callbacks):
    day = timezone.localdate(Appointment.objects.get(provider=provider).start)
    with django_capture_on_commit_callbacks(execute=True):
        mark_provider_unavailable(provider, day, day, "sick")
    return OutboundEmail.objects.get(kind=OutboundEmail.Kind.WAITLIST_NOTICE).text_body


def test_the_waitlist_notice_says_nobody_was_free_when_nobody_was(appointment, django_capture_on_commit_callbacks):
    body = workflow_notice(appointment.provider, django_capture_on_commit_callbacks)
    assert "no other Orthopedic PT provider is free at that time" in body


def test_the_waitlist_notice_says_the_free_colleagues_were_no_good_fit(
    appointment, django_capture_on_commit_callbacks
):
    ProviderFactory(specialty=appointment.provider.specialty, location=LocationFactory(name="Uptown"))  # 20 points
    body = workflow_notice(appointment.provider, django_capture_on_commit_callbacks)
    assert "none of our other Orthopedic PT providers free at that time suits you well enough" in body
    assert "no other Orthopedic PT provider is free" not in body


def test_the_workflow_result_names_the_patient_the_time_and_why_in_words(
    appointment, django_capture_on_commit_callbacks
):
    ProviderFactory(name="Dr. Far", specialty=appointment.provider.specialty, location=LocationFactory(name="Uptown"))
    day = timezone.localdate(appointment.start)
    with django_capture_on_commit_callbacks(execute=True):
        summary = mark_provider_unavailable(appointment.provider, day, day, "sick")

    when = timezone.localtime(appointment.start)
    assert summary.lines() == [
        f"Dr. Noah Brown is unavailable on {when:%a %-d %b %Y}: "
        "1 appointment affected, 0 reassigned, 1 waitlisted, 0 skipped.",
        f"Chloe Khan ({when:%a %-d %b %Y, %H:%M}): cancelled and put on the waitlist; the best colleague free then, "
        "Dr. Far, scored 20 points of the 60 needed (free at the same time +20).",
    ]


def test_the_workflow_result_says_when_nobody_was_free(appointment, django_capture_on_commit_callbacks):
    day = timezone.localdate(appointment.start)
    with django_capture_on_commit_callbacks(execute=True):
        summary = mark_provider_unavailable(appointment.provider, day, day, "sick")
    assert summary.lines()[1].endswith(
        "cancelled and put on the waitlist; no other Orthopedic PT provider is free then."
    )
