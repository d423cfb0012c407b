"""What an operator's tools read: /healthz, /readyz, /metrics (docs/reference.md, Production)."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.authtoken.models import Token

from backfill.models import FreedSlot
from clinic.models import ClusterHeartbeat
from ops.sweep import SWEEP_FUNC
from scheduling.factories import AppointmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sweep_on_time():
    Schedule.objects.filter(func=SWEEP_FUNC).update(next_run=timezone.now() + timedelta(seconds=40))


def test_healthz_answers_while_the_process_does(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_the_database_broker_and_sweep_are(client, sweep_on_time):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert set(response.json()["checks"]) == {"database", "broker", "sweep", "clusters", "open_slots"}


def test_readyz_is_unavailable_once_the_sweep_stops_running(client):
    Schedule.objects.filter(func=SWEEP_FUNC).update(next_run=timezone.now() - timedelta(minutes=10))
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


def a_stalled_cluster(name="backfill"):
    """A cluster whose watchdog's check job has waited a minute, its last job done two minutes ago."""
    now = timezone.now()
    return ClusterHeartbeat.objects.create(
        cluster=name,
        started_at=now - timedelta(minutes=10),
        last_finished_at=now - timedelta(minutes=2),
        probe_sent_at=now - timedelta(minutes=1),
    )


def test_readyz_is_unavailable_while_a_cluster_holds_work_and_runs_none(client, sweep_on_time, settings):
    settings.WATCHDOG_STALL_SECONDS = 30
    a_stalled_cluster()
    response = client.get("/readyz")
    assert response.status_code == 503
    check = response.json()["checks"]["clusters"]
    assert check["ok"] is False
    assert re.fullmatch(r"backfill: no job finished for 12\d s while a job waited 6\d s", check["detail"])


def test_readyz_is_ready_while_a_cluster_busy_with_a_backlog_keeps_finishing_jobs(client, sweep_on_time, settings):
    settings.WATCHDOG_STALL_SECONDS = 30
    busy = a_stalled_cluster()
    busy.last_finished_at = timezone.now() - timedelta(seconds=2)
    busy.save()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["clusters"] == {"ok": True, "detail": "running"}


def test_readyz_says_when_the_watchdog_restarted_a_cluster(client, sweep_on_time):
    ClusterHeartbeat.objects.create(
        cluster="webhooks",
        restarts=2,
        last_restart_at=timezone.now(),
        last_restart_reason="no job finished for 31 s while a job waited 30 s",
    )
    detail = client.get("/readyz").json()["checks"]["clusters"]["detail"]
    assert detail.startswith("webhooks restarted 2 times, last ")
    assert detail.endswith("(no job finished for 31 s while a job waited 30 s)")


def test_readyz_tells_only_its_status_to_a_client_elsewhere(client, sweep_on_time):
    a_stalled_cluster()
    response = client.get("/readyz", REMOTE_ADDR="203.0.113.7")
    assert (response.status_code, response.json()) == (503, {"status": "unavailable"})
    # A forwarding header is not believed without PROXY_COUNT.
    response = client.get("/readyz", REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert response.json() == {"status": "unavailable"}


def test_readyz_tells_which_check_failed_to_a_manager_or_an_integrator_but_not_the_front_desk(client, sweep_on_time):
    a_stalled_cluster()
    elsewhere = {"REMOTE_ADDR": "203.0.113.7"}
    for role, sees in (("Front desk", False), ("Clinic manager", True), ("Integrator", True)):
        user = User.objects.create_user(role.replace(" ", "-"))
        user.groups.add(Group.objects.get(name=role))
        token = Token.objects.create(user=user).key
        body = client.get("/readyz", HTTP_AUTHORIZATION=f"Token {token}", **elsewhere).json()
        assert ("checks" in body) is sees, role
        client.force_login(user)
        assert ("checks" in client.get("/readyz", **elsewhere).json()) is sees, role
        client.logout()


def test_readyz_behind_a_proxy_tells_the_checks_to_the_machine_itself_only(client, sweep_on_time, settings):
    settings.PROXY_COUNT = 1
    # The proxy on the machine is the peer; the client is the address it forwarded.
    outside = client.get("/readyz", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1, 198.51.100.4")
    assert "checks" not in outside.json()
    local = client.get("/readyz", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert "checks" in local.json()


def test_metrics_count_the_watchdogs_restarts_and_say_when_a_cluster_is_stalled(client, settings):
    settings.METRICS_SCRAPE_SECRET = "scrape-secret-for-tests"
    a_stalled_cluster()
    ClusterHeartbeat.objects.create(cluster="webhooks", restarts=3)
    body = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret-for-tests").content.decode()
    assert 'backfill_cluster_restarts{cluster="webhooks"} 3.0' in body
    assert 'backfill_cluster_stalled{cluster="backfill"} 1.0' in body
    assert 'backfill_cluster_stalled{cluster="webhooks"} 0.0' in body


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
    runs = sorted(Schedule.objects.filter(func=SWEEP_FUNC).values_list("next_run", flat=True))
    assert len(runs) == 2
    assert (runs[1] - runs[0]).total_seconds() == 30
