"""Signed event webhooks for integrators (docs/reference.md, Events), against a real receiver on loopback."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.db import transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from rest_framework.authtoken.models import Token
from standardwebhooks.webhooks import Webhook

from clinic import events, webhooks
from clinic.factories import HighRiskPatientFactory, ProviderFactory
from clinic.models import Event, WebhookDelivery, WebhookEndpoint
from clinic.webhooks import new_secret
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from tests.webhook_receiver import Receiver, receiving
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def receivers_on_loopback(settings):
    # The receivers here listen on 127.0.0.1, which webhooks refuse unless told (clinic/addresses.py).
    settings.WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def integrator(client):
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def subscribe(url, events=("*",), owner=None):
    return WebhookEndpoint.objects.create(url=url, events=list(events), secret=new_secret(), owner=owner)


def verified(endpoint, received):
    """Each POST's body, after its signature verified with the standardwebhooks library."""
    return [Webhook(endpoint.secret).verify(body, headers) for headers, body in received]


def make_due():
    WebhookDelivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())


def test_creating_an_endpoint_answers_its_secret_once(integrator):
    response = integrator.post(
        "/api/webhook-endpoints/",
        {"url": "https://ehr.example/hooks", "events": ["*"]},
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response.json()["secret"].startswith("whsec_")
    listed = integrator.get(f"/api/webhook-endpoints/{response.json()['id']}/").json()
    assert "secret" not in listed


def test_an_endpoint_refuses_unknown_event_types(integrator):
    response = integrator.post(
        "/api/webhook-endpoints/",
        {"url": "https://ehr.example/hooks", "events": ["slot.eaten"]},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "events" in response.json()
    assert not WebhookEndpoint.objects.exists()


def test_a_cancellation_reaches_the_receiver_signed_and_in_order(django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    with receiving() as receiver:
        endpoint = subscribe(receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick", by="frontdesk")
        bodies = verified(endpoint, receiver.received)
    types = [body["type"] for body in bodies]
    assert types[0] == "appointment.cancelled"
    assert bodies[0]["data"]["appointment"]["id"] == appointment.pk
    assert bodies[0]["data"]["appointment"]["status"] == "cancelled"
    ids = [headers["webhook-id"] for headers, _ in receiver.received]
    assert ids == sorted(ids, key=lambda webhook_id: int(webhook_id.removeprefix("evt_")))


def test_an_endpoint_gets_only_the_types_it_asked_for(django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    with receiving() as receiver:
        subscribe(receiver.url, events=["appointment.no_show"])
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick", by="frontdesk")
    assert receiver.received == []


def test_a_failing_receiver_gets_each_retry_once_and_ends_delivered(django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    with receiving(answers=[500, 500, 500]) as receiver:
        endpoint = subscribe(receiver.url, events=["appointment.cancelled"])
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick", by="frontdesk")
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert delivery.next_attempt_at - timezone.now() < timedelta(minutes=1)  # the first retry within a minute
        for _ in range(3):
            make_due()
            webhooks.deliver()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 4)
    assert [attempt.status_code for attempt in delivery.attempt_history()] == [200, 500, 500, 500]
    assert len({headers["webhook-id"] for headers, _ in receiver.received}) == 1
    assert len(verified(endpoint, receiver.received)) == 4


def test_a_receiver_that_was_down_gets_everything_once_it_is_back(django_capture_on_commit_callbacks):
    appointments = [AppointmentFactory(), AppointmentFactory()]
    receiver = Receiver().start()
    port = receiver.port
    receiver.stop()  # down: connections are refused
    endpoint = subscribe(f"http://127.0.0.1:{port}/hooks", events=["appointment.cancelled"])
    with django_capture_on_commit_callbacks(execute=True):
        for appointment in appointments:
            appointment.cancel("sick", by="frontdesk")
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"pending"}
    assert WebhookDelivery.objects.first().attempt_log.get().error == "connection refused"
    back = Receiver().start(port=port)
    try:
        make_due()
        assert sweep()["webhook_jobs"] == 1  # the sweep asks for the job; it runs in-process here
    finally:
        back.stop()
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    assert sorted(body["data"]["appointment"]["id"] for body in verified(endpoint, back.received)) == sorted(
        a.pk for a in appointments
    )


def test_a_later_event_of_an_object_waits_for_an_earlier_one(django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(
        start=timezone.now() - timedelta(hours=1), end=timezone.now() - timedelta(minutes=15)
    )
    with receiving(answers=[500]) as receiver:
        endpoint = subscribe(receiver.url)
        with django_capture_on_commit_callbacks(execute=True):
            appointment.confirm()
        with django_capture_on_commit_callbacks(execute=True):
            appointment.mark_no_show()
        assert len(receiver.received) == 1  # the confirmation failed; the no-show waits behind it
        make_due()
        webhooks.deliver()
        types = [body["type"] for body in verified(endpoint, receiver.received)]
    assert types == ["appointment.confirmed", "appointment.confirmed", "appointment.no_show"]


def test_no_event_is_written_for_a_change_that_rolled_back():
    appointment = AppointmentFactory()
    before = Event.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        appointment.cancel("sick", by="frontdesk")
        raise RuntimeError("the request failed after the cancel")
    assert Event.objects.count() == before
    assert Appointment.objects.get(pk=appointment.pk).status == "scheduled"


def test_events_written_together_leave_out_those_of_an_undone_savepoint_and_keep_their_order():
    first, undone = AppointmentFactory(), AppointmentFactory()
    with transaction.atomic(), events.written_together():
        events.record("appointment.confirmed", first)
        try:
            with transaction.atomic():
                events.record("appointment.no_show", undone)
                raise RuntimeError("this part is undone")
        except RuntimeError:
            pass
        events.record("appointment.no_show", first)
        assert not Event.objects.exclude(type="appointment.created").exists()  # written as the block ends
    written = Event.objects.exclude(type="appointment.created").order_by("pk")
    assert [(event.type, event.subject) for event in written] == [
        ("appointment.confirmed", f"appointment:{first.pk}"),
        ("appointment.no_show", f"appointment:{first.pk}"),
    ]


def test_an_error_leaving_events_written_together_lets_nothing_of_the_transaction_commit():
    appointment = AppointmentFactory()
    with transaction.atomic():
        try:
            with events.written_together():
                Appointment.objects.filter(pk=appointment.pk).update(status="confirmed")
                events.record("appointment.confirmed", appointment)
                raise RuntimeError("the change failed half-way")
        except RuntimeError:
            pass
        with pytest.raises(TransactionManagementError):  # the change cannot commit without its event
            Appointment.objects.filter(pk=appointment.pk).update(status="no_show")
    assert Appointment.objects.get(pk=appointment.pk).status == "scheduled"
    assert not Event.objects.exclude(type="appointment.created").exists()


def test_a_failed_delivery_can_be_sent_again_from_the_api(integrator, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    with receiving(answers=[503]) as receiver:
        subscribe(receiver.url, events=["appointment.cancelled"], owner=User.objects.get(username="ehr"))
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick", by="frontdesk")
        WebhookDelivery.objects.update(status="failed")  # as after a day of retries
        delivery = WebhookDelivery.objects.get()
        failed = integrator.get("/api/webhook-deliveries/?status=failed").json()
        assert [item["id"] for item in failed["results"]] == [delivery.pk]
        with django_capture_on_commit_callbacks(execute=True):
            response = integrator.post(f"/api/webhook-deliveries/{delivery.pk}/resend/")
        assert response.status_code == 202
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert len(receiver.received) == 2
    assert integrator.post(f"/api/webhook-deliveries/{delivery.pk}/resend/").status_code == 409


def test_an_endpoint_failing_for_a_day_is_disabled_and_managers_are_told(django_capture_on_commit_callbacks):
    manager = User.objects.create_user("manager", email="manager@clinic.example")
    manager.groups.add(Group.objects.get(name="Clinic manager"))
    appointment = AppointmentFactory()
    with receiving(answers=[500] * 5) as receiver:
        endpoint = subscribe(receiver.url, events=["appointment.cancelled"])
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=25))
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick", by="frontdesk")
    endpoint.refresh_from_db()
    assert not endpoint.active
    assert "failed for 24 hours" in endpoint.disabled_reason
    assert [message.to for message in mail.outbox if "Webhook endpoint disabled" in message.subject] == [
        ["manager@clinic.example"]
    ]


def test_events_show_the_object_as_the_api_does(integrator, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick", by="frontdesk")
    event = Event.objects.filter(type="appointment.cancelled").get()
    assert event.payload["appointment"] == integrator.get(f"/api/appointments/{appointment.pk}/").json()
    assert json.dumps(event.payload)  # plain JSON


def test_a_long_backlog_is_sent_in_short_runs_each_asking_for_the_next(
    monkeypatch, django_capture_on_commit_callbacks
):
    # A run gives its worker back after SEND_SECONDS so backfill jobs are not stuck behind it.
    monkeypatch.setattr(webhooks, "SEND_SECONDS", 0)
    runs = []
    monkeypatch.setattr(webhooks, "enqueue", lambda func, **options: runs.append(func))
    appointments = [AppointmentFactory() for _ in range(3)]
    with receiving() as receiver:
        endpoint = subscribe(receiver.url, events=["appointment.cancelled"])
        with django_capture_on_commit_callbacks(execute=False):
            for appointment in appointments:
                appointment.cancel("sick", by="frontdesk")
        assert webhooks.deliver() == 1 and runs == ["clinic.webhooks.deliver"]
        assert webhooks.deliver() == 1 and webhooks.deliver() == 1
        assert webhooks.deliver() == 0
        received = verified(endpoint, receiver.received)
    assert [body["data"]["appointment"]["id"] for body in received] == [a.pk for a in appointments]
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_one_run_keeps_one_connection_open_to_a_receiver_that_allows_it(django_capture_on_commit_callbacks):
    appointments = [AppointmentFactory() for _ in range(3)]
    with receiving(keep_alive=True) as receiver:
        endpoint = subscribe(receiver.url, events=["appointment.cancelled"])
        with django_capture_on_commit_callbacks(execute=False):
            for appointment in appointments:
                appointment.cancel("sick", by="frontdesk")
        assert webhooks.deliver() == 3
        assert len(verified(endpoint, receiver.received)) == 3
        assert len(receiver.connections) == 1


def test_a_cancellation_and_its_backfill_ask_for_one_run_each(monkeypatch, django_capture_on_commit_callbacks):
    # Each asking is a statement on the booking's worker; the backfill writes three events.
    asked = []
    monkeypatch.setattr(events, "request_delivery", lambda: asked.append(1))
    provider = ProviderFactory()
    WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    appointment = AppointmentFactory(provider=provider)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick", by="frontdesk")
    assert set(Event.objects.values_list("type", flat=True)) >= {
        "appointment.cancelled",
        "slot.freed",
        "appointment.created",
        "waitlist_entry.booked",
        "slot.backfilled",
    }
    assert len(asked) == 2


def test_events_of_a_rolled_back_savepoint_do_not_take_the_others_run_with_them(django_capture_on_commit_callbacks):
    kept, undone = AppointmentFactory(), AppointmentFactory()
    with receiving() as receiver:
        endpoint = subscribe(receiver.url, events=["appointment.cancelled"])
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                kept.cancel("sick", by="frontdesk")
                try:
                    with transaction.atomic():
                        undone.cancel("sick", by="frontdesk")
                        raise RuntimeError("the front desk's change is undone")
                except RuntimeError:
                    pass
        received = verified(endpoint, receiver.received)
    assert [body["data"]["appointment"]["id"] for body in received] == [kept.pk]
