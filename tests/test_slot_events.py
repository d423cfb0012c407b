"""Integrators' events for freed slots, offers and booked waitlist entries (docs/reference.md, Events): written in
the transaction of the change, delivered signed to a real receiver on loopback."""

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from freezegun import freeze_time
from standardwebhooks.webhooks import Webhook

from backfill import tasks
from backfill.actions import accept_slot_offer, book_by_hand, decline_slot_offer
from backfill.models import FreedSlot, SlotOffer
from clinic.actions import Via
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory
from clinic.models import Event, WebhookEndpoint
from clinic.webhooks import new_secret
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from tests.webhook_receiver import receiving
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider():
    return ProviderFactory()


def types_since(event_id=0):
    return list(Event.objects.filter(pk__gt=event_id).order_by("pk").values_list("type", flat=True))


def latest_event():
    return Event.objects.order_by("pk").values_list("pk", flat=True).last() or 0


def last(event_type):
    return Event.objects.filter(type=event_type).latest("pk").payload


def test_a_backfill_reaches_the_ehr_with_the_freed_slot_the_booking_and_the_replaced_visit(
    provider, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the receiver listens on loopback
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    cancelled = AppointmentFactory(provider=provider)
    with receiving() as receiver:
        endpoint = WebhookEndpoint.objects.create(url=receiver.url, events=["*"], secret=new_secret())
        with django_capture_on_commit_callbacks(execute=True):
            cancelled.cancel("patient called in sick", by="frontdesk")
        bodies = [Webhook(endpoint.secret).verify(body, headers) for headers, body in receiver.received]

    slot = FreedSlot.objects.get()
    booked = Appointment.objects.get(source=Appointment.Source.BACKFILL)
    assert [body["type"] for body in bodies] == [
        "appointment.cancelled",
        "slot.freed",
        "appointment.created",
        "waitlist_entry.booked",
        "slot.backfilled",
    ]
    backfilled = bodies[-1]["data"]
    assert backfilled["slot"]["id"] == slot.pk and backfilled["slot"]["status"] == "backfilled"
    assert backfilled["booked_appointment"]["id"] == booked.pk
    assert backfilled["booked_appointment"]["patient"] == entry.patient_id
    assert backfilled["replaced_appointment"]["id"] == cancelled.pk
    assert backfilled["replaced_appointment"]["status"] == "cancelled"
    assert bodies[1]["data"]["slot"]["status"] == "open"
    booked_entry = bodies[3]["data"]
    assert booked_entry["waitlist_entry"]["id"] == entry.pk and booked_entry["waitlist_entry"]["status"] == "booked"
    assert booked_entry["appointment"]["id"] == booked.pk


def test_a_slot_nobody_fits_is_no_match(provider, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        AppointmentFactory(provider=provider).cancel("sick")
    assert types_since()[-2:] == ["slot.freed", "slot.no_match"]
    assert last("slot.no_match")["slot"]["status"] == "no_match"


def test_the_sweep_expiring_a_slot_says_so_once(provider):
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        status=FreedSlot.Status.NO_MATCH,
    )
    before = latest_event()
    assert sweep(now=appointment.start)["expired_slots"] == 1
    assert sweep(now=appointment.start)["expired_slots"] == 0
    assert types_since(before) == ["slot.expired"]
    assert last("slot.expired")["slot"]["id"] == slot.pk


def test_a_slot_that_keeps_failing_is_failed(provider, settings):
    settings.BACKFILL = {**settings.BACKFILL, "MAX_ATTEMPTS": 2}
    WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    FreedSlot.objects.create(
        provider=provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        next_attempt_at=timezone.now(),
    )
    with mock.patch("backfill.booking.rank_candidates", side_effect=RuntimeError("still broken")):
        sweep(now=timezone.now() + timedelta(hours=1))
        assert "slot.failed" not in types_since()
        sweep(now=timezone.now() + timedelta(hours=2))
    assert types_since().count("slot.failed") == 1
    assert last("slot.failed")["slot"]["status"] == "failed"


def test_booking_by_hand_is_a_backfill_the_slot_calls_manual(provider):
    entry = WaitlistEntryFactory(patient=PatientFactory(no_show_risk=0.1), specialty=provider.specialty)
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        status=FreedSlot.Status.NO_MATCH,
    )
    booked = book_by_hand(slot, entry, by=User.objects.create_user("desk"), channel=Via.ADMIN)
    payload = last("slot.backfilled")
    assert payload["slot"]["status"] == "manual"
    assert payload["booked_appointment"]["id"] == booked.pk
    assert payload["replaced_appointment"]["id"] == appointment.pk
    assert "waitlist_entry.booked" in types_since()


class TestOffers:
    @pytest.fixture(autouse=True)
    def offer_mode(self, settings):
        settings.BACKFILL = {**settings.BACKFILL, "OFFER_MODE": True, "OFFER_TOP_N": 2, "OFFER_MINUTES": 30}

    @pytest.fixture
    def slot(self, provider, django_capture_on_commit_callbacks):
        for risk in (0.95, 0.9):
            WaitlistEntryFactory(patient=PatientFactory(no_show_risk=risk), specialty=provider.specialty)
        with django_capture_on_commit_callbacks(execute=True):
            AppointmentFactory(provider=provider).cancel("sick")
        return FreedSlot.objects.get()

    def test_each_offer_sent_is_an_event_naming_its_slot(self, slot):
        assert types_since().count("offer.sent") == 2
        sent = last("offer.sent")
        assert sent["offer"]["status"] == "pending" and sent["slot"]["id"] == slot.pk

    def test_a_decline_then_an_accept(self, slot, django_capture_on_commit_callbacks):
        first, second = SlotOffer.objects.order_by("-score", "id")
        before = latest_event()
        with django_capture_on_commit_callbacks(execute=True):
            decline_slot_offer(first, by="patient", channel=Via.PATIENT_LINK)
        with django_capture_on_commit_callbacks(execute=True):
            accept_slot_offer(second, by="patient", channel=Via.PATIENT_LINK)
        assert types_since(before) == [
            "offer.declined",
            "appointment.created",
            "waitlist_entry.booked",
            "offer.accepted",
            "slot.backfilled",
        ]
        assert last("offer.declined")["offer"]["id"] == first.pk
        assert last("offer.accepted")["offer"]["status"] == "accepted"

    def test_offers_nobody_answered_expire_one_event_each(self, slot, django_capture_on_commit_callbacks):
        before = latest_event()
        with freeze_time(timezone.now() + timedelta(minutes=31)):
            with django_capture_on_commit_callbacks(execute=True):
                tasks.backfill_slot(slot.pk)
        assert types_since(before).count("offer.expired") == 2
        assert {last("offer.expired")["offer"]["status"]} == {"expired"}
