"""Webhook endpoints belong to the account that made them: an integrator sees and changes
only its own; a clinic manager sees every one."""

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client
from rest_framework.authtoken.models import Token

from clinic import webhooks
from clinic.models import Event, WebhookDelivery, WebhookEndpoint
from clinic.webhooks import new_secret

pytestmark = pytest.mark.django_db


def api_client(name, role):
    user = User.objects.create_user(name, email=f"{name}@example.org")
    user.groups.add(Group.objects.get(name=role))
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


def create(client, url):
    response = client.post("/api/webhook-endpoints/", {"url": url, "events": ["*"]}, content_type="application/json")
    assert response.status_code == 201
    return response.json()


@pytest.fixture
def two_integrators():
    return api_client("ehr-one", "Integrator"), api_client("ehr-two", "Integrator")


def test_an_endpoint_names_the_account_that_made_it(two_integrators):
    one, _ = two_integrators
    created = create(one, "https://93.184.215.14/one")
    assert created["owner"] == "ehr-one"
    assert WebhookEndpoint.objects.get().owner.username == "ehr-one"


def test_an_integrator_lists_only_its_own_endpoints(two_integrators):
    one, two = two_integrators
    create(one, "https://93.184.215.14/one")
    create(two, "https://93.184.215.14/two")
    assert [item["url"] for item in one.get("/api/webhook-endpoints/").json()["results"]] == [
        "https://93.184.215.14/one"
    ]


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_an_integrator_cannot_read_or_change_anothers_endpoint(two_integrators, method):
    one, two = two_integrators
    theirs = create(one, "https://93.184.215.14/one")
    response = getattr(two, method)(
        f"/api/webhook-endpoints/{theirs['id']}/",
        {"url": "https://93.184.215.14/mine", "events": ["*"]},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert WebhookEndpoint.objects.get().url == "https://93.184.215.14/one"


def test_an_integrator_sees_only_its_own_deliveries(two_integrators):
    one, two = two_integrators
    theirs = create(one, "https://93.184.215.14/one")
    event = Event.objects.create(type="appointment.cancelled", subject="appointment:1", payload={})
    delivery = WebhookDelivery.objects.create(endpoint_id=theirs["id"], event=event, status="failed")
    assert two.get("/api/webhook-deliveries/").json()["results"] == []
    assert two.post(f"/api/webhook-deliveries/{delivery.pk}/resend/").status_code == 404
    assert [item["id"] for item in one.get("/api/webhook-deliveries/").json()["results"]] == [delivery.pk]


def test_a_clinic_manager_sees_and_changes_every_endpoint(two_integrators):
    one, two = two_integrators
    create(one, "https://93.184.215.14/one")
    theirs = create(two, "https://93.184.215.14/two")
    manager = api_client("manager", "Clinic manager")
    assert len(manager.get("/api/webhook-endpoints/").json()["results"]) == 2
    response = manager.patch(
        f"/api/webhook-endpoints/{theirs['id']}/", {"active": False}, content_type="application/json"
    )
    assert response.status_code == 200
    assert not WebhookEndpoint.objects.get(pk=theirs["id"]).active


def test_the_owner_is_told_too_when_its_endpoint_is_disabled(two_integrators):
    one, _ = two_integrators
    created = create(one, "https://93.184.215.14/one")
    WebhookEndpoint.objects.filter(pk=created["id"]).update(active=False, disabled_reason="Every delivery failed.")
    webhooks.tell_managers(created["id"])
    assert [message.to for message in mail.outbox] == [["ehr-one@example.org"]]


def test_the_admin_lists_only_what_the_account_sees(client):
    desk = User.objects.create_user("admin-integrator", is_staff=True)
    desk.groups.add(Group.objects.get(name="Integrator"))
    WebhookEndpoint.objects.create(url="https://93.184.215.14/other", events=["*"], secret=new_secret())
    mine = WebhookEndpoint.objects.create(
        url="https://93.184.215.14/mine", events=["*"], secret=new_secret(), owner=desk
    )
    client.force_login(desk)
    page = client.get("/admin/clinic/webhookendpoint/").content.decode()
    assert mine.url in page
    assert "https://93.184.215.14/other" not in page


def test_filtering_deliveries_by_anothers_endpoint_is_as_by_one_that_does_not_exist(two_integrators):
    one, two = two_integrators
    theirs = create(one, "https://93.184.215.14/one")
    answers = [two.get(f"/api/webhook-deliveries/?endpoint={pk}") for pk in (theirs["id"], theirs["id"] + 100)]
    assert [answer.status_code for answer in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()
    assert one.get(f"/api/webhook-deliveries/?endpoint={theirs['id']}").status_code == 200
