"""The dashboard's figures against ones worked out by hand: a date range, by
location and specialty, how much sooner backfilled patients were seen, the offer funnel."""

from datetime import datetime, time, timedelta
from html import unescape

import pytest
from django.utils import timezone

from backfill.models import FreedSlot, SlotOffer
from backfill.stats import backfill_stats, by_location_and_specialty, days_sooner, freed_between, offer_funnel
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


def at(day, hour=10):
    return timezone.make_aware(datetime.combine(day, time(hour)))


def slot(provider, freed_days_ago, status, *, sooner_days=None, hour=10):
    """A slot freed `freed_days_ago` (for a visit 5 days after that) with `status`; filled
    ones by a patient who, when `sooner_days` is given, held an appointment that much later."""
    freed_at = at(TODAY - timedelta(days=freed_days_ago), 8)
    start = at(TODAY - timedelta(days=freed_days_ago) + timedelta(days=5), hour)
    cancelled = AppointmentFactory(
        provider=provider, start=start, end=start + timedelta(minutes=45), status=Appointment.Status.CANCELLED
    )
    booked = None
    if status in (FreedSlot.Status.BACKFILLED, FreedSlot.Status.MANUAL):
        patient = PatientFactory()
        booked = AppointmentFactory(
            provider=provider,
            patient=patient,
            start=start,
            end=start + timedelta(minutes=45),
            source=Appointment.Source.BACKFILL,
        )
        later = None
        if sooner_days is not None:
            later = AppointmentFactory(
                provider=provider,
                patient=patient,
                start=start + timedelta(days=sooner_days),
                end=start + timedelta(days=sooner_days, minutes=45),
                status=Appointment.Status.CANCELLED,
            )
        WaitlistEntryFactory(
            patient=patient,
            specialty=provider.specialty,
            status=WaitlistEntry.Status.BOOKED,
            booked_appointment=booked,
            original_appointment=later,
        )
    made = FreedSlot.objects.create(
        provider=provider,
        start=start,
        end=start + timedelta(minutes=45),
        appointment=cancelled,
        status=status,
        freed_at=freed_at,
        filled_by=booked,
        fill_ms=100 if booked else None,
    )
    return made


@pytest.fixture
def clinic():
    downtown, northside = LocationFactory(name="Downtown"), LocationFactory(name="Northside")
    ortho, sports = SpecialtyFactory(name="Orthopedic PT"), SpecialtyFactory(name="Sports Rehab")
    return {
        "downtown ortho": ProviderFactory(location=downtown, specialty=ortho),
        "downtown sports": ProviderFactory(location=downtown, specialty=sports),
        "northside ortho": ProviderFactory(location=northside, specialty=ortho),
        "downtown": downtown,
        "ortho": ortho,
    }


@pytest.fixture
def history(clinic):
    """Downtown ortho: 3 freed, 2 filled (seen 4 and 20 days sooner); Downtown sports: 2 freed,
    1 filled (10 days sooner), 1 no match; Northside ortho: 1 freed 40 days ago, filled 30 days sooner."""
    slot(clinic["downtown ortho"], 2, "backfilled", sooner_days=4, hour=9)
    slot(clinic["downtown ortho"], 3, "manual", sooner_days=20, hour=11)
    slot(clinic["downtown ortho"], 4, "no_match", hour=13)
    slot(clinic["downtown sports"], 5, "backfilled", sooner_days=10)
    slot(clinic["downtown sports"], 6, "no_match", hour=14)
    slot(clinic["northside ortho"], 40, "backfilled", sooner_days=30)


def last_30_days():
    return TODAY - timedelta(days=29), TODAY


def test_the_range_counts_only_slots_freed_in_it(history):
    stats = backfill_stats(*last_30_days())
    assert (stats["freed"], stats["backfilled"], stats["filled_by_hand"], stats["no_match"]) == (5, 2, 1, 2)
    assert stats["fill_rate"] == 0.6  # 3 of 5
    assert backfill_stats(TODAY - timedelta(days=60), TODAY)["freed"] == 6


def test_it_splits_by_location_and_specialty(history):
    rows = by_location_and_specialty(freed_between(*last_30_days()))

    assert rows == [
        {"location": "Downtown", "specialty": "Orthopedic PT", "freed": 3, "filled": 2, "fill_rate": 0.6667},
        {"location": "Downtown", "specialty": "Sports Rehab", "freed": 2, "filled": 1, "fill_rate": 0.5},
    ]


def test_it_filters_by_location_and_specialty(clinic, history):
    stats = backfill_stats(TODAY - timedelta(days=60), TODAY, specialty=clinic["ortho"])
    assert (stats["freed"], stats["backfilled"] + stats["filled_by_hand"]) == (4, 3)
    assert backfill_stats(*last_30_days(), location=clinic["downtown"], specialty=clinic["ortho"])["freed"] == 3


def test_the_median_days_sooner_is_that_of_the_patients_moved_earlier(history):
    assert days_sooner(freed_between(*last_30_days())) == {"median_days": 10.0, "patients": 3}  # 4, 10, 20
    assert days_sooner(freed_between(TODAY - timedelta(days=60), TODAY)) == {"median_days": 15.0, "patients": 4}


def test_the_offer_funnel_counts_each_offers_end(clinic):
    freed = slot(clinic["downtown ortho"], 1, "backfilled")
    ends = ["accepted", "declined", "declined", "expired", "withdrawn"]
    for status in ends:
        entry = WaitlistEntryFactory(specialty=clinic["ortho"], status=WaitlistEntry.Status.EXPIRED)
        SlotOffer.objects.create(
            slot=freed,
            entry=entry,
            patient=entry.patient,
            score=90,
            status=status,
            expires_at=freed.freed_at + timedelta(minutes=30),
        )

    funnel = offer_funnel(freed_between(*last_30_days()))

    assert (funnel["sent"], funnel["accepted"], funnel["declined"], funnel["expired"]) == (5, 1, 2, 1)
    assert funnel["acceptance_rate"] == 0.2


def test_the_page_shows_the_figures_for_the_range_chosen(staff_client, clinic, history, settings):
    settings.BACKFILL = {**settings.BACKFILL, "OFFER_MODE": True}
    first = TODAY - timedelta(days=60)

    text = unescape(
        staff_client.get(
            f"/dashboard/?start_date={first:%Y-%m-%d}&end_date={TODAY:%Y-%m-%d}&specialty={clinic['ortho'].pk}"
        ).text
    )

    assert '<span class="value" id="fill-rate">75.0%</span>' in text
    assert '<span class="value" id="days-sooner">20.0 days</span>' in text  # the middle of 4, 20, 30
    assert '<td id="offers-sent">0</td>' in text
    assert "Northside" in text


def test_it_refuses_a_range_that_ends_before_it_starts(staff_client):
    response = staff_client.get(
        f"/dashboard/?start_date={TODAY:%Y-%m-%d}&end_date={TODAY - timedelta(days=1):%Y-%m-%d}"
    )

    assert response.status_code == 400
    assert "The first day must not be after the last." in response.text


def test_it_refuses_a_date_it_cannot_read(staff_client):
    response = staff_client.get("/dashboard/?start_date=yesterday")

    assert response.status_code == 400
    assert "From: Enter a valid date." in response.text
