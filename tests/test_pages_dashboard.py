import html
import re

import pytest

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.no_show import train_and_apply
from tests.no_show_history import generate_history, known_rule
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
    assert "fill rate: 2 of 3 freed slots were filled" in text
    assert '<span class="value" id="revenue">$240</span>' in text
    assert re.search(r'id="median-time">(\d+ ms|[\d.]+ s)<', text)


def test_it_values_slots_at_the_configured_price(staff_client, two_filled_one_not, settings):
    settings.BACKFILL = {**settings.BACKFILL, "SLOT_VALUE": 95}

    text = staff_client.get("/dashboard/").text

    assert '<span class="value" id="revenue">$190</span>' in text
    assert "each filled slot at $95" in text


def test_it_writes_money_with_a_thousands_separator(staff_client, two_filled_one_not, settings):
    settings.BACKFILL = {**settings.BACKFILL, "SLOT_VALUE": 23220}

    text = staff_client.get("/dashboard/").text

    assert '<span class="value" id="revenue">$46,440</span>' in text
    assert "each filled slot at $23,220" in text


def outcome_rows(text):
    table = text[text.index('id="outcomes"') : text.index("</table>", text.index('id="outcomes"'))]
    return {
        html.unescape(re.sub(r"<[^>]+>", "", label)): (count, html.unescape(meaning))
        for label, count, meaning in re.findall(
            r'<tr><th scope="row">(.*?)</th><td class="number">(.*?)</td><td>(.*?)</td></tr>', table
        )
    }


def test_it_says_what_each_outcome_of_a_freed_slot_means(staff_client, two_filled_one_not):
    text = staff_client.get("/dashboard/").text

    rows = outcome_rows(text)
    assert rows["Backfilled"][0] == "2" and rows["No match"][0] == "1"
    assert rows["Expired"] == ("0", "Still unfilled 60 minutes before it began: too late to offer to anyone.")
    assert "What became of the 3 freed slots" in text


def test_it_draws_the_chart_inline_with_no_script(staff_client, two_filled_one_not):
    text = staff_client.get("/dashboard/").text

    # One drawing for a desktop, one for a phone; the Content Security Policy refuses inline scripts.
    assert text.count('<svg xmlns="http://www.w3.org/2000/svg"') == 2
    assert "Backfilled" in text and "No match" in text
    assert "<script" not in text


def test_it_shows_dashes_before_any_slot_was_filled(staff_client):
    text = staff_client.get("/dashboard/").text

    assert '<span class="value" id="fill-rate">0.0%</span>' in text
    assert '<span class="value" id="median-time">–</span>' in text


def test_it_shows_the_no_show_model_in_use_with_its_calibration(staff_client):
    generate_history(known_rule)
    model = train_and_apply().in_use

    text = staff_client.get("/dashboard/").text

    assert f'<span class="value" id="no-show-auc">{model.auc:.2f}</span>' in text
    assert f'<span class="value" id="no-show-brier">{model.brier:.3f}</span>' in text
    assert '<span class="value" id="no-show-patients">250</span>' in text
    assert "Calibration: predicted vs observed" in text
    assert "Held-out visits, by tenth" in text and "Perfectly calibrated" in text
    assert text.count('<svg xmlns="http://www.w3.org/2000/svg"') == 4  # two charts, each for a desktop and a phone


def test_it_says_why_no_no_show_model_is_in_use(staff_client):
    generate_history(lambda visit: 0.2)
    model = train_and_apply().trained

    text = staff_client.get("/dashboard/").text

    assert "No model in use." in text
    assert f"reached a held-out AUC of {model.auc:.2f}, below the 0.60 needed" in text


def test_it_says_no_no_show_model_was_trained_yet(staff_client):
    text = staff_client.get("/dashboard/").text

    assert "No model in use. No model has been trained yet: run manage.py train_no_show_model" in text


def risk_rows(text):
    section = text[text.index('id="risk-bands"') : text.index('id="no-show-model"')]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td>(.*?)</td>", row)]
        for row in re.findall(r"<tr[^>]*>(<td>.*?)</tr>", section)
    ]


def test_it_shows_how_the_waiting_list_spreads_over_the_risk_tiers(staff_client):
    for risk in (0.9, 0.85, 0.7, 0.3):
        WaitlistEntryFactory(patient=PatientFactory(no_show_risk=risk))
    WaitlistEntryFactory(patient=PatientFactory(no_show_risk=0.12, no_show_risk_model=0.12, no_show_risk_standing=0.9))

    text = staff_client.get("/dashboard/").text

    assert risk_rows(text) == [
        ["+40", "0.80 or more", "in this clinic's highest fifth", "3"],
        ["+30", "0.60–0.80", "between this clinic's median and 80th percentile", "1"],
        ["under the floor: never booked", "under 0.60", "in this clinic's lower half", "1"],
    ]
    assert 'id="risk-floor-warning"' not in text


def test_it_warns_when_the_floor_leaves_out_more_than_half_of_the_waiting_list(staff_client):
    for risk in (0.9, 0.3, 0.1):
        WaitlistEntryFactory(patient=PatientFactory(no_show_risk=risk))

    text = staff_client.get("/dashboard/").text

    assert "The risk floor leaves out more than half of the waiting list" in text
