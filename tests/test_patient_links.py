"""Accept and decline links in a reassignment offer (docs/reference.md, Reassignment), followed from the email."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from freezegun import freeze_time

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.links import make_token
from scheduling.models import Appointment
from scheduling.reassignment import mark_provider_unavailable
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db

GOOD_NEWS = "Good news! We found another patient for this time slot."


@pytest.fixture
def offer(django_capture_on_commit_callbacks):
    """Dr. Away is sick; their patient is offered Dr. Stand-in at the same time, by email."""
    downtown = LocationFactory(name="Downtown")
    specialty = SpecialtyFactory(name="Orthopedic PT")
    away = ProviderFactory(name="Dr. Away", specialty=specialty, location=downtown)
    ProviderFactory(name="Dr. Stand-in", specialty=specialty, location=downtown)
    original = AppointmentFactory(provider=away, patient=PatientFactory(preferred_location=downtown))
    day = timezone.localdate(original.start)
    with django_capture_on_commit_callbacks(execute=True):
        mark_provider_unavailable(away, day, day, "sick")
    return Appointment.objects.get(replaces=original)


@pytest.fixture
def waitlisted_high_risk(offer):
    """A high-risk patient waiting for the specialty: the backfill's pick for a declined slot."""
    return WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=offer.provider.specialty)


def link_in_email(action):
    [url] = re.findall(rf"http://testserver(/appointments/{action}/\S+/)", mail.outbox[0].body)
    return url


def state(offer):
    """Everything a link could change."""
    offer.refresh_from_db()
    return (
        offer.status,
        offer.cancel_reason,
        WaitlistEntry.objects.count(),
        FreedSlot.objects.count(),
        OutboundEmail.objects.count(),
        len(mail.outbox),
    )


def test_get_on_decline_shows_the_offer_and_changes_nothing(client, offer):
    before = state(offer)

    response = client.get(link_in_email("decline"))

    assert response.status_code == 200
    assert "Decline this appointment" in response.content.decode()
    assert "Dr. Stand-in" in response.content.decode()
    assert state(offer) == before


def test_get_on_accept_shows_the_offer_and_changes_nothing(client, offer):
    before = state(offer)

    response = client.get(link_in_email("accept"))

    assert response.status_code == 200
    assert "Accept this appointment" in response.content.decode()
    assert state(offer) == before


@pytest.mark.django_db(transaction=True)
def test_decline_frees_the_slot_which_the_backfill_fills(client, offer, waitlisted_high_risk):
    url = link_in_email("decline")

    assert client.get(url).status_code == 200
    response = client.post(url)

    offer.refresh_from_db()
    slot = FreedSlot.objects.get(appointment=offer)
    declined = WaitlistEntry.objects.get(patient=offer.patient)
    assert response.status_code == 200
    assert GOOD_NEWS in response.content.decode()
    assert (offer.status, offer.cancel_reason, offer.cancelled_by) == ("cancelled", "declined_reassignment", "patient")
    assert (declined.reason, declined.status, declined.original_appointment) == (
        "declined_reassignment",
        "waiting",
        offer,
    )
    assert (slot.status, slot.filled_by.patient) == ("backfilled", waitlisted_high_risk.patient)
    decline_email = OutboundEmail.objects.get(kind="decline_confirmation")
    assert decline_email.recipient == offer.patient.email
    assert GOOD_NEWS in decline_email.text_body


def test_decline_says_the_slot_went_to_the_waitlist_when_the_job_has_not_run_yet(
    client, offer, waitlisted_high_risk, django_capture_on_commit_callbacks
):
    # The request's transaction commits when the block ends, so the page is rendered
    # before the backfill job runs, as in production with a busy worker.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(link_in_email("decline"))

    assert "The time slot has been offered to patients on the waitlist." in response.content.decode()
    assert FreedSlot.objects.get(appointment=offer).status == FreedSlot.Status.BACKFILLED


