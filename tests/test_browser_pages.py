"""Every staff and patient page in Chromium at a desktop's 1400 px and a phone's 390 px:
nothing wider than the screen where nothing should be, no serious or critical
axe-core violation, the actions reachable by keyboard, and a screenshot of each.

Screenshots go to test-artifacts/screenshots/; with BACKFILL_DOC_SCREENSHOTS=1 the tour's
go to docs/screenshots/, which the README shows.
"""

import os
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.links import make_token
from scheduling.messages import queue_email
from scheduling.models import Appointment
from tests.test_browser import BROWSER_TESTS, CHROMIUM_ARGS, browser  # noqa: F401 - the shared browser fixture
from waitlist.factories import WaitlistEntryFactory

ROOT = Path(__file__).resolve().parent.parent
DOCS = os.environ.get("BACKFILL_DOC_SCREENSHOTS") == "1"
SCREENSHOTS = ROOT / ("docs" if DOCS else "test-artifacts") / "screenshots"
DESKTOP, PHONE = {"width": 1400, "height": 900}, {"width": 390, "height": 844}
BLOCKING = ("serious", "critical")

pytestmark = [*BROWSER_TESTS, pytest.mark.usefixtures("roles")]  # made again after earlier flushes (tests/conftest.py)


def at(day, hour):
    return timezone.make_aware(datetime.combine(day, time(hour)))


@pytest.fixture
def clinic(django_capture_on_commit_callbacks):
    """Downtown with 8 providers on a busy day, one slot backfilled; Northside beside it."""
    day = timezone.localdate() + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    downtown = LocationFactory(name="Downtown", address="120 Main St, Springfield", phone="(555) 010-2000")
    orthopedic = SpecialtyFactory(name="Orthopedic PT")
    providers = [
        ProviderFactory(name=f"Dr. {name}", location=downtown, specialty=orthopedic if i < 2 else SpecialtyFactory())
        for i, name in enumerate(
            [
                "Alice Abbott",
                "Bruno Bishop",
                "Carmen Castillo",
                "Daniel Dawson",
                "Esther Ellison",
                "Felix Fontaine",
                "Gloria Gallagher",
                "Henry Holloway",
            ]
        )
    ]
    ProviderFactory(name="Dr. Irene Iverson", location=LocationFactory(name="Northside"))
    for index, provider in enumerate(providers):
        for hour in (8, 10, 13, 15):
            AppointmentFactory(
                provider=provider,
                start=at(day, hour),
                end=at(day, hour) + timedelta(minutes=45),
                patient=PatientFactory(first_name=f"P{index}{hour}", last_name="Visit"),
            )
    freed = AppointmentFactory(
        provider=providers[-1],
        start=at(day, 16),
        end=at(day, 16) + timedelta(minutes=45),
        patient=PatientFactory(first_name="Chloe", last_name="Khan"),
    )
    WaitlistEntryFactory(
        patient=HighRiskPatientFactory(first_name="Hugo", last_name="Nguyen"), specialty=providers[-1].specialty
    )
    with django_capture_on_commit_callbacks(execute=True):
        freed.cancel("patient called in sick")
    booked = Appointment.objects.get(patient__last_name="Nguyen")
    return {"day": day, "location": downtown, "booked": booked, "freed": freed}


def open_as_desk(browser, live_server, viewport):  # noqa: F811 - the fixture imported above
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "frontdesk")
    page.fill("#id_password", "frontdesk-pass")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page="schedule" not in name)


