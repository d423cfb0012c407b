"""End to end through a real `manage.py qcluster`: cancel, and the worker books and emails
(docs/reference.md, Triggers).

The cluster runs with config.settings against this run's test database, on the ORM broker
(the database itself) or on Redis. This process enqueues to the same broker, so nothing
runs in-process here.
"""

import pytest
import redis

from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, LocationFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory, next_weekday_at
from tests.processes import enqueue_to_orm, enqueue_to_redis, running_qcluster, wait_until
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = [pytest.mark.postgres, pytest.mark.qcluster, pytest.mark.django_db(transaction=True)]

# A Redis database of this test file's own on the shared server, emptied before and after.
REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def orm_broker(monkeypatch):
    enqueue_to_orm(monkeypatch)
    with running_qcluster() as cluster:
        yield cluster


@pytest.fixture
def redis_broker(monkeypatch):
    queue = redis.Redis.from_url(REDIS_URL)
    queue.flushdb()
    enqueue_to_redis(monkeypatch, REDIS_URL)
    with running_qcluster(redis_url=REDIS_URL) as cluster:
        yield cluster
    queue.flushdb()


@pytest.fixture(params=["orm_broker", pytest.param("redis_broker", marks=pytest.mark.redis)])
def qcluster(request):
    return request.getfixturevalue(request.param)


def test_it_books_and_emails_a_waitlisted_patient_within_seconds_of_a_cancellation(qcluster):
    provider = ProviderFactory(
        specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory(name="Downtown")
    )
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    appointment = AppointmentFactory(provider=provider)

    appointment.cancel("patient called in sick")

    slot = FreedSlot.objects.get(appointment=appointment)
    wait_until(
        lambda: FreedSlot.objects.filter(pk=slot.pk, status="backfilled").exists(),
        timeout=15,
        what=lambda: f"the worker to backfill slot {slot.pk}:\n{qcluster.output()}",
    )
    slot.refresh_from_db()
    entry.refresh_from_db()
    assert slot.filled_by.patient == entry.patient
    assert entry.status == WaitlistEntry.Status.BOOKED
    email = wait_until(
        lambda: OutboundEmail.objects.filter(appointment=slot.filled_by, status="sent").first(),
        timeout=15,
        what=lambda: f"the confirmation to be sent:\n{qcluster.output()}",
    )
    assert (email.kind, email.recipient) == (OutboundEmail.Kind.BACKFILL_CONFIRMATION, entry.patient.email)


def test_it_fills_several_slots_cancelled_together(qcluster):
    providers = [ProviderFactory(specialty=SpecialtyFactory(name="Orthopedic PT")) for _ in range(2)]
    appointments = [
        AppointmentFactory(provider=provider, start=next_weekday_at(hour))
        for hour in (9, 10)
        for provider in providers
    ]
    entries = [
        WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=providers[0].specialty) for _ in range(4)
    ]

    for appointment in appointments:
        appointment.cancel("clinic closed early")

    wait_until(
        lambda: FreedSlot.objects.filter(status="backfilled").count() == 4,
        timeout=20,
        what=lambda: f"four slots backfilled:\n{qcluster.output()}",
    )
    assert WaitlistEntry.objects.filter(pk__in=[e.pk for e in entries], status="booked").count() == 4
    wait_until(
        lambda: OutboundEmail.objects.filter(status="sent").count() == 4,
        timeout=15,
        what=lambda: f"four confirmations sent:\n{qcluster.output()}",
    )
