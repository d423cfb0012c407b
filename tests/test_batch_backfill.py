"""Batch backfill: slots freed together are filled together, for the best total (docs/reference.md, Rules)."""

from datetime import timedelta

import pytest
from django.db import transaction

from backfill.models import FreedSlot, MatchLog
from clinic.factories import PatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def batch_mode(settings):
    settings.BACKFILL = {**settings.BACKFILL, "BATCH_BACKFILL": True}


@pytest.fixture
def afternoon():
    """A provider's 14:00 and 15:00 appointments."""
    provider = ProviderFactory()
    return [
        AppointmentFactory(
            provider=provider, start=next_weekday_at(hour=hour), end=next_weekday_at(hour=hour) + timedelta(minutes=45)
        )
        for hour in (14, 15)
    ]


def waiting(provider, risk, windows=()):
    return WaitlistEntryFactory(
        patient=PatientFactory(no_show_risk=risk, preferred_location=provider.location),
        specialty=provider.specialty,
        time_windows=list(windows),
    )


def cancel_together(appointments, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for appointment in appointments:
            appointment.cancel("provider's afternoon cancelled")
    return [FreedSlot.objects.get(appointment=appointment) for appointment in appointments]


def test_it_fills_both_slots_where_greedy_would_fill_one(afternoon, django_capture_on_commit_callbacks):
    provider = afternoon[0].provider
    flexible = waiting(provider, 0.9)  # fits both, the best for either alone
    only_two_pm = waiting(provider, 0.7, windows=["14:00-15:00"])  # fits only 14:00
    two_pm, three_pm = cancel_together(afternoon, django_capture_on_commit_callbacks)
    two_pm.refresh_from_db()
    three_pm.refresh_from_db()
    assert two_pm.filled_by.patient == only_two_pm.patient
    assert three_pm.filled_by.patient == flexible.patient


def test_without_batch_mode_the_first_slot_takes_the_best_patient(
    afternoon, settings, django_capture_on_commit_callbacks
):
    settings.BACKFILL = {**settings.BACKFILL, "BATCH_BACKFILL": False}
    provider = afternoon[0].provider
    flexible = waiting(provider, 0.9)
    waiting(provider, 0.7, windows=["14:00-15:00"])
    two_pm, three_pm = cancel_together(afternoon, django_capture_on_commit_callbacks)
    two_pm.refresh_from_db()
    three_pm.refresh_from_db()
    assert two_pm.filled_by.patient == flexible.patient
    assert three_pm.status == FreedSlot.Status.NO_MATCH


def test_the_match_log_shows_a_patient_given_to_the_other_slot(afternoon, django_capture_on_commit_callbacks):
    provider = afternoon[0].provider
    flexible = waiting(provider, 0.9)
    waiting(provider, 0.7, windows=["14:00-15:00"])
    two_pm, _ = cancel_together(afternoon, django_capture_on_commit_callbacks)
    assert MatchLog.objects.get(slot=two_pm, patient=flexible.patient).outcome == MatchLog.Outcome.TAKEN


def test_a_lone_slot_is_filled_as_usual(afternoon, django_capture_on_commit_callbacks):
    best = waiting(afternoon[0].provider, 0.9)
    waiting(afternoon[0].provider, 0.7)
    (slot,) = cancel_together(afternoon[:1], django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    assert slot.filled_by.patient == best.patient


def test_nobody_fits_leaves_every_slot_open(afternoon, django_capture_on_commit_callbacks):
    slots = cancel_together(afternoon, django_capture_on_commit_callbacks)
    assert {FreedSlot.objects.get(pk=slot.pk).status for slot in slots} == {FreedSlot.Status.NO_MATCH}
