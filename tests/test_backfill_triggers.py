from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from backfill import booking, tasks
from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, ProviderFactory
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment, ProviderUnavailability
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider():
    return ProviderFactory()


@pytest.fixture
def waiting_patient(provider):
    return WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)


def test_the_job_is_enqueued_only_when_the_cancellation_commits(provider, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(provider=provider)
    with mock.patch("backfill.models.enqueue") as enqueue:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            appointment.cancel("sick")
            assert enqueue.call_count == 0  # not inside the transaction
        for callback in callbacks:
            callback()
    enqueue.assert_called_once_with(
        "backfill.tasks.backfill_slot",
        appointment.freed_slot.pk,
        group="backfill",
        task_name=f"backfill-slot-{appointment.freed_slot.pk}",
    )


def test_a_rolled_back_cancellation_triggers_nothing(provider, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(provider=provider)
    with mock.patch("backfill.models.enqueue") as enqueue, django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            appointment.cancel("sick")
            raise RuntimeError("the request failed after cancelling")
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.SCHEDULED
    assert not FreedSlot.objects.exists()
    enqueue.assert_not_called()


def test_re_saving_a_cancelled_appointment_triggers_nothing(
    provider, waiting_patient, django_capture_on_commit_callbacks
):
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")
    with mock.patch("backfill.models.enqueue") as enqueue, django_capture_on_commit_callbacks(execute=True):
        reloaded = Appointment.objects.get(pk=appointment.pk)
        reloaded.cancel_reason = "sick (confirmed by phone)"
        reloaded.save()
    enqueue.assert_not_called()
    assert FreedSlot.objects.count() == 1


def test_a_bare_save_of_a_cancelled_status_records_no_freed_slot(
    provider, waiting_patient, django_capture_on_commit_callbacks
):
    # Only the cancel verb frees a slot: no signal receiver writes one behind a plain save.
    appointment = Appointment.objects.get(pk=AppointmentFactory(provider=provider).pk)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.status = Appointment.Status.CANCELLED
        appointment.save()
    assert not FreedSlot.objects.exists()


def test_cancelling_twice_is_refused_and_frees_one_slot(provider, django_capture_on_commit_callbacks):
    from scheduling.models import CannotCancel

    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")
    with pytest.raises(CannotCancel, match="This appointment is cancelled and cannot be cancelled."):
        appointment.cancel("again")
    assert FreedSlot.objects.count() == 1


def test_a_slot_inside_the_lead_time_is_not_recorded(provider, waiting_patient, django_capture_on_commit_callbacks):
    soon = timezone.now() + timedelta(minutes=30)
    appointment = AppointmentFactory(provider=provider, start=soon, end=soon + timedelta(minutes=45))
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")
    assert not FreedSlot.objects.exists()


def test_a_slot_of_an_unavailable_provider_is_not_recorded(
    provider, waiting_patient, django_capture_on_commit_callbacks
):
    appointment = AppointmentFactory(provider=provider)
    day = timezone.localdate(appointment.start)
    ProviderUnavailability.objects.create(provider=provider, start_date=day, end_date=day, reason="sick")
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("provider_unavailable")
    assert not FreedSlot.objects.exists()


@pytest.mark.parametrize(
    ("away_days_after", "outcome"), [(0, FreedSlot.Status.EXPIRED), (1, FreedSlot.Status.BACKFILLED)]
)
def test_the_job_leaves_a_slot_of_a_provider_away_that_day(
    provider, waiting_patient, away_days_after, outcome, django_capture_on_commit_callbacks
):
    # 20:00 in New York is 01:00 UTC the next day: "that day" is the clinic's day.
    start = next_weekday_at(20)
    appointment = AppointmentFactory(provider=provider, start=start, end=start + timedelta(minutes=45))
    with django_capture_on_commit_callbacks(execute=False):  # recorded; the job has not run yet
        appointment.cancel("sick")
    day = start.date() + timedelta(days=away_days_after)
    ProviderUnavailability.objects.create(provider=provider, start_date=day, end_date=day, reason="sick")

    tasks.backfill_slot(appointment.freed_slot.pk)

    assert FreedSlot.objects.get().status == outcome


def test_a_new_waitlist_entry_fills_an_open_slot(provider, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")
    slot = FreedSlot.objects.get()
    assert slot.status == FreedSlot.Status.NO_MATCH
    with django_capture_on_commit_callbacks(execute=True):
        entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    slot.refresh_from_db()
    entry.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert entry.status == WaitlistEntry.Status.BOOKED
    assert slot.filled_by == entry.booked_appointment


def test_a_new_entry_takes_the_soonest_slot_it_fits(provider, django_capture_on_commit_callbacks):
    later = AppointmentFactory(provider=provider, start=next_weekday_at(hour=10, days_ahead=5))
    sooner = AppointmentFactory(provider=provider, start=next_weekday_at(hour=10, days_ahead=3))
    with django_capture_on_commit_callbacks(execute=True):
        later.cancel("sick")
        sooner.cancel("sick")
    with django_capture_on_commit_callbacks(execute=True):
        entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    entry.refresh_from_db()
    assert entry.booked_appointment.start == sooner.start


def test_a_failing_job_leaves_the_slot_open_and_the_cancellation_stands(
    provider, waiting_patient, django_capture_on_commit_callbacks
):
    appointment = AppointmentFactory(provider=provider)
    with mock.patch("backfill.booking.rank_candidates", side_effect=RuntimeError("database hiccup")):
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick")
    appointment.refresh_from_db()
    slot = FreedSlot.objects.get()
    assert appointment.status == Appointment.Status.CANCELLED
    assert (slot.status, slot.attempts) == (FreedSlot.Status.OPEN, 1)
    assert slot.last_error == "RuntimeError: database hiccup"
    assert slot.next_attempt_at > timezone.now() + timedelta(seconds=20)


def test_a_run_the_database_cut_short_runs_again_at_once_and_is_no_failure(provider, waiting_patient, monkeypatch):
    """A PostgreSQL restart under a running job: it runs again on a new connection, not after the 30 s backoff."""
    monkeypatch.setattr(tasks.time, "sleep", lambda seconds: None)
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=provider, start=appointment.start, end=appointment.end, appointment=appointment
    )
    cut = [OperationalError("terminating connection due to administrator command")]
    rank = booking.rank_candidates

    def cut_once(*args, **kwargs):
        if cut:
            raise cut.pop()
        return rank(*args, **kwargs)

    with mock.patch("backfill.booking.rank_candidates", side_effect=cut_once):
        assert tasks.backfill_slot(slot.pk) == FreedSlot.Status.BACKFILLED
    slot.refresh_from_db()
    assert (slot.failures, slot.last_error) == (0, "")
    waiting_patient.refresh_from_db()
    assert waiting_patient.booked_appointment.start == appointment.start


def test_the_sweep_retries_a_failed_job_and_gives_up_after_max_attempts(provider, waiting_patient, settings):
    settings.BACKFILL = {**settings.BACKFILL, "MAX_ATTEMPTS": 3}
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        next_attempt_at=timezone.now(),
    )
    with mock.patch("backfill.booking.rank_candidates", side_effect=RuntimeError("still broken")):
        for _ in range(3):
            sweep(now=timezone.now() + timedelta(hours=1))
    slot.refresh_from_db()
    assert (slot.status, slot.attempts, slot.failures) == (FreedSlot.Status.FAILED, 3, 3)


def test_ordinary_runs_do_not_count_towards_failing_a_slot(provider, settings):
    settings.BACKFILL = {**settings.BACKFILL, "MAX_ATTEMPTS": 2}
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=provider, start=appointment.start, end=appointment.end, appointment=appointment, attempts=4
    )
    with mock.patch("backfill.booking.rank_candidates", side_effect=RuntimeError("one hiccup")):
        tasks.backfill_slot(slot.pk)
    slot.refresh_from_db()
    assert (slot.status, slot.attempts, slot.failures) == (FreedSlot.Status.OPEN, 5, 1)


