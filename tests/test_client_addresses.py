"""Throttles and the login lockout count the real client: X-Forwarded-For is ignored unless
PROXY_COUNT proxies are trusted, and then exactly that many hops."""

import pytest
from django.contrib.auth.models import Group, User
from django.test import RequestFactory

from clinic.access import client_address
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for

pytestmark = pytest.mark.django_db


def cancel_page():
    return "/" + link_for(AppointmentFactory(), "cancel").split("/", 3)[3]


def request(remote, forwarded=None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **headers)


def test_without_proxies_the_header_is_ignored():
    assert client_address(request("198.51.100.7", "1.2.3.4")) == "198.51.100.7"


@pytest.mark.parametrize(
    "count, forwarded, seen",
    [
        (1, "1.2.3.4, 203.0.113.50", "203.0.113.50"),  # what the client wrote, then what our proxy saw
        (2, "1.2.3.4, 203.0.113.50, 10.0.0.2", "203.0.113.50"),
        (2, "203.0.113.50", "203.0.113.50"),  # fewer hops than proxies: the leftmost
        (1, "", "10.0.0.1"),  # no header: the proxy itself
    ],
)
def test_with_proxies_exactly_that_many_hops_are_trusted(settings, count, forwarded, seen):
    settings.PROXY_COUNT = count
    assert client_address(request("10.0.0.1", forwarded)) == seen


def test_a_patient_link_client_at_429_stays_there_whatever_it_forwards(client, settings):
    settings.PATIENT_LINK_THROTTLE_RATE = "2/minute"
    url = cancel_page()
    statuses = [client.get(url, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(4)]
    assert statuses == [200, 200, 429, 429]


def test_behind_one_proxy_the_hop_it_saw_is_counted(client, settings):
    settings.PATIENT_LINK_THROTTLE_RATE = "2/minute"
    settings.PROXY_COUNT = 1
    url = cancel_page()
    # The client writes its own X-Forwarded-For; the proxy appends the address it saw.
    spoofed = [client.get(url, HTTP_X_FORWARDED_FOR=f"1.1.1.{n}, 203.0.113.9").status_code for n in range(3)]
    assert spoofed == [200, 200, 429]
    assert client.get(url, HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 200  # another client


def test_the_login_lockout_ignores_the_header_without_proxies(client, settings):
    User.objects.create_user("desk", password="the-right-pass-phrase").groups.add(Group.objects.get(name="Front desk"))
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/accounts/login/",
            {"username": f"guess{attempt}", "password": "wrong"},
            HTTP_X_FORWARDED_FOR=f"203.0.113.{attempt}",
        )
    response = client.post(
        "/accounts/login/", {"username": "desk", "password": "the-right-pass-phrase"}, HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    assert response.status_code == 429


def test_behind_a_proxy_the_lockout_counts_each_client_apart(client, settings):
    settings.PROXY_COUNT = 1
    User.objects.create_user("desk", password="the-right-pass-phrase").groups.add(Group.objects.get(name="Front desk"))
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/accounts/login/",
            {"username": f"guess{attempt}", "password": "wrong"},
            HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.66",
        )
    locked = client.post(
        "/accounts/login/",
        {"username": f"guess{attempt}", "password": "wrong"},
        HTTP_X_FORWARDED_FOR="203.0.113.66",
    )
    assert locked.status_code == 429
    # Another client behind the same proxy (same REMOTE_ADDR) is not locked out with it.
    response = client.post(
        "/accounts/login/",
        {"username": "desk", "password": "the-right-pass-phrase"},
        HTTP_X_FORWARDED_FOR="198.51.100.4",
    )
    assert response.status_code == 302
