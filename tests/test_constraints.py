"""The invariants are the database's job: try to break each one behind the model's back."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from backfill.models import FreedSlot
from clinic.factories import PatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment, AppointmentConflict
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def raw_insert(**fields):
    """Bypass Appointment.book's Python check: only the database stands in the way."""
    with transaction.atomic():
        Appointment.objects.bulk_create([Appointment(**fields)])


def test_it_refuses_two_overlapping_appointments_for_one_provider():
    first = AppointmentFactory()
    with pytest.raises(IntegrityError):
        raw_insert(
            patient=PatientFactory(),
            provider=first.provider,
            start=first.start + timedelta(minutes=15),
            end=first.end + timedelta(minutes=15),
        )


def test_it_refuses_two_overlapping_appointments_for_one_patient():
    first = AppointmentFactory()
    with pytest.raises(IntegrityError):
        raw_insert(patient=first.patient, provider=ProviderFactory(), start=first.start, end=first.end)


def test_it_allows_back_to_back_appointments():
    first = AppointmentFactory()
    raw_insert(patient=first.patient, provider=first.provider, start=first.end, end=first.end + timedelta(minutes=45))
    assert Appointment.objects.filter(provider=first.provider).count() == 2


def test_it_lets_a_cancelled_appointment_free_its_time():
    first = AppointmentFactory(status=Appointment.Status.CANCELLED)
    raw_insert(patient=first.patient, provider=first.provider, start=first.start, end=first.end)
    assert Appointment.objects.active().filter(provider=first.provider).count() == 1


def test_it_refuses_to_reactivate_a_cancelled_appointment_into_an_overlap():
    cancelled = AppointmentFactory(status=Appointment.Status.CANCELLED)
    AppointmentFactory(provider=cancelled.provider, start=cancelled.start, end=cancelled.end)
    with pytest.raises(IntegrityError), transaction.atomic():
        Appointment.objects.filter(pk=cancelled.pk).update(status=Appointment.Status.SCHEDULED)


def test_it_maps_an_overlap_on_save_to_a_conflict_with_a_clear_message():
    first = AppointmentFactory()
    clash = Appointment(patient=PatientFactory(), provider=first.provider, start=first.start, end=first.end)
    with pytest.raises(AppointmentConflict, match="The provider already has an appointment at that time."):
        clash.save()


def test_book_refuses_an_overlap_for_the_patient():
    first = AppointmentFactory()
    with pytest.raises(AppointmentConflict, match="The patient already has an appointment at that time."):
        Appointment.book(
            patient=first.patient,
            provider=ProviderFactory(),
            start=first.start,
            end=first.end,
            source=Appointment.Source.STAFF,
        )


def test_it_refuses_an_appointment_ending_before_it_starts():
    first = AppointmentFactory.build()
    with pytest.raises(IntegrityError):
        raw_insert(
            patient=PatientFactory(),
            provider=ProviderFactory(),
            start=first.start,
            end=first.start - timedelta(minutes=1),
        )


def test_it_keeps_one_freed_slot_per_appointment():
    appointment = AppointmentFactory(status=Appointment.Status.CANCELLED)
    FreedSlot.objects.create(
        provider=appointment.provider, start=appointment.start, end=appointment.end, appointment=appointment
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        FreedSlot.objects.create(
            provider=appointment.provider, start=appointment.start, end=appointment.end, appointment=appointment
        )


def test_it_keeps_one_waiting_entry_per_patient_and_specialty():
    entry = WaitlistEntryFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        WaitlistEntryFactory(patient=entry.patient, specialty=entry.specialty)


def test_a_booked_entry_does_not_block_a_new_one():
    entry = WaitlistEntryFactory(status=WaitlistEntry.Status.BOOKED)
    WaitlistEntryFactory(patient=entry.patient, specialty=entry.specialty)
    assert WaitlistEntry.objects.filter(patient=entry.patient).count() == 2


def test_it_refuses_a_no_show_risk_outside_zero_to_one():
    with pytest.raises(IntegrityError), transaction.atomic():
        PatientFactory(no_show_risk=1.5)
