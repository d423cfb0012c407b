"""The front desk's busiest pages in Chromium at 1400 and 390 px: a location with twelve
providers keeps its hours and provider names in view wherever the grid is scrolled, the
dashboard's charts draw under the pages' Content Security Policy with nothing in the console,
and an appointment's page waits for the backfill, then asks before a booking by hand.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from tests.test_browser import BROWSER_TESTS, browser  # noqa: F401 - the shared browser fixture
from tests.test_browser_pages import DESKTOP, PHONE, at, blocking_violations, open_as_desk, screenshot
from waitlist.factories import WaitlistEntryFactory

pytestmark = [*BROWSER_TESTS, pytest.mark.usefixtures("roles")]

# Whatever a card is drawn over in the hour column or the provider names' row (sampled along
# both, inside the grid's visible box), and any two cards of a column that overlap.
COVERED = """() => {
    const covered = [];
    const grid = document.querySelector('.day-grid').getBoundingClientRect();
    const axis = document.querySelector('.time-axis').getBoundingClientRect();
    const corner = document.querySelector('.time-axis .corner').getBoundingClientRect();
    const head = document.querySelector('.column-head').getBoundingClientRect();
    const lane = document.querySelector('.provider-column .lane').getBoundingClientRect();
    if (axis.bottom < lane.bottom - 1) covered.push('the hour column ends before the grid');
    const check = (x, y, where) => {
        const top = document.elementFromPoint(x, y);
        if (!top || top.closest('.item') || !top.closest(where)) {
            covered.push(`${where} at ${x},${y}: ${top && top.className}`);
        }
    };
    const bottom = Math.min(grid.bottom, axis.bottom, innerHeight) - 2, right = Math.min(grid.right, innerWidth) - 12;
    for (let y = corner.bottom + 1; y < bottom; y += 10) check(axis.left + 3, y, '.time-axis');
    for (let x = axis.right + 1; x < right; x += 15) check(x, head.top + head.height / 2, '.day-grid');
    for (const column of document.querySelectorAll('.provider-column')) {
        const boxes = [...column.querySelectorAll('.item')].map(item => item.getBoundingClientRect());
        boxes.forEach((a, i) => boxes.slice(i + 1).forEach(b => {
            const overlap = a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
            if (overlap) covered.push('two cards');
        }));
    }
    return covered.slice(0, 5);
}"""
# The first hour's label is whole: its top edge is not under the heads.
FIRST_HOUR_WHOLE = """() => {
    const label = document.querySelector('.time-axis .hour').getBoundingClientRect();
    const top = document.elementFromPoint(label.left + label.width / 2, label.top + 2);
    return top !== null && top.classList.contains('hour');
}"""


@pytest.fixture
def twelve_providers():
    """Downtown with twelve providers, each booked through the day, and one cancellation."""
    day = timezone.localdate() + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    downtown = LocationFactory(name="Downtown")
    specialty = SpecialtyFactory(name="Orthopedic PT")
    providers = [
        ProviderFactory(name=f"Dr. Provider {number:02d}", location=downtown, specialty=specialty)
        for number in range(1, 13)
    ]
    for index, provider in enumerate(providers):
        for hour in (7, 9, 11, 14, 16, 18):
            AppointmentFactory(
                provider=provider,
                start=at(day, hour),
                end=at(day, hour) + timedelta(minutes=45),
                patient=PatientFactory(first_name=f"Pat{index}", last_name=f"H{hour}"),
            )
    AppointmentFactory(
        provider=providers[-1],
        start=at(day, 12),
        end=at(day, 12) + timedelta(minutes=45),
        patient=PatientFactory(first_name="Quinn", last_name="Brown"),
        status=Appointment.Status.CANCELLED,
        cancel_reason="declined_reassignment",
    )
    return {"day": day, "location": downtown}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1400", "390"])
def test_a_twelve_provider_day_keeps_hours_and_names_in_view(
    browser,  # noqa: F811
    live_server,
    staff_user,
    twelve_providers,
    viewport,
):
    from playwright.sync_api import expect

    size = viewport["width"]
    page = open_as_desk(browser, live_server, viewport)
    day = twelve_providers["day"]
    page.goto(f"{live_server.url}/schedule/?date={day:%Y-%m-%d}&location={twelve_providers['location'].pk}")
    grid = page.locator(".day-grid")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    expect(page.locator(".time-axis .hour", has_text="07:00")).to_be_in_viewport(ratio=1)
    assert page.evaluate(FIRST_HOUR_WHOLE)
    assert page.evaluate(COVERED) == []

    # Down to the evening and across to the twelfth provider, as a front desk scrolls.
    grid.evaluate("grid => { grid.scrollIntoView(); grid.scrollTop = grid.scrollHeight; grid.scrollLeft = 1e6; }")
    expect(page.locator(".column-head", has_text="Dr. Provider 12")).to_be_in_viewport(ratio=1)
    expect(page.locator(".time-axis .hour", has_text="18:00")).to_be_in_viewport(ratio=1)
    expect(page.locator(".item", has_text="Pat11 H18")).to_be_in_viewport(ratio=1)
    assert page.evaluate(COVERED) == []
    screenshot(page, f"schedule-twelve-providers-{size}")

    page.get_by_role("link", name="Show cancelled").click()
    expect(page.locator(".legend .status-cancelled")).to_have_text("Cancelled")
    expect(page.locator(".status-cancelled", has_text="Quinn Brown")).to_have_count(1)
    assert page.evaluate(COVERED) == []
    assert blocking_violations(page) == []
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1400", "390"])
def test_the_dashboard_draws_its_chart_under_the_content_security_policy(
    browser,  # noqa: F811
    live_server,
    staff_user,
    viewport,
):
    from playwright.sync_api import expect

    page = open_as_desk(browser, live_server, viewport)
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.goto(f"{live_server.url}/dashboard/")

    chart = page.locator(".chart-wide svg" if viewport is DESKTOP else ".chart-phone svg").first
    expect(chart).to_be_visible()
    assert chart.bounding_box()["width"] > viewport["width"] * 0.6
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert console == []
    assert blocking_violations(page) == []
    screenshot(page, f"dashboard-chart-{viewport['width']}")
    page.context.close()


def test_the_appointment_page_waits_for_the_backfill_then_shows_whom_it_chose(
    browser,  # noqa: F811
    live_server,
    staff_user,
):
    from playwright.sync_api import expect

    from backfill.models import FreedSlot
    from backfill.tasks import backfill_slot

    provider = ProviderFactory(name="Dr. Mei Chen")
    day = timezone.localdate() + timedelta(days=3)
    appointment = AppointmentFactory(provider=provider, start=at(day, 10), end=at(day, 10) + timedelta(minutes=45))
    appointment.cancel("patient called in sick")  # nobody waits yet: its run finds no match
    WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Hugo", last_name="Nguyen"), specialty=provider.specialty
    )
    # Its next run is due (the sweep's or a retry's), queued but not taken yet.
    slot = FreedSlot.objects.get(appointment=appointment)
    FreedSlot.objects.filter(pk=slot.pk).update(status=FreedSlot.Status.OPEN, next_attempt_at=timezone.now())
    page = open_as_desk(browser, live_server, DESKTOP)
    console = []
    page.on("console", lambda message: console.append(message.text))

    page.goto(f"{live_server.url}/schedule/appointments/{appointment.pk}/")
    expect(page.locator("#backfill-running")).to_contain_text("Backfill running.")
    expect(page.get_by_label("Book by hand")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry backfill")).to_have_count(0)
    assert blocking_violations(page) == []
    backfill_slot(slot.pk)  # the job runs; the page reloads itself (a static script) and shows its outcome

    expect(page.get_by_text("Hugo Nguyen was chosen")).to_be_visible(timeout=15_000)
    expect(page.locator("#backfill-running")).to_have_count(0)
    assert console == []
    page.context.close()


def test_book_by_hand_on_a_phone_shows_the_rules_failed_and_asks_to_confirm(
    browser,  # noqa: F811
    live_server,
    staff_user,
):
    from playwright.sync_api import expect

    provider = ProviderFactory(name="Dr. Mei Chen")
    day = timezone.localdate() + timedelta(days=3)
    appointment = AppointmentFactory(provider=provider, start=at(day, 10), end=at(day, 10) + timedelta(minutes=45))
    appointment.cancel("patient called in sick")  # nobody waits: no match
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Lena", last_name="Ortiz", no_show_risk=0.2), specialty=provider.specialty
    )
    page = open_as_desk(browser, live_server, PHONE)

    page.goto(f"{live_server.url}/schedule/appointments/{appointment.pk}/")
    page.get_by_label("Book by hand").select_option(
        label=page.locator("#book-entry option", has_text="Lena").text_content()
    )
    page.get_by_role("button", name="Review the booking…").click()

    expect(page.get_by_role("heading", name="Book Lena Ortiz into this slot by hand?")).to_be_visible()
    expect(page.locator("#rules-failed")).to_contain_text("No-show risk 0.20 is under the minimum")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert blocking_violations(page) == []
    screenshot(page, "book-by-hand-confirm-390")
    page.get_by_role("button", name="Book Lena Ortiz anyway").click()

    expect(page.get_by_role("status").first).to_contain_text("Lena Ortiz is booked into this slot by hand.")
    expect(page.locator(".facts").first).to_contain_text("by hand from the waitlist, by frontdesk")
    page.context.close()
