"""Offer mode (docs/reference.md, Settings): the top N get a time-limited offer, the first to accept wins."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from freezegun import freeze_time

from backfill.actions import accept_slot_offer, book_by_hand
from backfill.models import FreedSlot, MatchLog, SlotOffer
from backfill.offer_links import make_token
from backfill.offers import OfferError
from clinic.actions import Via
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from tests.processes import run_in_threads
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db

TAKEN = "Sorry, someone else accepted this time first. You stay on the waitlist."
# Five waiting patients, best first: the score ties at 90 for the first four, then higher risk goes first.
RISKS = (0.95, 0.9, 0.85, 0.82, 0.7)


@pytest.fixture(autouse=True)
def offer_mode(settings):
    settings.BACKFILL = {**settings.BACKFILL, "OFFER_MODE": True, "OFFER_TOP_N": 3, "OFFER_MINUTES": 30}


@pytest.fixture
def provider():
    return ProviderFactory(
        name="Dr. Free", specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory(name="Downtown")
    )


def waitlist(provider, risks=RISKS):
    return [
        WaitlistEntryFactory(patient=PatientFactory(no_show_risk=risk), specialty=provider.specialty) for risk in risks
    ]


@pytest.fixture
def entries(provider):
    return waitlist(provider)


@pytest.fixture
def slot(provider, entries, django_capture_on_commit_callbacks):
    """A cancellation in offer mode: the freed slot, its offers sent."""
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    return FreedSlot.objects.get(appointment=appointment)


def offer_to(entry):
    return SlotOffer.objects.get(entry=entry)


def link(entry, action):
    """The link in the offer email the entry's patient received."""
    [email] = [m for m in mail.outbox if m.to == [entry.patient.email] and "first to accept" in m.subject]
    [url] = re.findall(rf"http://testserver(/offers/{action}/\S+/)", email.body)
    return url


