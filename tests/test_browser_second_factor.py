"""A Clinic manager's first login in a real browser: the password leads to enrolment and
nowhere else; after adding an authenticator app (the code computed here, as the app would)
the dashboard opens."""

from base64 import b32decode

import pytest
from django.contrib.auth.models import Group, User
from django_otp.oath import totp

from tests.test_browser import CHROMIUM, browser, context  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.django_db(transaction=True),
]


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
