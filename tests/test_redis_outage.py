"""Redis stops; the clinic keeps working (clinic/cache.py, backfill.models.enqueue_backfill).

Redis is the throttles' counter and the queue's broker, nothing else: sessions and the login
lockout are in the database. With a private redis-server as both, stopped mid-test: reads,
staff pages and patient links answer, throttles still count (in the process's memory) and
say so once in the log and in /metrics, a committed cancellation (staff page, API, patient
link) answers its usual success and leaves its freed slot due, and the sweep hands the slots
to the queue once Redis is back.
"""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

import clinic.queue
from backfill.models import FreedSlot
from clinic import cache as shared_cache
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for
from tests.processes import enqueue_to_redis

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def on_redis(redis_server, settings, monkeypatch):
    """This process's cache and broker are the private Redis, as a web process's are with REDIS_URL."""
    settings.CACHES = {
        "default": {
            "BACKEND": "clinic.cache.RedisWithLocalFallback",
            "LOCATION": redis_server.url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1},
        }
    }
    enqueue_to_redis(monkeypatch, redis_server.url)
    monkeypatch.setitem(shared_cache.state, "down_since", None)
    monkeypatch.setitem(shared_cache.state, "fallback_operations", 0)
    settings.METRICS_SCRAPE_SECRET = "scrape-secret-for-tests"
    return redis_server


def soon(hour):
    day = timezone.localdate() + timedelta(days=3)
    return timezone.make_aware(timezone.datetime.combine(day, timezone.datetime.min.time())) + timedelta(hours=hour)


def path_of(url):
    return re.sub(r"^https?://[^/]+", "", url)


def metric(client, name):
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-for-tests").content.decode()
    return re.search(rf"^{name} (\S+)$", body, re.M)[1]


def outage_warnings(caplog):
    return [r for r in caplog.records if r.getMessage().startswith("[CACHE] Redis does not answer")]


def test_with_redis_down_pages_links_and_the_api_answer_and_cancellations_commit(
    on_redis, staff_client, settings, caplog, roles
):
    client = Client()  # a patient, the EHR and the scraper, apart from the staff member's session
    settings.PATIENT_LINK_THROTTLE_RATE = "3/minute"
    by_staff, by_api, by_patient = (AppointmentFactory(start=soon(9 + n)) for n in range(3))
    integrator = User.objects.create_user("ehr")
    integrator.groups.add(Group.objects.get(name="Integrator"))
    api = {"HTTP_AUTHORIZATION": f"Token {Token.objects.create(user=integrator).key}"}
    link = path_of(link_for(by_patient, "cancel"))
    assert metric(client, "backfill_shared_cache_up") == "1.0"

    on_redis.stop()

    assert staff_client.get("/schedule/").status_code == 200
    assert client.get("/api/appointments/", **api).status_code == 200
    # A patient cancels through their link; its limit still holds, counted in this process's memory.
    assert client.post(link).status_code == 200
    assert [client.get(link).status_code for _ in range(3)] == [200, 200, 429]

    response = staff_client.post(
        f"/schedule/appointments/{by_staff.pk}/cancel/", {"reason": "patient called in sick", "confirm": "yes"}
    )
    assert response.status_code == 302, response.content[:500]
    response = client.post(
        f"/api/appointments/{by_api.pk}/cancel/", {"reason": "running late"}, content_type="application/json", **api
    )
    assert response.status_code == 200, response.content[:500]

    # Both committed; their jobs could not be enqueued, so their slots are due for the sweep now.
    slots = FreedSlot.objects.filter(appointment__in=[by_staff, by_api, by_patient])
    assert sorted(slots.values_list("status", flat=True)) == ["open", "open", "open"]
    assert all(slot.next_attempt_at <= timezone.now() for slot in slots)
    assert len(outage_warnings(caplog)) == 1  # said once, not at every request
    assert metric(client, "backfill_shared_cache_up") == "0.0"
    assert float(metric(client, "backfill_cache_fallback_operations_total")) > 0

    on_redis.start()

    assert metric(client, "backfill_shared_cache_up") == "1.0"
    assert any(r.getMessage().startswith("[CACHE] Redis answers again") for r in caplog.records)
    # The sweep (every 30 s in the qcluster) hands the three slots to the queue.
    assert sweep()["requeued_slots"] == 3
    assert clinic.queue.shared_broker().queue_size() == 3  # on the Redis this process enqueues to
