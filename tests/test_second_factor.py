"""A second factor for staff: Clinic managers and Integrators (MFA_REQUIRED_ROLES) reach only
enrolment until they add an authenticator app, and confirm a code at every later login."""

import re

import pytest
from django.contrib.auth.models import Group, User
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.authtoken.models import Token

from audit.models import AuditEvent
from clinic.models import ApiToken

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-pass-phrase"


@pytest.fixture(autouse=True)
def required(settings):
    settings.MFA_REQUIRED_ROLES = ["Clinic manager", "Integrator"]


def account(role, username="morgan"):
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def log_in(client, username="morgan"):
    return client.post("/accounts/login/", {"username": username, "password": PASSWORD, "next": "/dashboard/"})


def code_for(device):
    return f"{totp(device.bin_key):06d}"


def enrol(client):
    client.get("/accounts/two-factor/enrol/")
    device = TOTPDevice.objects.get(confirmed=False)
    return client.post("/accounts/two-factor/enrol/", {"code": code_for(device), "next": "/dashboard/"}), device


@pytest.mark.parametrize("path", ["/dashboard/", "/schedule/", "/admin/", "/admin/clinic/patient/", "/messages/"])
def test_a_manager_with_a_password_only_reaches_enrolment(client, roles, path):
    account("Clinic manager")
    log_in(client)

    response = client.get(path, follow=True)

    assert response.redirect_chain[-1][0].startswith("/accounts/two-factor/enrol/")
    assert "Add a second factor" in response.text


def test_enrolling_an_app_opens_the_dashboard_and_shows_recovery_codes_once(client, roles):
    account("Clinic manager")
    log_in(client)

    response, device = enrol(client)

    device.refresh_from_db()
    assert device.confirmed
    assert response.text.count("<li><code>") == 10
    assert client.get("/dashboard/").status_code == 200


def test_a_wrong_code_adds_nothing(client, roles):
    account("Clinic manager")
    log_in(client)
    client.get("/accounts/two-factor/enrol/")

    response = client.post("/accounts/two-factor/enrol/", {"code": "000000"})

    assert "That code is not right" in response.text
    assert not TOTPDevice.objects.filter(confirmed=True).exists()
    assert client.get("/dashboard/").status_code == 302


def test_a_later_login_asks_for_a_code_and_a_recovery_code_works_once(client, roles):
    account("Clinic manager")
    log_in(client)
    codes = enrol(client)[0].context["codes"]
    client.post("/accounts/logout/")

    log_in(client)
    assert client.get("/dashboard/", follow=True).redirect_chain[-1][0].startswith("/accounts/two-factor/?")
    client.post("/accounts/two-factor/", {"code": codes[0], "next": "/dashboard/"})
    assert client.get("/dashboard/").status_code == 200

    client.post("/accounts/logout/")
    log_in(client)
    response = client.post("/accounts/two-factor/", {"code": codes[0]})
    assert "That code is not right, or has been used" in response.text
    assert client.get("/dashboard/").status_code == 302


def test_a_password_alone_cannot_enrol_a_second_app(client, roles):
    account("Clinic manager")
    log_in(client)
    enrol(client)
    client.post("/accounts/logout/")
    log_in(client)

    response = client.get("/accounts/two-factor/enrol/")

    assert response.status_code == 302
    assert response.url.startswith("/accounts/two-factor/?")
    assert TOTPDevice.objects.count() == 1


def test_the_front_desk_is_not_asked(client, roles):
    account("Front desk", "dana")
    log_in(client, "dana")

    assert client.get("/schedule/").status_code == 200


def test_api_tokens_are_not_asked(client, roles):
    token = Token.objects.create(user=account("Integrator", "ehr-sync"))

    response = client.get("/api/patients/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 200


def test_an_unconfirmed_session_gets_403_from_the_api(client, roles):
    account("Integrator", "ehr-sync")
    log_in(client, "ehr-sync")

    response = client.get("/api/patients/")

    assert response.status_code == 403
    assert "second factor" in response.json()["detail"]


def test_a_manager_issues_a_named_token_sees_its_last_use_and_revokes_it(client, roles, settings):
    settings.MFA_REQUIRED_ROLES = []
    integrator = account("Integrator", "ehr-sync")
    client.force_login(account("Clinic manager"))

    response = client.post("/admin/clinic/apitoken/add/", {"name": "EHR sync", "user": integrator.pk}, follow=True)
    key = re.search(r"shown only now: <code>(bf_[0-9a-f]{40})</code>", response.text).group(1)
    assert client.get("/api/patients/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    token = ApiToken.objects.get(name="EHR sync")
    assert token.last_used_at is not None
    assert "EHR sync" in client.get("/admin/clinic/apitoken/").text

    client.post(f"/admin/clinic/apitoken/{token.pk}/delete/", {"post": "yes"})

    assert client.get("/api/patients/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401
    revoked = AuditEvent.objects.get(object_type="API token", action="delete")
    assert (revoked.actor, revoked.changes["name"]) == ("morgan", ["EHR sync", None])


def test_the_front_desk_cannot_see_the_tokens(client, roles, settings):
    settings.MFA_REQUIRED_ROLES = []
    client.force_login(account("Front desk", "dana"))

    assert client.get("/admin/clinic/apitoken/").status_code == 403
