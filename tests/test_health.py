"""What an operator's tools read: /healthz, /readyz, /metrics (SPEC 10)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.authtoken.models import Token

from backfill.models import FreedSlot
from scheduling.factories import AppointmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sweep_on_time():
    Schedule.objects.filter(func="backfill.tasks.sweep").update(next_run=timezone.now() + timedelta(seconds=40))


def test_healthz_answers_while_the_process_does(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_the_database_broker_and_sweep_are(client, sweep_on_time):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert set(response.json()["checks"]) == {"database", "broker", "sweep", "open_slots"}


def test_readyz_is_unavailable_once_the_sweep_stops_running(client):
    Schedule.objects.filter(func="backfill.tasks.sweep").update(next_run=timezone.now() - timedelta(minutes=10))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "is a qcluster running?" in response.json()["checks"]["sweep"]["detail"]


def test_readyz_is_unavailable_while_a_freed_slot_is_stuck(client, sweep_on_time, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory()
    with django_capture_on_commit_callbacks(execute=False):  # its job never runs
        appointment.cancel("sick", by="frontdesk")
    FreedSlot.objects.update(freed_at=timezone.now() - timedelta(minutes=10))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["open_slots"] == {"ok": False, "detail": "oldest open for 600 s"}


def test_metrics_need_a_token_or_the_scrape_secret(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess").status_code == 401


def test_metrics_for_the_scraper(client, settings, django_capture_on_commit_callbacks):
    settings.METRICS_SCRAPE_SECRET = "scrape-secret-for-tests"
    appointment = AppointmentFactory()
    with django_capture_on_commit_callbacks(execute=False):
        appointment.cancel("sick", by="frontdesk")
    FreedSlot.objects.update(status=FreedSlot.Status.BACKFILLED, fill_ms=40, filled_by=AppointmentFactory())
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-for-tests").content.decode()
    assert 'backfill_time_to_fill_seconds_bucket{le="0.025"} 0.0' in body
    assert 'backfill_time_to_fill_seconds_bucket{le="0.05"} 1.0' in body
    assert 'backfill_freed_slots{status="backfilled"} 1.0' in body
    assert "backfill_open_slots 0.0" in body
    assert "backfill_queue_depth" in body
    assert 'backfill_messages{status="queued"}' in body


def test_metrics_for_a_token_with_the_permission_only(client):
    manager = User.objects.create_user("manager")
    manager.groups.add(Group.objects.get(name="Clinic manager"))
    desk = User.objects.create_user("desk")
    desk.groups.add(Group.objects.get(name="Front desk"))
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=desk).key}").status_code == 401
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=manager).key}").status_code == 200
    )


def test_the_sweep_runs_every_half_minute():
    runs = sorted(Schedule.objects.filter(func="backfill.tasks.sweep").values_list("next_run", flat=True))
    assert len(runs) == 2
    assert (runs[1] - runs[0]).total_seconds() == 30