def page_width_overflow(page):
    """How many pixels the page is wider than the screen (0: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def blocking_violations(page):
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in BLOCKING
    ]


def too_wide(page):
    """What sticks out past the screen's right edge (inside the grid, scrolling is expected)."""
    return page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5
                  && !e.closest('.day-grid, .panel, .waitlist-panel, .table-scroll'))
        .slice(0, 5).map(e => `${e.tagName}.${e.className}`)""")


def check(page, name):
    assert page_width_overflow(page) <= 0, f"{name} is wider than the screen: {too_wide(page)}"
    assert blocking_violations(page) == [], name
    screenshot(page, name)


def test_the_readme_tour(browser, live_server, settings):  # noqa: F811
    """The five-minute tour on the demo clinic, as the README tells it; its screenshots are
    the README's (docs/screenshots/tour-*.png with BACKFILL_DOC_SCREENSHOTS=1)."""
    import io
    import re

    from django.core.management import call_command
    from playwright.sync_api import expect

    from backfill.models import FreedSlot
    from scheduling.models import ProviderUnavailability

    settings.SITE_URL = live_server.url  # the links in the stored emails open this server
    logins = io.StringIO()
    call_command("seed_demo", stdout=logins)
    call_command("demo_scenario", "provider-sick", "--wait", "5", stdout=io.StringIO())
    password = re.search(r"frontdesk / (\S+)", logins.getvalue()).group(1)
    absence = ProviderUnavailability.objects.get(reason="out sick")
    day, location = absence.start_date, absence.provider.location
    declined = Appointment.objects.get(cancel_reason="declined_reassignment", start__date=day)
    backfilled = FreedSlot.objects.get(appointment=declined).filled_by

    page = browser.new_context(viewport=DESKTOP).new_page()
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "frontdesk")
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.goto(f"{live_server.url}/schedule/?date={day:%Y-%m-%d}&location={location.pk}")
    card = page.locator(".source-backfill", has_text=str(backfilled.patient))
    expect(card).to_be_visible()
    expect(page.locator(".provider-column.away")).to_have_count(1)
    page.evaluate("""() => { const grid = document.querySelector('.day-grid');
        const card = grid.querySelector('.source-backfill');
        grid.scrollTop += card.getBoundingClientRect().top - grid.getBoundingClientRect().top - 200; }""")
    check(page, "tour-1-schedule")

    card.click()
    expect(page.get_by_role("heading", name="Booked from the waitlist")).to_be_visible()
    page.goto(f"{live_server.url}/schedule/appointments/{declined.pk}/")
    expect(page.get_by_text(f"{backfilled.patient} was chosen")).to_be_visible()
    check(page, "tour-2-why-this-patient")

    page.goto(f"{live_server.url}/emails/?kind=reassignment_offer")
    expect(page.locator("article.message", has_text="has moved to").first).to_be_visible()
    check(page, "tour-3-outbox")

    page.context.close()

    page = browser.new_context(viewport=DESKTOP).new_page()  # the dashboard is the clinic manager's
    page.goto(f"{live_server.url}/accounts/login/?next=/dashboard/")
    page.fill("#id_username", "manager")
    page.fill("#id_password", re.search(r"manager / (\S+)", logins.getvalue()).group(1))
    page.click("button[type=submit]")
    expect(page.locator("#fill-rate")).not_to_have_text("0.0%")
    expect(page.locator("#no-show-auc")).to_be_visible()  # the demo trains the no-show model as it is built
    check(page, "tour-5-dashboard")
    page.context.close()

    still_offered = Appointment.objects.filter(status=Appointment.Status.OFFERED, start__date=day).first()
    email = OutboundEmail.objects.get(appointment=still_offered, kind=OutboundEmail.Kind.REASSIGNMENT_OFFER)
    phone = browser.new_context(viewport=PHONE).new_page()
    phone.set_content(email.html_body)
    check(phone, "tour-4-offer-email-phone")
    phone.get_by_role("link", name="Decline").click()
    expect(phone.get_by_role("heading", name="Decline your new appointment")).to_be_visible()
    check(phone, "tour-4-decline-page-phone")
    phone.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1400", "390"])
def test_the_staff_pages_fit_and_pass_axe(browser, live_server, staff_user, clinic, viewport):  # noqa: F811
    from playwright.sync_api import expect

    size = viewport["width"]
    page = open_as_desk(browser, live_server, viewport)
    day, booked = clinic["day"], clinic["booked"]

    page.goto(f"{live_server.url}/schedule/?date={day:%Y-%m-%d}&location={clinic['location'].pk}")
    card = page.locator(".source-backfill", has_text="Hugo Nguyen")
    expect(card).to_be_visible()
    check(page, f"schedule-{size}")
    if size == 1400:
        # All 8 columns fit: the backfilled card is on screen without scrolling sideways.
        assert page.evaluate(
            "document.querySelector('.day-grid').scrollWidth <= document.querySelector('.day-grid').clientWidth"
        )
        # As a front desk scrolls: the page to the grid, then the grid down to the card.
        page.evaluate("""() => { const grid = document.querySelector('.day-grid'); grid.scrollIntoView();
            const card = grid.querySelector('.source-backfill');
            grid.scrollTop += card.getBoundingClientRect().top - grid.getBoundingClientRect().top - 120; }""")
        assert page.evaluate("document.querySelector('.day-grid').scrollTop") > 0
        box = card.bounding_box()
        assert 0 <= box["x"] and box["x"] + box["width"] <= size
        # Scrolled down to it, the hours and the provider names are still in view.
        expect(page.locator(".column-head", has_text="Dr. Henry Holloway")).to_be_in_viewport()
        expect(page.locator(".time-axis .hour", has_text="16:00")).to_be_in_viewport()

    page.goto(f"{live_server.url}/schedule/appointments/{booked.pk}/")
    expect(page.get_by_role("heading", name="Booked from the waitlist")).to_be_visible()
    check(page, f"appointment-{size}")

    page.goto(f"{live_server.url}/schedule/appointments/{clinic['freed'].pk}/")
    expect(page.get_by_text("Hugo Nguyen was chosen")).to_be_visible()
    check(page, f"freed-slot-{size}")

    page.goto(f"{live_server.url}/emails/")
    check(page, f"outbox-{size}")

    page.goto(f"{live_server.url}/dashboard/")
    check(page, f"dashboard-{size}")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1400", "390"])
