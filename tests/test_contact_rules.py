"""Contact rules for offers: quiet hours, a weekly cap, a pause after offers go by."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from backfill import contact_rules
from backfill.actions import decline_slot_offer
from backfill.models import FreedSlot, MatchLog, SlotOffer
from clinic.actions import Via
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db

CLINIC = ZoneInfo("America/New_York")


def local(*args):
    return datetime(*args, tzinfo=CLINIC)


@pytest.fixture(autouse=True)
def offer_mode(settings):
    settings.TIME_ZONE = "America/New_York"
    settings.BACKFILL = {
        **settings.BACKFILL,
        "OFFER_MODE": True,
        "OFFER_TOP_N": 1,
        "OFFER_MINUTES": 30,
        "QUIET_HOURS": "20:00-08:00",
        "MAX_OFFERS_PER_WEEK": 3,
        "PAUSE_AFTER_DECLINES": 3,
    }


@pytest.fixture
def provider():
    return ProviderFactory(
        name="Dr. Free", specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory(name="Downtown")
    )


@pytest.fixture
def patient(provider):
    patient = PatientFactory(no_show_risk=0.9)
    WaitlistEntryFactory(patient=patient, specialty=provider.specialty)
    return patient


def free_slot(provider, start, callbacks):
    appointment = AppointmentFactory(provider=provider, start=start, end=start + timedelta(minutes=45))
    with callbacks(execute=True):
        appointment.cancel("patient called in sick")
    return FreedSlot.objects.get(appointment=appointment)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (local(2026, 12, 2, 21, 0), local(2026, 12, 3, 8, 0)),
        (local(2026, 12, 3, 6, 30), local(2026, 12, 3, 8, 0)),
        (local(2026, 12, 3, 8, 0), None),
        (local(2026, 12, 3, 19, 59), None),
    ],
)
def test_quiet_hours_run_overnight_in_the_clinics_time(now, until):
    assert contact_rules.quiet_until(now, CLINIC) == until


def test_empty_quiet_hours_are_off(settings):
    settings.BACKFILL = {**settings.BACKFILL, "QUIET_HOURS": ""}
    assert contact_rules.quiet_until(local(2026, 12, 3, 3, 0), CLINIC) is None


def test_an_offer_at_night_waits_for_the_morning_then_goes(provider, patient, django_capture_on_commit_callbacks):
    with freeze_time(local(2026, 12, 2, 22, 0)):
        slot = free_slot(provider, local(2026, 12, 3, 14, 0), django_capture_on_commit_callbacks)
        assert not SlotOffer.objects.exists()
        slot.refresh_from_db()
        assert (slot.status, slot.next_attempt_at) == (FreedSlot.Status.OPEN, local(2026, 12, 3, 8, 0))
    with freeze_time(local(2026, 12, 3, 8, 0, 30)), django_capture_on_commit_callbacks(execute=True):
        sweep()
    assert SlotOffer.objects.get().patient == patient


def test_an_offer_that_could_not_be_answered_by_morning_is_not_sent(
    provider, patient, django_capture_on_commit_callbacks
):
    with freeze_time(local(2026, 12, 2, 23, 0)):
        slot = free_slot(provider, local(2026, 12, 3, 8, 30), django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.NO_MATCH
    assert not SlotOffer.objects.exists()


def test_a_booking_confirmation_is_not_held_by_quiet_hours(
    settings, provider, patient, django_capture_on_commit_callbacks
):
    settings.BACKFILL = {**settings.BACKFILL, "OFFER_MODE": False}
    with freeze_time(local(2026, 12, 2, 23, 0)):
        slot = free_slot(provider, local(2026, 12, 3, 14, 0), django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert patient.messages.filter(kind="backfill_confirmation").exists()


def test_a_patient_offered_three_times_this_week_is_not_offered_again(
    provider, patient, django_capture_on_commit_callbacks
):
    runner_up = PatientFactory(no_show_risk=0.7)
    WaitlistEntryFactory(patient=runner_up, specialty=provider.specialty)
    with freeze_time(local(2026, 12, 3, 10, 0)):
        for day in range(3):
            offered = free_slot(provider, local(2026, 12, 7 + day, 14, 0), django_capture_on_commit_callbacks)
            assert offered.offers.get().patient == patient
        slot = free_slot(provider, local(2026, 12, 11, 14, 0), django_capture_on_commit_callbacks)
    assert slot.offers.get().patient == runner_up
    held = MatchLog.objects.get(slot=slot, entry__patient=patient)
    assert held.outcome == MatchLog.Outcome.WEEKLY_OFFER_LIMIT
    assert "MAX_OFFERS_PER_WEEK" in held.get_outcome_display()


def test_three_declines_in_a_row_pause_offers_until_resumed(provider, patient, django_capture_on_commit_callbacks):
    with freeze_time(local(2026, 12, 3, 10, 0)):
        for day in range(3):
            slot = free_slot(provider, local(2026, 12, 7 + day, 14, 0), django_capture_on_commit_callbacks)
            with django_capture_on_commit_callbacks(execute=True):
                decline_slot_offer(slot.offers.get(patient=patient), by="patient", channel=Via.PATIENT_LINK)
    patient.refresh_from_db()
    assert patient.offers_paused_at is not None

    with freeze_time(local(2026, 12, 11, 10, 0)):
        slot = free_slot(provider, local(2026, 12, 14, 14, 0), django_capture_on_commit_callbacks)
        assert not slot.offers.exists()
        assert MatchLog.objects.get(slot=slot).outcome == MatchLog.Outcome.OFFERS_PAUSED

        patient.resume_offers()
        slot = free_slot(provider, local(2026, 12, 15, 14, 0), django_capture_on_commit_callbacks)
        assert slot.offers.get().patient == patient


def test_staff_resume_paused_offers_from_the_admin(staff_client, patient):
    patient.pause_offers()
    response = staff_client.post(
        "/admin/clinic/patient/", {"action": "resume_offers", "_selected_action": [patient.pk]}
    )
    assert response.status_code == 302
    patient.refresh_from_db()
    assert patient.offers_paused_at is None and patient.offers_resumed_at is not None


def test_quiet_hours_follow_the_slots_location_clock(patient, django_capture_on_commit_callbacks):
    los_angeles = LocationFactory(name="Santa Monica", time_zone="America/Los_Angeles")
    west = ProviderFactory(name="Dr. West", specialty=patient.waitlist_entries.get().specialty, location=los_angeles)
    with freeze_time(local(2026, 12, 2, 21, 0)):  # 9 p.m. in New York is 6 p.m. in Los Angeles
        slot = free_slot(west, local(2026, 12, 4, 14, 0), django_capture_on_commit_callbacks)
    assert slot.offers.get().patient == patient
