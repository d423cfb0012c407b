import re

import pytest

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_filled_one_not(django_capture_on_commit_callbacks):
    """Three cancellations: two waitlisted patients take two slots, nobody is left for the third."""
    provider = ProviderFactory()
    for _ in range(2):
        WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        for hour in (9, 11, 14):
            AppointmentFactory(provider=provider, start=next_weekday_at(hour)).cancel("patient called in sick")
    return FreedSlot.objects.all()


def test_it_shows_fill_rate_time_to_fill_and_revenue(staff_client, two_filled_one_not):
    statuses = sorted(two_filled_one_not.values_list("status", flat=True))

    text = staff_client.get("/dashboard/").text

    assert statuses == ["backfilled", "backfilled", "no_match"]
    assert '<span class="value" id="fill-rate">66.7%</span>' in text
    assert "fill rate (2 of 3 freed slots filled)" in text
    assert '<span class="value" id="revenue">$240</span>' in text
    assert re.search(r'id="median-time">(\d+ ms|[\d.]+ s)<', text)


def test_it_values_slots_at_the_configured_price(staff_client, two_filled_one_not, settings):
    settings.BACKFILL = {**settings.BACKFILL, "SLOT_VALUE": 95}

    text = staff_client.get("/dashboard/").text

    assert '<span class="value" id="revenue">$190</span>' in text
    assert "$95 a slot" in text


def test_it_draws_the_chart_inline_without_fetching_scripts(staff_client, two_filled_one_not):
    text = staff_client.get("/dashboard/").text

    assert '<svg xmlns="http://www.w3.org/2000/svg"' in text
    assert "Backfilled" in text and "No match" in text
    assert not re.search(r"<script[^>]+src=", text)


def test_it_shows_dashes_before_any_slot_was_filled(staff_client):
    text = staff_client.get("/dashboard/").text

    assert '<span class="value" id="fill-rate">0.0%</span>' in text
    assert '<span class="value" id="median-time">–</span>' in text
