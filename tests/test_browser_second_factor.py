"""A Clinic manager's first login in a real browser: the password leads to enrolment and
nowhere else; after adding an authenticator app (the code computed here, as the app would)
or a passkey (Chromium's virtual authenticator, through CDP) the dashboard opens."""

from base64 import b32decode

from django.contrib.auth.models import Group, User
from django_otp.oath import totp
from django_otp_webauthn.models import WebAuthnCredential
from playwright.sync_api import expect

from tests.test_browser import BROWSER_TESTS, browser, context  # noqa: F401 (fixtures)

pytestmark = BROWSER_TESTS


def test_a_manager_without_a_device_reaches_only_enrolment_then_the_dashboard(
    context,  # noqa: F811
    live_server,
    roles,
    settings,
):
    settings.MFA_REQUIRED_ROLES = ["Clinic manager", "Integrator"]
    manager = User.objects.create_user("morgan", password="a-long-pass-phrase", is_staff=True)
    manager.groups.add(Group.objects.get(name="Clinic manager"))
    page = context.new_page()

    page.goto(f"{live_server.url}/dashboard/")
    page.fill("#id_username", "morgan")
    page.fill("#id_password", "a-long-pass-phrase")
    page.click("button[type=submit]")
    page.wait_for_url("**/accounts/two-factor/enrol/**")
    for elsewhere in ["/schedule/", "/admin/", "/dashboard/"]:
        page.goto(f"{live_server.url}{elsewhere}")
        assert "/accounts/two-factor/enrol/" in page.url
        assert page.get_by_role("heading", name="Add a second factor").is_visible()

    key = b32decode(page.get_by_test_id("totp-key").inner_text().replace(" ", ""))
    page.fill("#id_code", f"{totp(key):06d}")
    page.get_by_role("button", name="Add this app").click()
    assert page.get_by_role("heading", name="Your recovery codes").is_visible()
    page.get_by_role("link", name="Continue").click()

    page.wait_for_url(f"{live_server.url}/dashboard/")
    assert page.get_by_role("heading", level=1).first.is_visible()


def test_a_manager_adds_a_passkey_and_logs_in_with_it_later(context, live_server, roles, settings):  # noqa: F811
    settings.MFA_REQUIRED_ROLES = ["Clinic manager", "Integrator"]
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    manager = User.objects.create_user("morgan", password="a-long-pass-phrase", is_staff=True)
    manager.groups.add(Group.objects.get(name="Clinic manager"))
    page = context.new_page()
    # Chromium's own virtual authenticator stands in for a phone or a security key.
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )

    def log_in():
        page.goto(f"{live_server.url}/dashboard/")
        page.fill("#id_username", "morgan")
        page.fill("#id_password", "a-long-pass-phrase")
        page.get_by_role("button", name="Log in").click()

    log_in()
    page.wait_for_url("**/accounts/two-factor/enrol/**")
    page.get_by_role("button", name="Add a passkey").click()
    status = page.locator("#passkey-register-status-message")
    expect(status).not_to_be_empty()
    assert WebAuthnCredential.objects.filter(user=manager, confirmed=True).count() == 1, status.inner_text()
    page.goto(f"{live_server.url}/dashboard/")
    assert page.url == f"{live_server.url}/dashboard/"

    context.clear_cookies()
    log_in()
    page.wait_for_url("**/accounts/two-factor/?**")
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")