def test_the_patient_pages_and_emails_fit_and_pass_axe(browser, live_server, clinic, viewport):  # noqa: F811
    from playwright.sync_api import expect

    size = viewport["width"]
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    booked = clinic["booked"]

    page.goto(f"{live_server.url}/appointments/cancel/{make_token(booked, 'cancel')}/")
    expect(page.get_by_text("120 Main St, Springfield")).to_be_visible()
    expect(page.get_by_role("link", name="(555) 010-2000")).to_be_visible()
    check(page, f"patient-cancel-{size}")

    page.goto(f"{live_server.url}/accounts/login/")
    check(page, f"login-{size}")

    email = OutboundEmail.objects.get(appointment=booked, kind=OutboundEmail.Kind.BACKFILL_CONFIRMATION)
    page.set_content(email.html_body)
    assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('body > div')).fontSize)") >= 16
    check(page, f"email-{size}")
    context.close()


def test_the_front_desk_can_do_it_all_by_keyboard(browser, live_server, staff_user, clinic):  # noqa: F811
    from playwright.sync_api import expect

    page = open_as_desk(browser, live_server, DESKTOP)
    page.goto(f"{live_server.url}/schedule/?date={clinic['day']:%Y-%m-%d}&location={clinic['location'].pk}")
    for _ in range(120):  # Tab through the page until the backfilled card has the focus
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('source-backfill')"):
            break
    else:
        pytest.fail("the backfilled card cannot be reached with Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Booked from the waitlist")).to_be_visible()

    page.get_by_label("Cancel, because").focus()
    page.keyboard.type("patient moved away")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Cancel appointment…"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Cancel Hugo Nguyen's appointment?")).to_be_visible()
    page.get_by_role("button", name="Yes, cancel the appointment").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").first).to_contain_text("Cancelled")
    page.context.close()


def test_a_patient_declines_an_offer_on_a_phone(browser, live_server, clinic, settings):  # noqa: F811
    from playwright.sync_api import expect

    settings.SITE_URL = live_server.url
    specialty = clinic["booked"].provider.specialty
    colleague = ProviderFactory(name="Dr. Julian Jablonski", specialty=specialty, location=clinic["location"])
    start = at(clinic["day"], 11)
    patient = PatientFactory(first_name="Isla", last_name="Brown")
    original = AppointmentFactory(
        provider=clinic["booked"].provider,
        patient=patient,
        start=start,
        end=start + timedelta(minutes=45),
        status=Appointment.Status.CANCELLED,
        cancel_reason="provider_unavailable",
    )
    offer = AppointmentFactory(
        provider=colleague,
        patient=patient,
        start=start,
        end=start + timedelta(minutes=45),
        status=Appointment.Status.OFFERED,
        source=Appointment.Source.REASSIGNMENT,
        replaces=original,
    )
    email = queue_email(OutboundEmail.Kind.REASSIGNMENT_OFFER, offer, original=original)
    page = browser.new_context(viewport=PHONE).new_page()

    page.set_content(email.html_body)
    check(page, "email-offer-390")
    page.get_by_role("link", name="Decline").click()
    expect(page.get_by_role("heading", name="Decline your new appointment")).to_be_visible()
    check(page, "patient-decline-390")
    page.get_by_role("button", name="Decline this appointment").click()
    expect(page.get_by_role("heading", name="Done")).to_be_visible()
    check(page, "patient-declined-390")
    page.context.close()
