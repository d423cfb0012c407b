"""Each location's own clock (SPEC 14): a slot's weekday and time of day are its site's.

The clinic's TIME_ZONE is New York; Los Angeles is three hours behind it.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone
from freezegun import freeze_time

from backfill.matching import Rules, SlotFacts, rank_by_full_scan, rank_candidates
from backfill.models import FreedSlot
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory
from clinic.models import Location
from scheduling.factories import AppointmentFactory
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db

LOS_ANGELES = ZoneInfo("America/Los_Angeles")


@pytest.fixture
def los_angeles():
    return LocationFactory(name="Santa Monica", time_zone="America/Los_Angeles")


@pytest.fixture
def dr_reyes(los_angeles):
    return ProviderFactory(name="Dr Reyes", location=los_angeles)


def at(day, hour, zone=LOS_ANGELES):
    return timezone.make_aware(datetime.combine(day, time(hour)), zone)


def next_monday():
    today = timezone.localdate()
    return today + timedelta(days=7 - today.weekday())


def waiting(provider, risk, **fields):
    patient = PatientFactory(no_show_risk=risk, preferred_location=provider.location)
    return WaitlistEntryFactory(patient=patient, specialty=provider.specialty, **fields)


def cancel(appointment, capture):
    with capture(execute=True):
        appointment.cancel("patient called in sick")
    return FreedSlot.objects.get(appointment=appointment)


def test_a_new_location_keeps_the_clinics_clock_unless_told_otherwise():
    assert Location.objects.create(name="Downtown").time_zone == "America/New_York"
    with pytest.raises(ValidationError):
        Location(name="Nowhere", time_zone="Mars/Olympus_Mons").full_clean()


def test_a_9am_los_angeles_slot_books_a_patient_available_8_to_12_there(dr_reyes, django_capture_on_commit_callbacks):
    morning = waiting(dr_reyes, 0.7, time_windows=["08:00-12:00"])
    waiting(dr_reyes, 0.9, time_windows=["12:00-17:00"])  # noon in New York, not in Los Angeles
    appointment = AppointmentFactory(provider=dr_reyes, start=at(next_monday(), 9))

    slot = cancel(appointment, django_capture_on_commit_callbacks)

    assert slot.filled_by.patient == morning.patient
    assert "9:00 AM" in mail.outbox[-1].subject  # the site's time, not New York's noon


def test_a_late_los_angeles_slot_is_on_that_sites_weekday(dr_reyes, django_capture_on_commit_callbacks):
    monday = next_monday()
    mondays_only = waiting(dr_reyes, 0.7, available_days=["mon"])
    appointment = AppointmentFactory(provider=dr_reyes, start=at(monday, 21))  # Tuesday 00:00 in New York

    slot = cancel(appointment, django_capture_on_commit_callbacks)

    assert slot.filled_by.patient == mondays_only.patient


@freeze_time("2031-03-01 12:00:00")
def test_a_slot_keeps_its_local_time_of_day_across_a_daylight_saving_change(dr_reyes):
    # Clocks in Los Angeles go forward on Sunday 9 March 2031: 09:00 is 17:00 UTC before, 16:00 after.
    entry = waiting(dr_reyes, 0.7, available_days=["fri", "mon"], time_windows=["08:00-10:00"])
    waiting(dr_reyes, 0.9, time_windows=["10:00-12:00"])
    for day, utc_hour in [(datetime(2031, 3, 7).date(), 17), (datetime(2031, 3, 10).date(), 16)]:
        start = at(day, 9)
        slot = SlotFacts(dr_reyes.pk, dr_reyes.specialty_id, dr_reyes.location_id, start, start + timedelta(minutes=45),
                         time_zone="America/Los_Angeles")

        ranked = rank_candidates(slot, Rules())

        assert start.astimezone(ZoneInfo("UTC")).hour == utc_hour
        assert [c.entry.pk for c in ranked] == [c.entry.pk for c in rank_by_full_scan(slot, Rules())] == [entry.pk]


def test_the_slot_of_a_location_reads_its_own_clock(dr_reyes):
    appointment = AppointmentFactory(provider=dr_reyes, start=at(next_monday(), 9))
    slot = FreedSlot(provider=dr_reyes, start=appointment.start, end=appointment.end, appointment=appointment)

    facts = SlotFacts.of(slot)

    assert (facts.local_start.hour, facts.weekday) == (9, "mon")
    assert "09:00" in str(slot)
