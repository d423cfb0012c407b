"""The messages page and the patient's self-service page on a phone (390 px), in chromium."""

import pytest

from clinic import sms
from clinic.factories import PatientFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from tests.test_browser import BROWSER_TESTS, browser, screenshot  # noqa: F401  (the browser fixture)
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry
from waitlist.self_service import link_for

pytestmark = BROWSER_TESTS


@pytest.fixture
def phone(browser):  # noqa: F811
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def fits_the_screen(page):
    return page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_messages_page_shows_a_text_as_a_bubble_on_a_phone(phone, live_server, staff_user, settings):
    from playwright.sync_api import expect

    settings.SITE_URL = live_server.url
    sms.outbox.clear()
    patient = PatientFactory(first_name="Isla", last_name="Brown", preferred_channel="both", sms_consent=True)
    queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, AppointmentFactory(patient=patient))
    phone.goto(f"{live_server.url}/accounts/login/?next=/messages/")
    phone.get_by_label("Username").fill("frontdesk")
    phone.get_by_label("Password").fill("frontdesk-pass")
    phone.get_by_role("button", name="Log in").click()

    bubble = phone.locator("article.message.text .bubble")
    expect(bubble).to_contain_text("you're booked")
    expect(phone.locator("article.message:not(.text) iframe")).to_be_visible()
    assert fits_the_screen(phone)
    screenshot(phone, "messages-phone")

    with phone.expect_navigation():
        bubble.get_by_role("link").click()  # the text's short link leads to the patient's page
    expect(phone.get_by_role("heading", name="Hello Isla")).to_be_visible()


def test_the_patient_changes_their_waitlist_on_a_phone(phone, live_server, settings):
    from playwright.sync_api import expect

    settings.SITE_URL = live_server.url
    entry = WaitlistEntryFactory(patient=PatientFactory(first_name="Maria"), available_days=["mon"])
    phone.goto(link_for(entry.patient))

    expect(phone.get_by_role("heading", name="Hello Maria")).to_be_visible()
    assert fits_the_screen(phone)
    screenshot(phone, "self-service-phone")
    phone.get_by_label("Wed").check()
    phone.get_by_label("Times you can come").fill("08:00-12:00")
    phone.get_by_role("button", name="Save").first.click()
    expect(phone.get_by_role("status")).to_contain_text("Saved your choices")
    entry.refresh_from_db()
    assert entry.available_days == ["mon", "wed"] and entry.time_windows == ["08:00-12:00"]

    phone.get_by_role("button", name="Leave this waitlist").click()
    expect(phone.get_by_role("status")).to_contain_text("You have left the waitlist")
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.REMOVED
    assert fits_the_screen(phone)