def post(client, url, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(url)


def statuses(entries):
    return [SlotOffer.objects.filter(entry=entry).values_list("status", flat=True).first() for entry in entries]


def state():
    """Everything an offer link could change."""
    return (
        list(SlotOffer.objects.order_by("pk").values_list("status", "responded_at")),
        list(FreedSlot.objects.values_list("status", "filled_by")),
        list(WaitlistEntry.objects.order_by("pk").values_list("status", flat=True)),
        Appointment.objects.count(),
        OutboundEmail.objects.count(),
        len(mail.outbox),
    )


def test_it_offers_the_slot_to_the_top_three_and_books_nobody(slot, entries):
    slot.refresh_from_db()
    offers = list(slot.offers.order_by("pk"))
    assert [offer.entry for offer in offers] == entries[:3]
    assert {offer.status for offer in offers} == {"pending"}
    assert slot.status == FreedSlot.Status.OPEN
    assert slot.filled_by is None
    assert not Appointment.objects.filter(source=Appointment.Source.BACKFILL).exists()
    assert {entry.status for entry in WaitlistEntry.objects.all()} == {"waiting"}
    assert sorted(m.to[0] for m in mail.outbox) == sorted(entry.patient.email for entry in entries[:3])
    assert "Dr. Free" in mail.outbox[0].body


def test_each_offer_is_open_thirty_minutes_and_the_sweep_comes_back_then(slot):
    slot.refresh_from_db()
    offer = slot.offers.first()
    assert timedelta(minutes=29) < offer.expires_at - offer.sent_at <= timedelta(minutes=30)
    assert slot.next_attempt_at == offer.expires_at
    assert f"{timezone.localtime(offer.expires_at):%-I:%M %p}" in mail.outbox[0].body


def test_an_offer_never_outlasts_the_slots_lead_time(settings, provider, entries, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(provider=provider, start=timezone.now() + timedelta(minutes=75))
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")

    offer = SlotOffer.objects.first()
    assert offer.expires_at == appointment.start - timedelta(minutes=settings.BACKFILL["MIN_LEAD_MINUTES"])


def test_the_match_log_says_who_was_offered(slot, entries):
    outcomes = list(MatchLog.objects.filter(slot=slot).order_by("rank").values_list("patient", "outcome"))

    assert outcomes == [
        (entry.patient_id, outcome)
        for entry, outcome in zip(
            entries, ["offered", "offered", "offered", "ranked_lower", "ranked_lower"], strict=False
        )
    ]


def test_get_on_accept_shows_the_slot_and_changes_nothing(client, slot, entries):
    before = state()

    response = client.get(link(entries[1], "accept"))

    assert response.status_code == 200
    assert "Accept this time" in response.content.decode()
    assert "Dr. Free" in response.content.decode()
    assert state() == before


def test_the_first_to_accept_is_booked_and_the_others_withdrawn(
    client, slot, entries, django_capture_on_commit_callbacks
):
    response = post(client, link(entries[1], "accept"), django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    entries[1].refresh_from_db()
    assert response.status_code == 200
    assert "the time is yours" in response.content.decode()
    assert (slot.status, slot.filled_by.patient, slot.filled_by.source) == (
        "backfilled",
        entries[1].patient,
        "backfill",
    )
    assert entries[1].status == WaitlistEntry.Status.BOOKED
    assert statuses(entries) == ["withdrawn", "accepted", "withdrawn", None, None]
    assert OutboundEmail.objects.get(kind="backfill_confirmation").recipient == entries[1].patient.email
    taken = OutboundEmail.objects.filter(kind="slot_offer_taken")
    assert sorted(taken.values_list("recipient", flat=True)) == sorted(
        [entries[0].patient.email, entries[2].patient.email]
    )


def test_a_second_accept_gets_the_someone_else_page_and_changes_nothing(
    client, slot, entries, django_capture_on_commit_callbacks
):
    post(client, link(entries[1], "accept"), django_capture_on_commit_callbacks)
    before = state()

    response = post(client, link(entries[0], "accept"), django_capture_on_commit_callbacks)

    assert response.status_code == 409
    assert TAKEN in response.content.decode()
    assert state() == before


def test_a_late_accept_racing_the_winner_gets_the_someone_else_message(slot, entries):
    # Both patients opened the page while the slot was free; the winner's POST lands first.
    loser = offer_to(entries[0])
    accept_slot_offer(offer_to(entries[2]), by="patient", channel=Via.PATIENT_LINK)

    with pytest.raises(OfferError, match=TAKEN):
        accept_slot_offer(loser, by="patient", channel=Via.PATIENT_LINK)

    assert statuses(entries)[:3] == ["withdrawn", "withdrawn", "accepted"]
    assert Appointment.objects.filter(source="backfill").count() == 1


def test_accepting_again_shows_the_outcome_and_changes_nothing(
    client, slot, entries, django_capture_on_commit_callbacks
):
    url = link(entries[0], "accept")
    post(client, url, django_capture_on_commit_callbacks)
    before = state()

    response = post(client, url, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    assert "the time is yours" in response.content.decode()
    assert state() == before


def test_the_accept_link_still_shows_the_outcome_after_the_offer_time_is_up(
    client, slot, entries, django_capture_on_commit_callbacks
):
    url = link(entries[0], "accept")
    post(client, url, django_capture_on_commit_callbacks)

    with freeze_time(timezone.now() + timedelta(minutes=45)):
        response = client.get(url)

    assert response.status_code == 200
    assert "the time is yours" in response.content.decode()


def test_a_decline_keeps_the_patient_waiting_and_the_round_going(
    client, slot, entries, django_capture_on_commit_callbacks
):
    response = post(client, link(entries[0], "decline"), django_capture_on_commit_callbacks)

    entries[0].refresh_from_db()
    assert response.status_code == 200
    assert "You stay on our waitlist" in response.content.decode()
    assert entries[0].status == WaitlistEntry.Status.WAITING
    # Two offers of the round are still pending: nobody new is offered yet.
    assert statuses(entries) == ["declined", "pending", "pending", None, None]


def test_when_everyone_offered_declines_the_next_candidates_are_offered(
    client, slot, entries, django_capture_on_commit_callbacks
):
    for entry in entries[:3]:
        post(client, link(entry, "decline"), django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    assert statuses(entries) == ["declined", "declined", "declined", "pending", "pending"]
    assert slot.status == FreedSlot.Status.OPEN
    assert {m.to[0] for m in mail.outbox if "first to accept" in m.subject} == {
        entry.patient.email for entry in entries
    }


def test_accepting_after_declining_is_refused(client, slot, entries, django_capture_on_commit_callbacks):
    post(client, link(entries[0], "decline"), django_capture_on_commit_callbacks)
    before = state()

    response = post(client, link(entries[0], "accept"), django_capture_on_commit_callbacks)

    assert response.status_code == 409
    assert "You declined this time, so it can no longer be accepted." in response.content.decode()
    assert state() == before


def test_when_the_offers_expire_the_sweep_offers_the_next_candidates(
    slot, entries, django_capture_on_commit_callbacks
):
    with freeze_time(timezone.now() + timedelta(minutes=31)), django_capture_on_commit_callbacks(execute=True):
        sweep(now=timezone.now())

    slot.refresh_from_db()
    assert statuses(entries) == ["expired", "expired", "expired", "pending", "pending"]
    assert slot.status == FreedSlot.Status.OPEN
    assert slot.next_attempt_at == offer_to(entries[3]).expires_at


def test_the_sweep_before_expiry_offers_nobody_new(slot, entries, django_capture_on_commit_callbacks):
    with freeze_time(timezone.now() + timedelta(minutes=29)), django_capture_on_commit_callbacks(execute=True):
        sweep(now=timezone.now())

    assert statuses(entries) == ["pending", "pending", "pending", None, None]


def test_with_nobody_left_to_offer_the_slot_is_no_match(client, provider, django_capture_on_commit_callbacks):
    [only] = waitlist(provider, risks=[0.9])
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")

    post(client, link(only, "decline"), django_capture_on_commit_callbacks)

    slot = FreedSlot.objects.get(appointment=appointment)
    assert (slot.status, slot.next_attempt_at, slot.filled_by) == ("no_match", None, None)
    assert statuses([only]) == ["declined"]


def test_a_new_waitlist_entry_is_offered_a_slot_nobody_took(client, provider, django_capture_on_commit_callbacks):
    [only] = waitlist(provider, risks=[0.9])
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    post(client, link(only, "decline"), django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        [newcomer] = waitlist(provider, risks=[0.8])

    slot = FreedSlot.objects.get(appointment=appointment)
    assert slot.status == FreedSlot.Status.OPEN
    assert statuses([only, newcomer]) == ["declined", "pending"]


def test_declining_again_shows_the_outcome_and_changes_nothing(
    client, slot, entries, django_capture_on_commit_callbacks
):
    url = link(entries[0], "decline")
    post(client, url, django_capture_on_commit_callbacks)
    before = state()

    response = post(client, url, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    assert "You declined this time." in response.content.decode()
    assert state() == before


def test_an_accept_by_a_patient_booked_elsewhere_meanwhile_is_refused(
    client, slot, entries, django_capture_on_commit_callbacks
):
    AppointmentFactory(patient=entries[0].patient, start=slot.start, end=slot.end)

    response = post(client, link(entries[0], "accept"), django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    assert response.status_code == 409
    assert "clashes with another appointment" in response.content.decode()
    assert (slot.status, slot.filled_by) == ("open", None)
    assert statuses(entries)[:3] == ["withdrawn", "pending", "pending"]


def test_an_accept_after_staff_booked_the_slot_by_hand_is_refused(
    client, slot, entries, staff_user, django_capture_on_commit_callbacks
):
    book_by_hand(slot, entries[4], by="frontdesk", channel=Via.ADMIN)

    response = post(client, link(entries[0], "accept"), django_capture_on_commit_callbacks)

    assert response.status_code == 409
    assert TAKEN in response.content.decode()
    assert Appointment.objects.filter(patient=entries[0].patient).count() == 0


def tampered(token):
    return token[:-2] + ("AA" if not token.endswith("AA") else "BB")


@pytest.mark.parametrize(
    "make_url, message",
    [
        (lambda offer: "/offers/accept/not-a-token/", "This link is not valid."),
        (lambda offer: f"/offers/accept/{tampered(make_token(offer, 'accept'))}/", "This link is not valid."),
        # A decline token replayed as an accept: salted per action.
        (lambda offer: f"/offers/accept/{make_token(offer, 'decline')}/", "This link is not valid."),
        (lambda offer: f"/offers/book/{make_token(offer, 'accept')}/", "This link is not one we sent."),
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_bad_link_gets_a_400_and_changes_nothing(client, slot, entries, make_url, message, method):
    before = state()

    response = getattr(client, method)(make_url(offer_to(entries[0])))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert state() == before


def test_a_link_to_an_offer_that_no_longer_exists_gets_a_400(client, slot, entries):
    offer = offer_to(entries[0])
    url = f"/offers/accept/{make_token(offer, 'accept')}/"
    SlotOffer.objects.filter(pk=offer.pk).update(expires_at=offer.expires_at + timedelta(minutes=5))
    before = state()

    response = client.post(url)

    assert response.status_code == 400
    assert "This link no longer matches an offer." in response.content.decode()
    assert state() == before


@pytest.mark.parametrize("action", ["accept", "decline"])
def test_an_expired_link_gets_a_400_and_changes_nothing(client, slot, entries, action):
    url = link(entries[0], action)
    before = state()

    with freeze_time(timezone.now() + timedelta(minutes=31)):
        response = client.post(url)

    assert response.status_code == 400
    assert "This offer has expired" in response.content.decode()
    assert state() == before


def test_the_freed_slot_admin_page_shows_its_offers(staff_client, slot, entries):
    response = staff_client.get(f"/admin/backfill/freedslot/{slot.pk}/change/")

    assert response.status_code == 200
    assert "Slot offers" in response.content.decode()
    assert entries[0].patient.last_name in response.content.decode()
    assert staff_client.get("/admin/backfill/slotoffer/?status=pending").status_code == 200


def test_with_offer_mode_off_the_slot_is_booked_directly(
    settings, provider, entries, django_capture_on_commit_callbacks
):
    settings.BACKFILL = {**settings.BACKFILL, "OFFER_MODE": False}
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")

    slot = FreedSlot.objects.get(appointment=appointment)
    assert (slot.status, slot.filled_by.patient) == ("backfilled", entries[0].patient)
    assert not SlotOffer.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_patients_accepting_at_the_same_instant_get_exactly_one_booking(provider):
    entries = waitlist(provider)
    appointment = AppointmentFactory(provider=provider)
    appointment.cancel("patient called in sick")  # autocommit: the job runs right after
    first, second = offer_to(entries[0]), offer_to(entries[1])

    results = run_in_threads(
        [
            lambda: accept_slot_offer(first, by="patient", channel=Via.PATIENT_LINK),
            lambda: accept_slot_offer(second, by="patient", channel=Via.PATIENT_LINK),
        ]
    )

    booked = [result for result in results if isinstance(result, Appointment)]
    refused = [result for result in results if isinstance(result, OfferError)]
    assert (len(booked), len(refused)) == (1, 1), results
    assert str(refused[0]) == TAKEN
    slot = FreedSlot.objects.get(appointment=appointment)
    assert (slot.status, slot.filled_by) == ("backfilled", booked[0])
    assert Appointment.objects.filter(source="backfill").count() == 1
    assert sorted(statuses(entries[:3])) == ["accepted", "withdrawn", "withdrawn"]
    assert WaitlistEntry.objects.filter(status="booked").count() == 1
    assert Appointment.objects.active().filter(provider=provider, start=appointment.start).count() == 1
