"""Each location's own clock (docs/reference.md, Time zones): a slot's weekday and time of day are its site's.

The clinic's TIME_ZONE is New York; Los Angeles is three hours behind it.
"""

from datetime import datetime, time, timedelta
from html import unescape
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
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for
from scheduling.models import ProviderUnavailability
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
        slot = SlotFacts(
            dr_reyes.pk,
            dr_reyes.specialty_id,
            dr_reyes.location_id,
            start,
            start + timedelta(minutes=45),
            time_zone="America/Los_Angeles",
        )

        ranked = rank_candidates(slot, Rules())

        assert start.astimezone(ZoneInfo("UTC")).hour == utc_hour
        assert [c.entry.pk for c in ranked] == [c.entry.pk for c in rank_by_full_scan(slot, Rules())] == [entry.pk]


def test_the_slot_of_a_location_reads_its_own_clock(dr_reyes):
    appointment = AppointmentFactory(provider=dr_reyes, start=at(next_monday(), 9))
    slot = FreedSlot(provider=dr_reyes, start=appointment.start, end=appointment.end, appointment=appointment)

    facts = SlotFacts.of(slot)

    assert (facts.local_start.hour, facts.weekday) == (9, "mon")
    assert "09:00" in str(slot)


def test_the_patients_link_page_shows_the_sites_time(client, dr_reyes):
    appointment = AppointmentFactory(provider=dr_reyes, start=at(next_monday(), 9))

    page = client.get(link_for(appointment, "cancel").removeprefix("http://testserver")).content.decode()

    assert "9:00 AM" in page and "12:00 PM" not in page


# --- A network across two clocks: New York (the clinic's) and Los Angeles -----------------------
# Monday 23 November 2026: Los Angeles is on PST (UTC-8), New York on EST (UTC-5).

NOV_23 = datetime(2026, 11, 23).date()
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def dr_ames():
    return ProviderFactory(name="Dr Ames", location=LocationFactory(name="Midtown", time_zone="America/New_York"))


def book(provider, start, first_name):
    return AppointmentFactory(
        provider=provider, start=start, patient=PatientFactory(first_name=first_name, last_name="Test")
    )


def listed(client, path):
    return {item["id"] for item in client.get(path).json()["results"]}


@freeze_time("2026-11-20 12:00:00")
def test_the_los_angeles_day_schedule_is_that_sites_day_on_its_clock(staff_client, dr_reyes, dr_ames):
    book(dr_reyes, at(NOV_23, 8), "Early")
    book(dr_reyes, at(NOV_23, 17), "Late")
    book(dr_reyes, at(NOV_23, 21) + timedelta(minutes=30), "Evening")  # already Tuesday in New York
    book(dr_reyes, at(NOV_23 - timedelta(days=1), 22), "Sunday")  # Monday 01:00 in New York
    book(dr_ames, at(NOV_23, 9, NEW_YORK), "Eastern")

    page = staff_client.get(f"/schedule/?date={NOV_23}&location={dr_reyes.location_id}").text

    assert "Early Test" in page and "Late Test" in page and "Evening Test" in page
    assert "Sunday Test" not in page and "Eastern Test" not in page
    assert "08:00–08:45" in page and "17:00–17:45" in page and "21:30–22:15" in page
    assert "Times are America/Los_Angeles (PST)" in page and "America/New_York" not in page


@freeze_time("2026-11-20 12:00:00")
def test_every_locations_schedule_shows_each_sites_own_day_and_names_both_clocks(staff_client, dr_reyes, dr_ames):
    book(dr_reyes, at(NOV_23, 21) + timedelta(minutes=30), "Evening")
    book(dr_ames, at(NOV_23, 9, NEW_YORK), "Eastern")
    book(dr_ames, at(NOV_23, 0, NEW_YORK) - timedelta(minutes=50), "Midnight")  # Sunday 23:10-23:55 in New York

    page = unescape(staff_client.get(f"/schedule/?date={NOV_23}&location=all").text)

    assert "Evening Test" in page and "21:30–22:15" in page
    assert "Eastern Test" in page and "09:00–09:45" in page and "Midnight Test" not in page
    assert "Times are each location's own: " in page
    assert (
        "America/Los_Angeles (PST) at Santa Monica" in page
        and "Midtown" in page.split("America/New_York (EST) at ")[1]
    )


