"""Webhook deliveries run in a cluster of their own (settings.WEBHOOK_QUEUE), through real
`manage.py qcluster` processes: the booking cluster books and never sends an event, so a
slow receiver cannot hold a booking's worker; the webhooks' cluster sends them all, in order.
"""

import pytest
import redis
from standardwebhooks.webhooks import Webhook

from backfill.models import FreedSlot
from clinic import webhooks
from clinic.factories import HighRiskPatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import Event, WebhookDelivery, WebhookEndpoint
from clinic.webhooks import new_secret
from scheduling.factories import AppointmentFactory
from tests.processes import (
    QCluster,
    current_database_url,
    end_other_sessions,
    enqueue_to_orm,
    enqueue_to_redis,
    wait_until,
)
from tests.webhook_receiver import receiving
from waitlist.factories import WaitlistEntryFactory

pytestmark = [pytest.mark.postgres, pytest.mark.qcluster, pytest.mark.django_db(transaction=True)]

REDIS_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture(params=["orm", pytest.param("redis", marks=pytest.mark.redis)])
def broker(request, monkeypatch):
    if request.param == "orm":
        enqueue_to_orm(monkeypatch)
        yield None
        return
    queue = redis.Redis.from_url(REDIS_URL)
    queue.flushdb()
    enqueue_to_redis(monkeypatch, REDIS_URL)
    yield REDIS_URL
    queue.flushdb()


@pytest.fixture
def clusters(broker):
    started = []

    def start(name=None):
        cluster = QCluster(current_database_url(), redis_url=broker, name=name)
        cluster.env["WEBHOOK_ALLOW_PRIVATE"] = "1"  # the receiver listens on loopback
        started.append(cluster.start())
        return started[-1]

    yield start
    for cluster in reversed(started):
        cluster.stop()
    end_other_sessions()


def test_the_booking_cluster_books_and_the_webhooks_cluster_sends_the_events(clusters):
    provider = ProviderFactory(specialty=SpecialtyFactory(name="Orthopedic PT"))
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    appointment = AppointmentFactory(provider=provider)
    with receiving() as receiver:
        endpoint = WebhookEndpoint.objects.create(url=receiver.url, events=["*"], secret=new_secret())
        booking = clusters()

        appointment.cancel("patient called in sick")

        slot = FreedSlot.objects.get(appointment=appointment)
        wait_until(
            lambda: FreedSlot.objects.filter(pk=slot.pk, status="backfilled").exists(),
            timeout=15,
            what=lambda: f"the booking cluster to backfill:\n{booking.output()}",
        )
        # Every event of the cancellation and its backfill is waiting; the booking cluster sent none.
        wait_until(
            lambda: Event.objects.filter(type="slot.backfilled").exists(),
            timeout=10,
            what="the booking transaction's events to wait for their own cluster",
        )
        assert receiver.received == [] and not WebhookDelivery.objects.exists()

        sending = clusters(name="webhooks")
        wait_until(
            webhooks.all_sent,
            timeout=20,
            what=lambda: f"the webhooks' cluster to deliver:\n{sending.output()}",
        )
        bodies = [Webhook(endpoint.secret).verify(body, headers) for headers, body in receiver.received]

    types = [body["type"] for body in bodies]
    assert types[:2] == ["appointment.cancelled", "slot.freed"]
    assert {"appointment.created", "waitlist_entry.booked", "slot.backfilled"} <= set(types[2:])
    assert types.index("slot.backfilled") > types.index("slot.freed")
    booked = next(body for body in bodies if body["type"] == "waitlist_entry.booked")
    assert booked["data"]["waitlist_entry"]["id"] == entry.pk
