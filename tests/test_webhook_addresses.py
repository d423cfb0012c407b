"""Webhook URLs never reach inside: refused when saved, and again before each connection."""

import ipaddress
import re
import socket

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token

from clinic import addresses
from clinic.addresses import AddressRefused, check_url, is_internal
from clinic.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from clinic.webhooks import new_secret
from scheduling.factories import AppointmentFactory
from tests.webhook_receiver import receiving

INTERNAL = (
    "resolves to an internal address (loopback, private, link-local or reserved); only public addresses are allowed."
)
LITERAL = "is an internal address (loopback, private, link-local or reserved); only public addresses are allowed."
INTERNAL_NETWORKS = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


def public_resolver(name, port, *args, **kwargs):
    """A resolver that answers a public address for any name (tests never reach the network)."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]


def resolving_to(address):
    def resolve(name, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


@pytest.fixture
def integrator(client):
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=integrator_account('ehr')).key}"
    return client


def integrator_account(name):
    user = User.objects.create_user(name)
    user.groups.add(Group.objects.get(name="Integrator"))
    return user


# --- The check itself, over the forms an address can take ------------------------------

internal_ipv4 = st.sampled_from(INTERNAL_NETWORKS).flatmap(
    lambda network: st.integers(
        int(ipaddress.ip_network(network).network_address), int(ipaddress.ip_network(network).broadcast_address)
    ).map(ipaddress.IPv4Address)
)
any_ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@given(internal_ipv4)
def test_every_internal_ipv4_address_is_refused_in_every_spelling(ip):
    number = int(ip)
    spellings = [
        str(ip),  # dotted
        str(number),  # decimal
        hex(number),  # hex
        "0" + oct(number)[2:],  # octal
        f"[::ffff:{ip}]",  # IPv4-mapped IPv6
        f"[::{ip}]",  # IPv4-compatible IPv6
        f"[{ipaddress.IPv6Address((0x2002 << 112) | (number << 80))}]",  # 6to4
    ]
    for host in spellings:
        with pytest.raises(AddressRefused):
            check_url(f"http://{host}:8080/hooks")


@given(any_ipv4)
def test_an_ipv4_address_wrapped_in_ipv6_is_judged_as_itself(ip):
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    assert is_internal(mapped) == is_internal(ip)
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80))
    assert is_internal(sixtofour) == is_internal(ip)


@given(any_ipv4)
def test_a_public_ipv4_address_is_let_through_and_an_internal_one_is_not(ip):
    if ip.is_global and not ip.is_multicast and not ip.is_reserved:
        assert check_url(f"https://{ip}/hooks").hostname == str(ip)
    else:
        with pytest.raises(AddressRefused):
            check_url(f"https://{ip}/hooks")


@given(
    st.sampled_from(
        ["::1/128", "::/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32", "64:ff9b::/96"]
    ).flatmap(
        lambda network: st.integers(
            int(ipaddress.ip_network(network).network_address),
            int(ipaddress.ip_network(network).broadcast_address),
        ).map(ipaddress.IPv6Address)
    )
)
def test_every_internal_ipv6_address_is_refused(ip):
    with pytest.raises(AddressRefused, match="is an internal address"):
        check_url(f"https://[{ip}]/hooks")


@given(st.integers(0x2600 << 112, (0x2610 << 112) - 1).map(ipaddress.IPv6Address))
def test_a_global_ipv6_address_is_let_through(ip):
    assert check_url(f"https://[{ip}]:8443/hooks").port == 8443


@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://ehr.example/hooks", "Use an http or https URL."),
        ("https://user:pass@ehr.example/hooks", "Leave credentials out of the URL"),
        ("https://token@ehr.example/hooks", "Leave credentials out of the URL"),
        ("https://localhost/hooks", "localhost names an internal host"),
        ("https://metadata.google.internal/computeMetadata", "metadata.google.internal names an internal host"),
        ("https://printer.local/", "printer.local names an internal host"),
    ],
)
def test_urls_the_server_must_not_call(url, reason):
    with pytest.raises(AddressRefused, match=reason):
        check_url(url)


def test_a_name_with_one_internal_address_among_public_ones_is_refused(monkeypatch):
    def two_records(name, port, *args, **kwargs):
        return public_resolver(name, port) + resolving_to("10.1.2.3")(name, port)

    monkeypatch.setattr(addresses.socket, "getaddrinfo", two_records)
    with pytest.raises(AddressRefused, match=re.escape(f"ehr.example {INTERNAL}")):
        check_url("https://ehr.example/hooks")


def test_the_demo_setting_lets_loopback_through():
    assert check_url("http://127.0.0.1:8000/hooks", allow_private=True).port == 8000


# --- Creating and changing an endpoint ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, message",
    [
        ("http://127.0.0.1:6379/", f"127.0.0.1 {LITERAL}"),
        ("http://localhost:8000/", "localhost names an internal host; only public addresses are allowed."),
        ("http://[::1]:8000/", f"::1 {LITERAL}"),
        ("http://0.0.0.0:8000/", f"0.0.0.0 {LITERAL}"),
        ("http://[::ffff:127.0.0.1]:8000/", f"::ffff:127.0.0.1 {LITERAL}"),
        ("http://169.254.169.254/latest/meta-data/", f"169.254.169.254 {LITERAL}"),
        ("http://10.0.0.1/", f"10.0.0.1 {LITERAL}"),
        (
            "http://metadata.google.internal/",
            "metadata.google.internal names an internal host; only public addresses are allowed.",
        ),
        (
            "https://ehr:secret@ehr.example/hooks",
            "Leave credentials out of the URL; the receiver checks each request's signature instead.",
        ),
    ],
)
def test_the_api_refuses_an_endpoint_that_reaches_inside(integrator, url, message):
    response = integrator.post(
        "/api/webhook-endpoints/", {"url": url, "events": ["*"]}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"url": [message]}
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_the_api_refuses_a_name_that_resolves_inside(integrator, monkeypatch):
    monkeypatch.setattr(addresses.socket, "getaddrinfo", resolving_to("192.168.1.20"))
    response = integrator.post(
        "/api/webhook-endpoints/",
        {"url": "https://ehr.example/hooks", "events": ["*"]},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {"url": [f"ehr.example {INTERNAL}"]}


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "patch"])
def test_the_api_refuses_changing_an_endpoint_to_reach_inside(integrator, method):
    created = integrator.post(
        "/api/webhook-endpoints/",
        {"url": "https://93.184.215.14/hooks", "events": ["*"]},
        content_type="application/json",
    )
    endpoint_url = f"/api/webhook-endpoints/{created.json()['id']}/"
    response = getattr(integrator, method)(
        endpoint_url, {"url": "http://10.0.0.1/", "events": ["*"]}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"url": [f"10.0.0.1 {LITERAL}"]}
    assert WebhookEndpoint.objects.get().url == "https://93.184.215.14/hooks"


@pytest.mark.django_db
def test_the_admin_form_refuses_an_internal_url(staff_client):
    response = staff_client.post(
        reverse("admin:clinic_webhookendpoint_add"),
        {"url": "http://169.254.169.254/", "events": '["*"]', "active": "on", "description": ""},
    )
    assert response.status_code == 200
    assert f"169.254.169.254 {LITERAL}" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


# --- Delivering ---------------------------------------------------------------------------


def cancel_with_deliveries(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        AppointmentFactory().cancel("sick", by="frontdesk")


@pytest.mark.django_db
def test_a_delivery_to_an_internal_address_is_refused_and_says_only_that(django_capture_on_commit_callbacks):
    with receiving() as receiver:
        # Saved before the rule (or with the demo setting on), then sent without it.
        WebhookEndpoint.objects.create(url=receiver.url, events=["appointment.cancelled"], secret=new_secret())
        cancel_with_deliveries(django_capture_on_commit_callbacks)
    assert receiver.received == []
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.status_code, attempt.error) == (None, "refused: internal address")
    assert WebhookDelivery.objects.get().status == "pending"


@pytest.mark.django_db
def test_a_name_that_moved_inside_since_it_was_saved_is_refused(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(addresses.socket, "getaddrinfo", public_resolver)
    WebhookEndpoint.objects.create(url="https://ehr.example/hooks", events=["*"], secret=new_secret())
    monkeypatch.setattr(addresses.socket, "getaddrinfo", resolving_to("127.0.0.1"))  # DNS rebinding
    cancel_with_deliveries(django_capture_on_commit_callbacks)
    assert set(DeliveryAttempt.objects.values_list("error", flat=True)) == {"refused: internal address"}


@pytest.mark.django_db
def test_the_connection_goes_to_the_address_checked_with_the_name_in_host(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    looked_up = []

    def resolver(name, port, *args, **kwargs):
        looked_up.append(name)
        return resolving_to("127.0.0.1")(name, port)

    monkeypatch.setattr(addresses.socket, "getaddrinfo", resolver)
    with receiving() as receiver:
        WebhookEndpoint.objects.create(
            url=f"http://ehr.example:{receiver.port}/hooks", events=["appointment.cancelled"], secret=new_secret()
        )
        looked_up.clear()
        cancel_with_deliveries(django_capture_on_commit_callbacks)
    assert [headers["host"] for headers, _ in receiver.received] == [f"ehr.example:{receiver.port}"]
    assert looked_up == ["ehr.example"]  # resolved once, by the check, and connected to what it found


@pytest.mark.django_db
def test_a_redirect_is_not_followed_and_the_answer_is_not_kept(settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with receiving(answers=[302]) as receiver:
        WebhookEndpoint.objects.create(url=receiver.url, events=["appointment.cancelled"], secret=new_secret())
        cancel_with_deliveries(django_capture_on_commit_callbacks)
    assert len(receiver.received) == 1
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.status_code, attempt.error) == (302, "")
    assert WebhookDelivery.objects.get().status == "pending"  # a 3xx is a failed delivery, retried


@pytest.mark.django_db
def test_the_delivery_log_in_the_api_has_no_answer_from_the_receiver(
    integrator, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with receiving(answers=[500]) as receiver:
        WebhookEndpoint.objects.create(
            url=receiver.url, events=["appointment.cancelled"], secret=new_secret(), owner=User.objects.get()
        )
        cancel_with_deliveries(django_capture_on_commit_callbacks)
    [attempt] = integrator.get("/api/webhook-deliveries/").json()["results"][0]["attempt_log"]
    assert set(attempt) == {"attempted_at", "status_code", "error", "duration_ms"}
    assert (attempt["status_code"], attempt["error"]) == (500, "")