@freeze_time("2026-11-20 12:00:00")
def test_the_apis_date_filter_gives_each_appointment_its_sites_day(staff_client, dr_reyes, dr_ames):
    evening = book(dr_reyes, at(NOV_23, 21) + timedelta(minutes=30), "Evening")  # 05:30 UTC on the 24th
    sunday = book(dr_reyes, at(NOV_23 - timedelta(days=1), 22), "Sunday")  # 06:00 UTC on the 23rd
    eastern = book(dr_ames, at(NOV_23, 9, NEW_YORK), "Eastern")

    assert listed(staff_client, f"/api/appointments/?date={NOV_23}") == {evening.pk, eastern.pk}
    assert listed(staff_client, f"/api/appointments/?date={NOV_23 - timedelta(days=1)}") == {sunday.pk}


@freeze_time("2026-11-20 12:00:00")
def test_the_api_lists_freed_slots_by_their_sites_day(staff_client, dr_reyes, django_capture_on_commit_callbacks):
    slot = cancel(
        book(dr_reyes, at(NOV_23, 21) + timedelta(minutes=30), "Evening"), django_capture_on_commit_callbacks
    )

    assert listed(staff_client, f"/api/freed-slots/?date={NOV_23}") == {slot.pk}
    assert listed(staff_client, f"/api/freed-slots/?date={NOV_23 + timedelta(days=1)}") == set()


@freeze_time("2026-11-20 12:00:00")
def test_a_provider_away_on_a_los_angeles_day_frees_no_slot_late_that_evening(staff_client, dr_reyes):
    ProviderUnavailability.objects.create(provider=dr_reyes, start_date=NOV_23, end_date=NOV_23, reason="conference")
    on_the_day = book(dr_reyes, at(NOV_23, 21) + timedelta(minutes=30), "Evening")  # Tuesday already in UTC
    the_evening_before = book(
        dr_reyes, at(NOV_23 - timedelta(days=1), 21) + timedelta(minutes=30), "Sunday"
    )  # Monday in UTC

    def cancel_by_api(appointment):
        response = staff_client.post(
            f"/api/appointments/{appointment.pk}/cancel/",
            {"reason": "patient called"},
            content_type="application/json",
        )
        return response.json()["freed_slot"]

    assert cancel_by_api(on_the_day) is None
    assert cancel_by_api(the_evening_before) is not None


@freeze_time("2026-11-20 12:00:00")
def test_fhir_gives_each_sites_offset_and_searches_its_day(staff_client, dr_reyes, dr_ames):
    evening = book(dr_reyes, at(NOV_23, 21) + timedelta(minutes=30), "Evening")
    eastern = book(dr_ames, at(NOV_23, 9, NEW_YORK), "Eastern")

    def fhir(path):
        return staff_client.get(f"/fhir/{path}", HTTP_ACCEPT="application/fhir+json").json()

    assert (fhir(f"Appointment/{evening.pk}")["start"], fhir(f"Appointment/{evening.pk}")["end"]) == (
        "2026-11-23T21:30:00-08:00",
        "2026-11-23T22:15:00-08:00",
    )
    assert fhir(f"Appointment/{eastern.pk}")["start"] == "2026-11-23T09:00:00-05:00"
    found = fhir(f"Appointment?date={NOV_23}")
    assert {entry["resource"]["id"] for entry in found["entry"]} == {str(evening.pk), str(eastern.pk)}
    assert fhir(f"Appointment?date=gt{NOV_23}")["total"] == 0