def test_the_decline_email_is_sent_with_the_news(
    client, offer, waitlisted_high_risk, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(link_in_email("decline"))

    [decline_email] = [m for m in mail.outbox if m.to == [offer.patient.email] and "declined" in m.subject]
    assert GOOD_NEWS in decline_email.body
    assert "first in line on our waitlist" in decline_email.body


def test_a_declining_patient_already_waiting_keeps_their_entry_and_goes_first(client, offer):
    existing = WaitlistEntryFactory(patient=offer.patient, specialty=offer.provider.specialty)

    client.post(link_in_email("decline"))

    existing.refresh_from_db()
    assert WaitlistEntry.objects.filter(patient=offer.patient).count() == 1
    assert (existing.reason, existing.declined_first) == ("declined_reassignment", True)


def test_accept_confirms_and_emails_the_patient(client, offer, django_capture_on_commit_callbacks):
    url = link_in_email("accept")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)

    offer.refresh_from_db()
    assert response.status_code == 200
    assert "your appointment is confirmed" in response.content.decode()
    assert offer.status == Appointment.Status.CONFIRMED
    stored = OutboundEmail.objects.get(kind="accept_confirmation")
    assert (stored.appointment, stored.status) == (offer, "sent")
    assert "/appointments/cancel/" in mail.outbox[-1].body
    assert FreedSlot.objects.count() == 0


def test_a_second_post_on_decline_shows_the_outcome_and_changes_nothing(client, offer):
    url = link_in_email("decline")
    client.post(url)
    before = state(offer)

    response = client.post(url)

    assert response.status_code == 200
    assert "You declined the new appointment" in response.content.decode()
    assert state(offer) == before


def test_a_second_post_on_accept_shows_the_outcome_and_changes_nothing(client, offer):
    url = link_in_email("accept")
    client.post(url)
    before = state(offer)

    response = client.post(url)

    assert response.status_code == 200
    assert "already done" in response.content.decode()
    assert state(offer) == before


def test_accept_after_decline_is_refused(client, offer):
    client.post(link_in_email("decline"))
    before = state(offer)

    response = client.post(link_in_email("accept"))

    assert response.status_code == 409
    assert "You declined this appointment, so it can no longer be accepted." in response.content.decode()
    assert state(offer) == before


def test_decline_after_accept_is_refused(client, offer):
    client.post(link_in_email("accept"))
    before = state(offer)

    response = client.post(link_in_email("decline"))

    assert response.status_code == 409
    assert "You accepted this appointment, so it can no longer be declined." in response.content.decode()
    assert state(offer) == before


def test_decline_of_an_offer_the_clinic_cancelled_is_refused(client, offer):
    offer.cancel("front desk moved the patient", by="frontdesk")
    before = state(offer)

    response = client.post(link_in_email("decline"))

    assert response.status_code == 409
    assert "This appointment has been cancelled, so there is nothing to decline." in response.content.decode()
    assert state(offer) == before


@pytest.mark.parametrize("action", ["accept", "decline"])
@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: "x" + token,
        lambda token: "forged-by-hand",
    ],
)
def test_a_forged_or_altered_token_gets_a_400_page(client, offer, action, mangle):
    before = state(offer)

    response = client.post(f"/appointments/{action}/{mangle(make_token(offer, action))}/")

    assert response.status_code == 400
    assert "This link is not valid" in response.content.decode()
    assert state(offer) == before


@pytest.mark.parametrize(
    ("used_as", "minted_for"), [("accept", "decline"), ("decline", "accept"), ("decline", "cancel")]
)
def test_a_token_for_another_action_gets_a_400_page(client, offer, used_as, minted_for):
    before = state(offer)

    response = client.post(f"/appointments/{used_as}/{make_token(offer, minted_for)}/")

    assert response.status_code == 400
    assert state(offer) == before


@pytest.mark.parametrize("action", ["accept", "decline"])
def test_a_link_expires_when_the_appointment_starts(client, offer, action):
    url = link_in_email(action)
    before = state(offer)

    with freeze_time(offer.start + timedelta(minutes=1)):
        response = client.post(url)

    assert response.status_code == 400
    assert "This link has expired" in response.content.decode()
    assert state(offer) == before


@pytest.mark.django_db(transaction=True)
def test_decline_succeeds_even_when_the_backfill_job_fails(client, offer, waitlisted_high_risk, monkeypatch):
    def broken(slot_id):
        raise RuntimeError("matching crashed")

    monkeypatch.setattr("backfill.booking.book_best_candidate", broken)

    response = client.post(link_in_email("decline"))

    offer.refresh_from_db()
    assert response.status_code == 200
    assert "The time slot has been offered to patients on the waitlist." in response.content.decode()
    assert offer.status == Appointment.Status.CANCELLED
    assert FreedSlot.objects.get(appointment=offer).status == FreedSlot.Status.OPEN
    assert OutboundEmail.objects.filter(kind="decline_confirmation").count() == 1
