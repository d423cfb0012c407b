"""The front desk's day in a real browser: Debian's chromium driven by playwright (docs/reference.md, API).

The live server runs the queue in-process (tests/settings.py), so a cancellation in the
admin or a decline from an email is backfilled before the next page loads.
"""

import os
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"

# Every browser test's marks. In CI a missing browser must fail the run, not skip it.
BROWSER_TESTS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium at /usr/bin/chromium (bin/test installs it)",
    ),
    pytest.mark.django_db(transaction=True),
]
pytestmark = BROWSER_TESTS


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the test's own ORM
    # calls are still plain synchronous code, so Django's async-safety check is lifted here.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(10_000)
    yield context
    context.close()


@pytest.fixture
def desk(context, live_server, staff_user):
    """A browser tab logged in as the front desk through the login page."""
    page = context.new_page()
    page.goto(f"{live_server.url}/schedule/")
    page.fill("#id_username", "frontdesk")
    page.fill("#id_password", "frontdesk-pass")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/schedule/")
    return page


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def at(day, hour):
    return timezone.make_aware(datetime.combine(day, time(hour)))


def test_it_logs_in_and_shows_todays_schedule(context, live_server, staff_user):
    from playwright.sync_api import expect

    today = timezone.localdate()
    AppointmentFactory(
        provider=ProviderFactory(name="Dr. Elena Diaz"),
        patient=PatientFactory(first_name="Maya", last_name="Patel"),
        start=at(today, 10),
        end=at(today, 10) + timedelta(minutes=45),
    )
    page = context.new_page()

    page.goto(f"{live_server.url}/schedule/")
    expect(page.get_by_role("heading", name="Front desk login")).to_be_visible()
    screenshot(page, "login")
    page.fill("#id_username", "frontdesk")
    page.fill("#id_password", "frontdesk-pass")
    page.click("button[type=submit]")

    expect(page).to_have_url(f"{live_server.url}/schedule/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"{today:%A %-d %B %Y}")
    expect(page.locator(".provider-column", has_text="Dr. Elena Diaz")).to_contain_text("Maya Patel")
    screenshot(page, "schedule-today")


def test_it_backfills_a_slot_cancelled_in_the_admin(desk, live_server):
    from playwright.sync_api import expect

    provider = ProviderFactory(name="Dr. Noah Brown")
    day = timezone.localdate() + timedelta(days=2)
    appointment = AppointmentFactory(
        provider=provider,
        start=at(day, 11),
        end=at(day, 11) + timedelta(minutes=45),
        patient=PatientFactory(first_name="Chloe", last_name="Khan"),
    )
    WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Hugo", last_name="Nguyen"), specialty=provider.specialty
    )

    desk.goto(f"{live_server.url}/admin/scheduling/appointment/")
    desk.check(f"input[name=_selected_action][value='{appointment.pk}']")
    desk.select_option("select[name=action]", "cancel_appointments")
    desk.click("button[title='Run the selected action']")
    expect(desk.get_by_text("Chloe is emailed that the clinic cancelled")).to_be_visible()
    desk.fill("input[name=reason]", "the clinic is closed that morning")
    screenshot(desk, "admin-cancel-asks-why")
    desk.click("input[name=apply]")
    expect(desk.locator(".messagelist")).to_contain_text("The slot went to Hugo Nguyen")
    screenshot(desk, "admin-cancelled")

    desk.goto(f"{live_server.url}/schedule/?date={day:%Y-%m-%d}")
    column = desk.locator(".provider-column", has_text="Dr. Noah Brown")
    expect(column.locator(".source-backfill")).to_contain_text("Hugo Nguyen")
    expect(column.locator(".source-backfill")).to_contain_text("From waitlist · backfilled")
    expect(column).not_to_contain_text("Chloe Khan")
    screenshot(desk, "schedule-backfilled")


def test_it_plays_the_patient_declining_an_offer_from_the_outbox(desk, context, live_server, settings):
    from playwright.sync_api import expect

    settings.SITE_URL = live_server.url  # the links in the stored email point at this server
    specialty = SpecialtyFactory(name="Sports Rehab")
    away, colleague = (
        ProviderFactory(name="Dr. Away", specialty=specialty),
        ProviderFactory(name="Dr. Vera Rossi", specialty=specialty),
    )
    day = timezone.localdate() + timedelta(days=3)
    start, end = at(day, 14), at(day, 14) + timedelta(minutes=45)
    patient = PatientFactory(first_name="Isla", last_name="Brown")
    original = AppointmentFactory(
        provider=away,
        patient=patient,
        start=start,
        end=end,
        status=Appointment.Status.CANCELLED,
        cancel_reason="provider_unavailable",
    )
    offer = AppointmentFactory(
        provider=colleague,
        patient=patient,
        start=start,
        end=end,
        status=Appointment.Status.OFFERED,
        source=Appointment.Source.REASSIGNMENT,
        replaces=original,
    )
    queue_email(OutboundEmail.Kind.REASSIGNMENT_OFFER, offer, original=original)
    WaitlistEntryFactory(patient=HighRiskPatientFactory(first_name="Grace", last_name="Okafor"), specialty=specialty)

    desk.goto(f"{live_server.url}/emails/")
    message = desk.locator("article.message", has_text="Reassignment offer")
    expect(message.frame_locator("iframe").get_by_role("link", name="Accept")).to_be_visible()
    screenshot(desk, "outbox")
    with context.expect_page() as opened:
        message.frame_locator("iframe").get_by_role("link", name="Decline").click()
    patient_page = opened.value
    expect(patient_page.get_by_role("heading", name="Decline your new appointment")).to_be_visible()
    assert "/appointments/decline/" in patient_page.url
    screenshot(patient_page, "patient-decline")
    patient_page.get_by_role("button", name="Decline this appointment").click()
    expect(patient_page.get_by_role("heading", name="Done")).to_be_visible()
    expect(patient_page.locator(".message")).to_contain_text("You declined the new appointment")
    screenshot(patient_page, "patient-declined")

    desk.goto(f"{live_server.url}/schedule/?date={day:%Y-%m-%d}")
    column = desk.locator(".provider-column", has_text="Dr. Vera Rossi")
    expect(column.locator(".source-backfill")).to_contain_text("Grace Okafor")
    expect(column).not_to_contain_text("Isla Brown")
    screenshot(desk, "schedule-after-decline")


