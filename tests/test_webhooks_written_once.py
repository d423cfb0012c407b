"""Webhooks written once (clinic/webhooks.py): a delivered event is one row, inserted
delivered; the sender finds new events past each endpoint's mark, and never skips one whose
transaction commits after a later event's."""

from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from rest_framework.authtoken.models import Token

from clinic import webhooks
from clinic.models import DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint, WebhookProgress
from clinic.webhooks import new_secret
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory
from tests.processes import current_database_url
from tests.webhook_receiver import receiving


@pytest.fixture(autouse=True)
def receivers_on_loopback(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True


def subscribe(url, events=("*",), owner=None):
    return WebhookEndpoint.objects.create(url=url, events=list(events), secret=new_secret(), owner=owner)


def received_ids(receiver):
    return [int(headers["webhook-id"].removeprefix("evt_")) for headers, _ in receiver.received]


@pytest.mark.django_db
def test_each_delivered_event_is_one_row_with_its_attempt_and_the_api_shows_it(
    client, django_capture_on_commit_callbacks
):
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    appointment = AppointmentFactory()
    with receiving() as receiver:
        subscribe(receiver.url, owner=user)
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick", by="frontdesk")
    sent = received_ids(receiver)
    assert sent and sent == sorted(sent)
    deliveries = WebhookDelivery.objects.order_by("event_id")
    assert [delivery.event_id for delivery in deliveries] == sent
    assert {(d.status, d.attempts, d.status_code) for d in deliveries} == {("delivered", 1, 200)}
    assert not DeliveryAttempt.objects.exists()  # the POST the receiver took is on its delivery
    listed = client.get("/api/webhook-deliveries/").json()["results"]
    assert {item["status"] for item in listed} == {"delivered"}
    assert {len(item["attempt_log"]) for item in listed} == {1}
    assert listed[0]["attempt_log"][0]["status_code"] == 200


@pytest.mark.django_db
def test_an_endpoint_gets_only_the_events_after_it_was_made(django_capture_on_commit_callbacks):
    before, after = AppointmentFactory(), AppointmentFactory()
    with django_capture_on_commit_callbacks(execute=True):
        before.cancel("sick", by="frontdesk")
    with receiving() as receiver:
        subscribe(receiver.url, events=["appointment.cancelled"])
        with django_capture_on_commit_callbacks(execute=True):
            after.cancel("sick", by="frontdesk")
        webhooks.deliver()
    assert received_ids(receiver) == [
        Event.objects.get(type="appointment.cancelled", subject__endswith=f":{after.pk}").pk
    ]


@pytest.mark.django_db
def test_an_endpoint_ticked_active_again_gets_the_events_from_then_on(django_capture_on_commit_callbacks):
    while_off, after = AppointmentFactory(), AppointmentFactory()
    with receiving() as receiver:
        endpoint = subscribe(receiver.url, events=["appointment.cancelled"])
        endpoint.active = False
        endpoint.save()
        with django_capture_on_commit_callbacks(execute=True):
            while_off.cancel("sick", by="frontdesk")
        endpoint.active = True
        endpoint.save()  # as the admin's form and the API do
        with django_capture_on_commit_callbacks(execute=True):
            after.cancel("sick", by="frontdesk")
    bodies = [body for _, body in receiver.received]
    assert len(bodies) == 1 and f'"id":{after.pk},' in bodies[0]


@pytest.mark.django_db
def test_a_sender_holding_an_endpoint_keeps_another_from_sending_its_events(django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    with receiving() as receiver:
        endpoint = subscribe(receiver.url, events=["appointment.cancelled"])
        held = timezone.now() + timedelta(seconds=60)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(claimed_until=held)  # another host's sender
        with django_capture_on_commit_callbacks(execute=True):
            appointment.cancel("sick", by="frontdesk")
        assert webhooks.send_for(endpoint.pk) == (0, False)
        assert receiver.received == []
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(claimed_until=None)  # its run ended
        assert webhooks.send_for(endpoint.pk) == (1, False)
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_the_sweep_deletes_old_delivered_rows_and_keeps_failed_ones(settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    old, recent, failing = AppointmentFactory(), AppointmentFactory(), AppointmentFactory()
    with receiving(answers=[200, 200, 500]) as receiver:
        subscribe(receiver.url, events=["appointment.cancelled"])
        with django_capture_on_commit_callbacks(execute=True):
            for appointment in (old, recent, failing):
                appointment.cancel("sick", by="frontdesk")
    subject = {delivery.event.subject: delivery for delivery in WebhookDelivery.objects.select_related("event")}
    WebhookDelivery.objects.filter(pk=subject[f"appointment:{old.pk}"].pk).update(
        delivered_at=timezone.now() - timedelta(days=31)
    )
    WebhookDelivery.objects.filter(pk=subject[f"appointment:{failing.pk}"].pk).update(
        status="failed", delivered_at=None, created_at=timezone.now() - timedelta(days=40)
    )
    assert sweep()["pruned_webhook_deliveries"] == 1
    assert sorted(WebhookDelivery.objects.values_list("event__subject", "status")) == sorted(
        [(f"appointment:{recent.pk}", "delivered"), (f"appointment:{failing.pk}", "failed")]
    )
    with receiving() as receiver:
        webhooks.deliver()
    assert receiver.received == []  # the pruned delivery is not sent again


def insert_event(session, subject):
    """An event written on a connection of its own, in its transaction (not committed here)."""
    return session.execute(
        "INSERT INTO clinic_event (type, subject, occurred_at, payload) "
        "VALUES ('appointment.cancelled', %s, clock_timestamp(), '{}') RETURNING id",
        [subject],
    ).fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_committing_after_a_later_one_is_still_sent():
    """Two transactions commit out of the order of their events' ids: the later id is sent at
    once, and the earlier one when it commits, although the sender moved on meanwhile."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite writes one transaction at a time")
    with (
        receiving() as receiver,
        psycopg.connect(current_database_url()) as early,
        psycopg.connect(current_database_url()) as late,
    ):
        endpoint = subscribe(receiver.url)
        first = insert_event(early, "appointment:1")
        second = insert_event(late, "appointment:2")
        assert first < second
        late.commit()
        for _ in range(3):  # passes: each reads the sequence again
            webhooks.deliver()
        assert received_ids(receiver) == [second]
        assert WebhookProgress.objects.get(endpoint=endpoint).sent_through < first
        early.commit()
        webhooks.deliver()
        assert received_ids(receiver) == [second, first]
        third = insert_event(late, "appointment:3")
        late.commit()
        webhooks.deliver()
        webhooks.deliver()
    assert received_ids(receiver) == [second, first, third]
    assert WebhookProgress.objects.get(endpoint=endpoint).sent_through >= second  # no transaction open now
    assert webhooks.all_sent()


@pytest.mark.django_db(transaction=True)
def test_pending_deliveries_and_events_not_fanned_out_survive_the_upgrade():
    """Made before webhooks were written once: a pending delivery, a delivered one, an event
    fanned out to nobody, and one not fanned out yet. After the migration the pending one and
    the unfanned one are sent, each once; the delivered one is not sent again."""
    executor = MigrationExecutor(connection)
    before, after = [("clinic", "0023_appointment_moved_message")], executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    try:
        old = MigrationExecutor(connection).loader.project_state(before).apps
        Endpoint, OldEvent, Delivery = (
            old.get_model("clinic", name) for name in ("WebhookEndpoint", "Event", "WebhookDelivery")
        )
        with receiving() as receiver:
            endpoint = Endpoint.objects.create(
                url=receiver.url, events=["*"], secret=new_secret(), created_at=timezone.now() - timedelta(minutes=5)
            )
            events = [
                OldEvent.objects.create(
                    type="appointment.cancelled", subject=f"appointment:{n}", payload={}, fanned_out=n < 3
                )
                for n in range(4)
            ]
            Delivery.objects.create(endpoint=endpoint, event=events[0], status="delivered", attempts=1)
            Delivery.objects.create(endpoint=endpoint, event=events[1], status="pending")
            executor = MigrationExecutor(connection)
            executor.loader.build_graph()
            executor.migrate(after)
            webhooks.deliver()
        assert sorted(received_ids(receiver)) == [events[1].pk, events[3].pk]
        assert webhooks.all_sent()
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