@freeze_time("2026-11-20 12:00:00")
def test_the_dashboard_counts_days_on_the_chosen_sites_clock(
    staff_client, dr_reyes, django_capture_on_commit_callbacks
):
    with freeze_time(at(NOV_23, 22)):  # freed on Monday evening in Los Angeles, Tuesday in New York
        cancel(book(dr_reyes, at(NOV_23 + timedelta(days=3), 9), "Later"), django_capture_on_commit_callbacks)
    monday = f"start_date={NOV_23}&end_date={NOV_23}"

    at_the_site = staff_client.get(f"/dashboard/?{monday}&location={dr_reyes.location_id}").text
    everywhere = staff_client.get(f"/dashboard/?{monday}").text

    assert "0 of 1 freed slots were filled" in at_the_site
    assert "Days are counted on Santa Monica's clock, America/Los_Angeles." in at_the_site
    assert "0 of 0 freed slots were filled" in everywhere
    assert "Days are counted on the clinic's clock, for every location, America/New_York." in everywhere


# --- Across a daylight-saving change: Los Angeles falls back on Sunday 1 November 2026 ----------


@freeze_time("2026-10-28 12:00:00")
def test_the_schedule_day_of_the_change_is_its_25_hours_on_the_sites_clock(staff_client, dr_reyes):
    change = datetime(2026, 11, 1).date()
    book(dr_reyes, at(change, 9), "Morning")  # PST, 17:00 UTC
    book(dr_reyes, at(change, 23) + timedelta(minutes=30), "Night")  # 07:30 UTC on the 2nd
    book(dr_reyes, at(change - timedelta(days=1), 23), "Saturday")  # PDT, 06:00 UTC on the 1st

    page = staff_client.get(f"/schedule/?date={change}&location={dr_reyes.location_id}").text

    assert "Morning Test" in page and "09:00–09:45" in page
    assert "Night Test" in page and "23:30" in page
    assert "Saturday Test" not in page
    assert "Times are America/Los_Angeles (PST)" in page


@freeze_time("2026-10-28 12:00:00")
def test_a_9am_slot_the_day_after_the_change_books_the_patient_available_8_to_12(
    dr_reyes, django_capture_on_commit_callbacks
):
    morning = waiting(dr_reyes, 0.7, time_windows=["08:00-12:00"])
    waiting(dr_reyes, 0.9, time_windows=["12:00-13:00"])  # 09:00 PST is noon in New York
    appointment = book(dr_reyes, at(datetime(2026, 11, 2).date(), 9), "Holder")

    slot = cancel(appointment, django_capture_on_commit_callbacks)

    assert slot.filled_by.patient == morning.patient
    assert "9:00 AM" in mail.outbox[-1].subject


def test_the_sweep_keeps_an_entry_whose_last_day_is_not_over_in_los_angeles(dr_reyes):
    entry = waiting(dr_reyes, 0.7, latest_date=NOV_23)

    sweep(now=at(NOV_23, 22))  # Tuesday already in New York
    entry.refresh_from_db()
    assert entry.status == "waiting"

    sweep(now=at(NOV_23 + timedelta(days=1), 0) + timedelta(minutes=1))
    entry.refresh_from_db()
    assert entry.status == "expired"


@freeze_time("2026-11-20 12:00:00")
def test_an_appointments_page_is_on_its_sites_clock_and_links_back_to_its_day(staff_client, dr_reyes):
    evening = book(dr_reyes, at(NOV_23, 21) + timedelta(minutes=30), "Evening")  # Tuesday already in UTC and New York

    page = unescape(staff_client.get(f"/schedule/appointments/{evening.pk}/").text)

    assert "Mon 23 Nov 2026, 21:30–22:15" in page
    assert f"?date={NOV_23}&location={dr_reyes.location_id}" in page
    assert "Times are America/Los_Angeles (PST)" in page