def test_it_draws_the_dashboard_chart(desk, live_server):
    from playwright.sync_api import expect

    desk.goto(f"{live_server.url}/dashboard/")

    expect(desk.locator(".chart-wide svg").first).to_be_visible()
    expect(desk.locator("#fill-rate")).to_have_text("0.0%")
    screenshot(desk, "dashboard")


def test_the_content_security_policy_blocks_an_injected_script_and_lets_the_pages_work(desk, live_server):
    from playwright.sync_api import expect

    AppointmentFactory()
    violations = []
    desk.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    desk.goto(f"{live_server.url}/schedule/")
    # As if a stored value reached the page unescaped: its inline handler must not run.
    desk.evaluate(
        """document.body.insertAdjacentHTML('beforeend', '<img src="/missing.png" onerror="window.pwned = 1">')"""
    )
    desk.wait_for_timeout(500)
    assert desk.evaluate("window.pwned") is None
    assert violations, "the browser reported no blocked inline script"
    violations.clear()
    # The pages' own scripts still run: the admin's, and the API docs' (Swagger UI, served apart).
    desk.goto(f"{live_server.url}/admin/scheduling/appointment/")
    expect(desk.locator("#action-toggle")).to_be_visible()
    desk.goto(f"{live_server.url}/api/docs/")
    expect(desk.locator(".swagger-ui .info .title")).to_contain_text("Backfill API")
    assert violations == []


def test_a_freed_slots_page_says_why_each_waiting_patient_was_or_was_not_chosen(desk, live_server):
    from playwright.sync_api import expect

    from backfill.models import FreedSlot

    provider = ProviderFactory(name="Dr. Mei Chen")
    day = timezone.localdate() + timedelta(days=3)
    appointment = AppointmentFactory(provider=provider, start=at(day, 10), end=at(day, 10) + timedelta(minutes=45))
    WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Hugo", last_name="Nguyen"), specialty=provider.specialty
    )
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Ravi", last_name="Shah", no_show_risk=0.7), specialty=provider.specialty
    )
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Lena", last_name="Ortiz", no_show_risk=0.56),
        specialty=provider.specialty,
        time_windows=["16:00-18:00"],
    )
    appointment.cancel("patient called in sick")  # committed: the in-process queue backfills it
    slot = FreedSlot.objects.get(appointment=appointment)

    desk.goto(f"{live_server.url}/admin/backfill/freedslot/{slot.pk}/change/")

    why = desk.locator("#why-this-patient")
    expect(why.locator("tr", has_text="Hugo Nguyen")).to_contain_text("Booked")
    expect(why.locator("tr", has_text="Ravi Shah")).to_contain_text("Fits, ranked 2")
    expect(why.locator("tr", has_text="Ravi Shah")).to_contain_text("no-show risk 0.70: +30")
    lena = why.locator("tr", has_text="Lena Ortiz")
    expect(lena).to_contain_text("Left out")
    expect(lena).to_contain_text("No-show risk 0.56 is under the minimum 0.6")
    expect(lena).to_contain_text("Only 16:00–18:00")
    screenshot(desk, "freed-slot-why-this-patient")


def test_the_book_by_hand_page_explains_each_choice_and_books_the_one_chosen(desk, live_server):
    from playwright.sync_api import expect

    from backfill.models import FreedSlot

    provider = ProviderFactory(name="Dr. Mei Chen")
    day = timezone.localdate() + timedelta(days=3)
    appointment = AppointmentFactory(provider=provider, start=at(day, 10), end=at(day, 10) + timedelta(minutes=45))
    appointment.cancel("patient called in sick")  # nobody waits yet: the slot stays open, no match
    WaitlistEntryFactory(
        patient=PatientFactory(first_name="Lena", last_name="Ortiz", no_show_risk=0.78),
        specialty=provider.specialty,
        time_windows=["12:00-17:00"],
    )
    slot = FreedSlot.objects.get(appointment=appointment)

    desk.goto(f"{live_server.url}/admin/backfill/freedslot/")
    desk.check(f"input[name=_selected_action][value='{slot.pk}']")
    desk.select_option("select[name=action]", "book_waitlist_entry_by_hand")
    desk.click("button[title='Run the selected action']")

    lena = desk.locator("table.explanation tr", has_text="Lena Ortiz")
    expect(lena).to_contain_text("Left out")
    expect(lena).to_contain_text("Only 12:00–17:00")
    screenshot(desk, "book-by-hand-why")
    lena.locator("input[type=radio]").check()
    desk.click("input[name=confirm]")
    expect(desk.locator(".messagelist")).to_contain_text("Lena Ortiz is booked into")
    assert FreedSlot.objects.get(pk=slot.pk).status == FreedSlot.Status.MANUAL