def test_the_sweep_recovers_a_slot_whose_job_was_lost(provider, waiting_patient):
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        next_attempt_at=timezone.now() + timedelta(minutes=2),
    )
    assert sweep()["requeued_slots"] == 0  # not yet presumed lost
    assert sweep(now=timezone.now() + timedelta(minutes=3))["requeued_slots"] == 1
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED


def test_the_sweep_expires_slots_whose_time_passed(provider):
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        status=FreedSlot.Status.NO_MATCH,
    )
    sweep(now=appointment.start)
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.EXPIRED


def test_running_the_job_twice_books_one_patient(provider, django_capture_on_commit_callbacks):
    WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")
    slot = FreedSlot.objects.get()
    tasks.backfill_slot(slot.pk)
    assert Appointment.objects.filter(source=Appointment.Source.BACKFILL).count() == 1
    assert WaitlistEntry.objects.filter(status=WaitlistEntry.Status.BOOKED).count() == 1


def test_chain_backfill_releases_the_later_appointment(provider, settings, django_capture_on_commit_callbacks):
    settings.BACKFILL = {**settings.BACKFILL, "CHAIN_BACKFILL": True}
    mover = HighRiskPatientFactory()
    later = AppointmentFactory(provider=provider, patient=mover, start=next_weekday_at(hour=10, days_ahead=6))
    WaitlistEntryFactory(patient=mover, specialty=provider.specialty, original_appointment=later)
    next_in_line = WaitlistEntryFactory(patient=HighRiskPatientFactory(no_show_risk=0.7), specialty=provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        AppointmentFactory(provider=provider, start=next_weekday_at(hour=10, days_ahead=2)).cancel("sick")
    later.refresh_from_db()
    next_in_line.refresh_from_db()
    assert later.status == Appointment.Status.CANCELLED
    earlier = timezone.localtime(next_weekday_at(hour=10, days_ahead=2))
    assert later.cancel_reason == f"moved earlier to {earlier:%a %-d %b %Y}, 10:00 with {provider.name}"
    assert next_in_line.booked_appointment.start == later.start


def test_the_entry_search_returns_the_appointment_it_booked(provider):
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    FreedSlot.objects.create(
        provider=provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        status=FreedSlot.Status.NO_MATCH,
    )
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    booked_id = tasks.fill_slots_for_entry(entry.pk)
    entry.refresh_from_db()
    assert booked_id is not None
    assert booked_id == entry.booked_appointment_id


def test_the_entry_search_skips_slots_on_days_the_patient_cannot_come(provider):
    appointment = AppointmentFactory(provider=provider, status=Appointment.Status.CANCELLED)
    slot = FreedSlot.objects.create(
        provider=provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        status=FreedSlot.Status.NO_MATCH,
    )
    other_days = sorted({"mon", "tue", "wed", "thu", "fri", "sat", "sun"} - {appointment.start.strftime("%a").lower()})
    entry = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(), specialty=provider.specialty, available_days=other_days
    )
    assert tasks.fill_slots_for_entry(entry.pk) is None
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.NO_MATCH


def test_a_slot_freed_while_the_broker_is_down_is_due_at_the_next_sweep(
    provider, waiting_patient, django_capture_on_commit_callbacks
):
    appointment = AppointmentFactory(provider=provider)
    with mock.patch("backfill.models.enqueue", side_effect=ConnectionError("Redis is restarting")):
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick", by="frontdesk")
    slot = FreedSlot.objects.get(appointment=appointment)
    assert slot.status == FreedSlot.Status.OPEN
    assert slot.next_attempt_at <= timezone.now()
    assert sweep()["requeued_slots"] == 1
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED
