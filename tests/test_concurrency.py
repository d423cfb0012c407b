"""Concurrent workers and cancellations on PostgreSQL, with real connections (docs/reference.md, Numbers).

Each thread has its own database connection, so row locks, skip_locked and the exclusion
constraints are exercised for real. Slots are freed with the queue pointed at the ORM
broker's table and no worker running, so the test decides when and how often each backfill
job runs.
"""

import random
import threading
from collections import Counter
from datetime import timedelta

import pytest

from backfill.booking import book_best_candidate
from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment, AppointmentConflict, CannotCancel
from tests.processes import assert_nobody_double_booked, enqueue_to_orm, run_in_threads
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

HOURS = (9, 10, 11, 12)
THREADS = 8


@pytest.fixture
def queue_without_worker(monkeypatch):
    # tests.settings runs jobs in-process on enqueue; here they only land in the broker's table.
    enqueue_to_orm(monkeypatch)


def providers(count, specialty="Orthopedic PT"):
    return [
        ProviderFactory(specialty=SpecialtyFactory(name=specialty), location=LocationFactory(name="Downtown"))
        for _ in range(count)
    ]


def book_the_day(staff):
    """One appointment per provider and hour: providers of one specialty share every hour."""
    return [AppointmentFactory(provider=provider, start=next_weekday_at(hour)) for hour in HOURS for provider in staff]


def waitlist(patients, specialty="Orthopedic PT"):
    return [WaitlistEntryFactory(patient=patient, specialty=SpecialtyFactory(name=specialty)) for patient in patients]


def free_all(appointments):
    for appointment in appointments:
        appointment.cancel("patient called in sick")
    return list(FreedSlot.objects.values_list("pk", flat=True))


def run_each_slot_twice(slot_ids):
    """Every slot's job twice, spread over THREADS threads started at the same moment."""
    calls = [slot_id for slot_id in slot_ids for _ in range(2)]
    random.Random(20).shuffle(calls)
    shares = [calls[thread::THREADS] for thread in range(THREADS)]
    return run_in_threads(
        [lambda share=share: [book_best_candidate(slot_id).status for slot_id in share] for share in shares]
    )


def slot_statuses():
    return Counter(FreedSlot.objects.values_list("status", flat=True))


def test_it_books_each_waitlisted_patient_once_when_workers_race_for_twenty_slots(queue_without_worker):
    slot_ids = free_all(book_the_day(providers(5)))
    entries = waitlist(HighRiskPatientFactory.create_batch(8))

    results = run_each_slot_twice(slot_ids)

    assert [error for error in results if isinstance(error, Exception)] == []
    assert len(slot_ids) == 20
    # Eight patients for twenty slots: every patient placed, the other twelve slots found nobody.
    assert slot_statuses() == {FreedSlot.Status.BACKFILLED: 8, FreedSlot.Status.NO_MATCH: 12}
    assert {entry.status for entry in WaitlistEntry.objects.filter(pk__in=[e.pk for e in entries])} == {"booked"}
    assert_nobody_double_booked()


def test_it_never_double_books_a_patient_waiting_for_two_specialties(queue_without_worker):
    # The same patients wait for both specialties, whose providers free slots at the same
    # hours: two workers can pick one patient for two overlapping slots at once.
    slot_ids = free_all(book_the_day(providers(3, "Orthopedic PT") + providers(2, "Sports PT")))
    patients = HighRiskPatientFactory.create_batch(6)
    waitlist(patients, "Orthopedic PT")
    waitlist(patients, "Sports PT")

    results = run_each_slot_twice(slot_ids)

    assert [error for error in results if isinstance(error, Exception)] == []
    assert set(slot_statuses()) <= {FreedSlot.Status.BACKFILLED, FreedSlot.Status.NO_MATCH}
    assert slot_statuses()[FreedSlot.Status.BACKFILLED] >= 6
    assert_nobody_double_booked()


def test_it_fills_each_slot_once_when_twenty_cancellations_arrive_together():
    # tests.settings runs each cancellation's backfill job in the cancelling thread, right
    # after its commit: ten threads are ten workers competing for one waitlist.
    appointments = book_the_day(providers(5))
    entries = waitlist(HighRiskPatientFactory.create_batch(8))
    pairs = [appointments[index::10] for index in range(10)]

    results = run_in_threads([lambda pair=pair: [a.cancel("clinic closed early") for a in pair] for pair in pairs])

    assert [error for error in results if isinstance(error, Exception)] == []
    assert Appointment.objects.filter(pk__in=[a.pk for a in appointments], status="cancelled").count() == 20
    assert slot_statuses() == {FreedSlot.Status.BACKFILLED: 8, FreedSlot.Status.NO_MATCH: 12}
    assert WaitlistEntry.objects.filter(pk__in=[e.pk for e in entries], status="booked").count() == 8
    assert OutboundEmail.objects.filter(kind="backfill_confirmation", status="sent").count() == 8
    assert_nobody_double_booked()


def both_pass_the_python_check(monkeypatch):
    """Hold each thread after its own overlap check until the other has checked too.

    Both then insert believing the time is free: only the database can stop the second.
    """
    both_checked = threading.Barrier(2)
    check = Appointment.find_conflict
    waited = threading.local()

    def find_conflict_then_wait(appointment):
        conflict = check(appointment)
        if not getattr(waited, "done", False):
            waited.done = True
            both_checked.wait(timeout=10)
        return conflict

    monkeypatch.setattr(Appointment, "find_conflict", find_conflict_then_wait)


def book_at_once(bookings):
    start = next_weekday_at(10)

    def book(patient, provider):
        return Appointment.book(
            patient=patient,
            provider=provider,
            start=start,
            end=start + timedelta(minutes=45),
            source=Appointment.Source.STAFF,
        )

    return run_in_threads([lambda pair=pair: book(*pair) for pair in bookings])


def test_it_lets_only_one_of_two_simultaneous_bookings_of_a_patient_through(monkeypatch):
    patient = PatientFactory()
    both_pass_the_python_check(monkeypatch)

    results = book_at_once([(patient, ProviderFactory()), (patient, ProviderFactory())])

    assert sorted(type(result).__name__ for result in results) == ["Appointment", "AppointmentConflict"]
    conflict = next(result for result in results if isinstance(result, AppointmentConflict))
    assert str(conflict) == "The patient already has an appointment at that time."
    assert Appointment.objects.filter(patient=patient).count() == 1


def test_it_lets_only_one_of_two_simultaneous_bookings_of_a_provider_through(monkeypatch):
    provider = ProviderFactory()
    both_pass_the_python_check(monkeypatch)

    results = book_at_once([(PatientFactory(), provider), (PatientFactory(), provider)])

    assert sorted(type(result).__name__ for result in results) == ["Appointment", "AppointmentConflict"]
    conflict = next(result for result in results if isinstance(result, AppointmentConflict))
    assert str(conflict) == "The provider already has an appointment at that time."
    assert Appointment.objects.filter(provider=provider).count() == 1


def test_it_records_one_freed_slot_when_two_people_cancel_the_same_appointment_at_once():
    appointment = AppointmentFactory()

    results = run_in_threads(
        [
            lambda who=who: Appointment.objects.get(pk=appointment.pk).cancel("sick", by=who)
            for who in ("front desk", "patient link")
        ]
    )

    assert sorted(type(result).__name__ for result in results) == ["Appointment", "CannotCancel"]
    refused = next(result for result in results if isinstance(result, CannotCancel))
    assert str(refused) == "This appointment is cancelled and cannot be cancelled."
    assert FreedSlot.objects.filter(appointment=appointment).count() == 1
