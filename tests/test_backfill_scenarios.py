from datetime import timedelta

import pytest
from django.core import mail

from backfill.models import FreedSlot, MatchLog
from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture
def orthopedic_provider():
    return ProviderFactory(specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory(name="Downtown"))


def cancel(appointment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    return FreedSlot.objects.filter(appointment=appointment).first()


def test_it_books_the_high_risk_waitlisted_patient(orthopedic_provider, django_capture_on_commit_callbacks):
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=orthopedic_provider.specialty)
    appointment = AppointmentFactory(provider=orthopedic_provider)

    slot = cancel(appointment, django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    entry.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert slot.filled_by.patient == entry.patient
    assert slot.filled_by.source == Appointment.Source.BACKFILL
    assert entry.status == WaitlistEntry.Status.BOOKED
    assert [m.to for m in mail.outbox] == [[entry.patient.email]]
    assert "Cancel this appointment" in mail.outbox[0].alternatives[0][0]


def test_it_leaves_the_slot_open_when_nobody_has_the_specialty(orthopedic_provider, django_capture_on_commit_callbacks):
    WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=SpecialtyFactory(name="Pediatric PT"))

    slot = cancel(AppointmentFactory(provider=orthopedic_provider), django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.NO_MATCH
    assert slot.filled_by is None


def test_it_skips_a_patient_already_booked_then(orthopedic_provider, django_capture_on_commit_callbacks):
    busy = WaitlistEntryFactory(patient=HighRiskPatientFactory(no_show_risk=0.95), specialty=orthopedic_provider.specialty)
    free = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=orthopedic_provider.specialty)
    appointment = AppointmentFactory(provider=orthopedic_provider)
    AppointmentFactory(patient=busy.patient, start=appointment.start, end=appointment.end)

    slot = cancel(appointment, django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    assert slot.filled_by.patient == free.patient
    outcomes = dict(MatchLog.objects.filter(slot=slot).values_list("patient_id", "outcome"))
    assert outcomes == {busy.patient_id: "already_booked", free.patient_id: "booked"}
