"""Abuse limits (docs/reference.md, Production): failed logins lock out, the API throttles per token."""

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db

LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def desk(db):
    user = User.objects.create_user("desk", password="the-right-pass-phrase", is_staff=True)
    user.groups.add(Group.objects.get(name="Front desk"))
    return user


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_failed_logins_lock_the_account_out_even_with_the_right_password(client, desk, settings, url):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(url, {"username": "desk", "password": "wrong"})
    response = client.post(url, {"username": "desk", "password": "the-right-pass-phrase"})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session


def test_a_locked_client_is_kept_out_of_other_accounts_too(client, desk, settings):
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": f"guess{attempt}", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "desk", "password": "the-right-pass-phrase"})
    assert response.status_code == 429


def test_a_few_wrong_passwords_still_let_the_right_one_in(client, desk):
    for _ in range(2):
        assert client.post("/accounts/login/", {"username": "desk", "password": "wrong"}).status_code == 200
    response = client.post("/accounts/login/", {"username": "desk", "password": "the-right-pass-phrase"})
    assert response.status_code == 302


def test_the_api_throttles_per_token_with_retry_after(client, settings):
    settings.API_THROTTLE_RATE = "3/minute"
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    token = Token.objects.create(user=user)
    statuses = [client.get("/api/locations/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/locations/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.json()["detail"].startswith("Request was throttled.")
    assert 0 < int(response["Retry-After"]) <= 60
    other = Token.objects.create(user=User.objects.create_user("other-ehr"))
    other.user.groups.add(Group.objects.get(name="Integrator"))
    assert client.get("/api/locations/", HTTP_AUTHORIZATION=f"Token {other.key}").status_code == 200
