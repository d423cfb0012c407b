"""A killed worker does not stop the backfilling: the cluster's watchdog (ops/watchdog.py).

django-q2's workers share one multiprocessing queue; the idle worker blocked in its `get()`
holds the queue's read lock, the others wait for that lock. SIGKILL of the holder (what the
OOM killer does) leaves the lock held for good: the sentinel starts a new worker, which waits
on the lock too, and no job runs again. These tests do that to a real cluster run as bin/serve
runs it (`manage.py supervise_qcluster`), under a stream of cancellations, and expect every
freed slot filled within a minute of the kill, nobody double-booked. The watchdog looks every
second and calls a cluster stalled after 8 s here (30 s by default).

Two faults that are not a stall, with the same cluster: a Redis outage is waited out (the
sweep hands the slots to the queue once it is back, no restart), and a PostgreSQL restart
(every kept connection terminated) costs the next job no failure, since connections are
checked before reuse.
"""

import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from backfill.models import FreedSlot
from clinic.models import ClusterHeartbeat
from ops import watchdog
from ops.sweep import SWEEP_FUNC
from tests.processes import (
    QCluster,
    a_morning_to_fill,
    assert_nobody_double_booked,
    current_database_url,
    end_other_sessions,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.qcluster, pytest.mark.django_db(transaction=True)]

WORKERS = 2
STALL_S = 8
FILL_WITHIN_S = 60  # every slot freed is filled within a minute of the kill
READ = 0  # the read(2) system call's number on x86-64: the worker waiting for a job in get()


@pytest.fixture
def supervised_cluster(broker_url):
    cluster = QCluster(
        current_database_url(),
        redis_url=broker_url,
        workers=WORKERS,
        command="supervise_qcluster",
        env={"WATCHDOG_INTERVAL_SECONDS": "1", "WATCHDOG_STALL_SECONDS": str(STALL_S)},
    ).start()
    yield cluster
    cluster.stop()
    end_other_sessions()


def children(pid):
    """The live children of `pid` (a killed one its parent has not reaped yet is not)."""
    return sorted(child for child, (parent, state) in watchdog.processes().items() if parent == pid and state != "Z")


class Processes:
    """The cluster's processes by role, followed as the sentinel replaces them and the watchdog the cluster.

    supervise_qcluster -> qcluster -> the sentinel, which forks the workers, then the monitor
    and the pusher; a process it replaces is the child it did not have before.
    """

    def __init__(self, cluster):
        self.cluster = cluster
        self.sentinel = None
        self.by_role = {}

    def current(self):
        (qcluster,) = wait_until(lambda: children(self.cluster.process.pid), what="the qcluster process")
        (sentinel,) = wait_until(lambda: children(qcluster), what="the sentinel")
        forked = wait_until(
            lambda: len(children(sentinel)) == WORKERS + 2 and children(sentinel), what="the sentinel's processes"
        )
        if sentinel != self.sentinel:  # a new cluster: the order forked tells the roles
            self.by_role = {f"worker {n + 1}": pid for n, pid in enumerate(forked[:WORKERS])}
            self.by_role.update(monitor=forked[WORKERS], pusher=forked[WORKERS + 1])
        else:
            new = [pid for pid in forked if pid not in self.by_role.values()]
            for role, pid in self.by_role.items():
                if pid not in forked and role != "sentinel":
                    self.by_role[role] = new.pop()
        self.sentinel = self.by_role["sentinel"] = sentinel
        return self.by_role

    def workers(self):
        return [pid for role, pid in self.current().items() if role.startswith("worker")]


def system_call(pid):
    try:
        return int(Path(f"/proc/{pid}/syscall").read_text().split()[0])
    except (OSError, ValueError):  # gone, or "running"
        return None


def holder_of_the_queue_lock(workers):
    """The worker reading the queue's pipe (the others wait on the lock it holds), seen twice."""
    for pid in workers:
        if system_call(pid) == READ:
            time.sleep(0.02)
            if system_call(pid) == READ:
                return pid
    return None


def statuses():
    return sorted(FreedSlot.objects.values_list("status", flat=True))


def cancel_some(appointments, pause=0.3):
    for appointment in appointments:
        appointment.cancel("patient called in sick")
        time.sleep(pause)


def all_filled(count):
    return lambda: statuses() == ["backfilled"] * count


def restarts():
    return ClusterHeartbeat.objects.filter(cluster="backfill").values_list("restarts", flat=True).first() or 0


def test_a_worker_killed_holding_the_queue_lock_is_noticed_and_its_cluster_restarted(
    supervised_cluster, client, settings
):
    cluster = supervised_cluster
    appointments, _ = a_morning_to_fill(12)
    cancel_some(appointments[:3])
    wait_until(all_filled(3), timeout=20, what=lambda: f"the first slots filled:\n{cluster.output()}")
    workers = Processes(cluster).workers()

    holder = wait_until(lambda: holder_of_the_queue_lock(workers), what="a worker waiting for a job")
    os.kill(holder, signal.SIGKILL)
    killed_at = time.monotonic()
    cancel_some(appointments[3:6])

    # /readyz says so before the watchdog acts (this process judges after 3 s, the watchdog after 8).
    settings.WATCHDOG_STALL_SECONDS = 3
    response = wait_until(
        lambda: (r := client.get("/readyz")).json()["checks"]["clusters"]["ok"] is False and r,
        timeout=STALL_S,
        what="/readyz to report the stall",
    )
    assert response.status_code == 503
    assert "backfill: no job finished for" in response.json()["checks"]["clusters"]["detail"]

    cancel_some(appointments[6:])
    wait_until(
        all_filled(12),
        timeout=FILL_WITHIN_S - (time.monotonic() - killed_at),
        what=lambda: f"every slot filled within {FILL_WITHIN_S} s, now {statuses()}:\n{cluster.output()}",
    )
    assert restarts() == 1, cluster.output()
    assert "[WATCHDOG] Restarting the backfill cluster: no job finished for" in cluster.log_path.read_text()
    assert_nobody_double_booked()


@pytest.mark.parametrize("broker_url", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
def test_each_process_of_the_cluster_killed_in_turn_loses_no_slot(supervised_cluster):
    cluster = supervised_cluster
    appointments, _ = a_morning_to_fill(3 * (WORKERS + 3))
    batches = iter(appointments[n : n + 3] for n in range(0, len(appointments), 3))
    processes = Processes(cluster)
    filled = 0
    for name in [*(f"worker {n + 1}" for n in range(WORKERS)), "monitor", "pusher", "sentinel"]:
        os.kill(processes.current()[name], signal.SIGKILL)
        killed_at = time.monotonic()
        cancel_some(next(batches))
        filled += 3
        wait_until(
            all_filled(filled),
            timeout=FILL_WITHIN_S - (time.monotonic() - killed_at),
            what=lambda name=name: (
                f"every slot filled after killing the {name}, now {statuses()}:\n{cluster.output()}"
            ),
        )
    assert_nobody_double_booked()


def the_sweep_every_half_minute():
    """The two sweep schedules the migrations make (an earlier transactional test may have flushed them)."""
    now = timezone.now()
    for name, offset in (("backfill-sweep", 0), ("backfill-sweep-half", 30)):
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": SWEEP_FUNC,
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
                "next_run": now + timedelta(seconds=offset),
            },
        )


@pytest.mark.parametrize("broker_url", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
def test_a_redis_outage_is_waited_out_not_taken_for_a_stall_and_the_sweep_hands_off_after_it(
    supervised_cluster, redis_server
):
    cluster = supervised_cluster
    the_sweep_every_half_minute()
    appointments, _ = a_morning_to_fill(6)
    cancel_some(appointments[:2])
    wait_until(all_filled(2), timeout=20, what=lambda: f"the first slots filled:\n{cluster.output()}")

    redis_server.stop()
    cancel_some(appointments[2:], pause=1)  # they commit; their jobs cannot be enqueued
    time.sleep(STALL_S + 2)  # longer than the watchdog takes to call a cluster stalled
    assert statuses().count("open") == 4
    redis_server.start()
    back_at = time.monotonic()

    # Nothing else is done here: the schedules run the sweep, which hands the slots to the queue.
    wait_until(
        all_filled(6),
        timeout=FILL_WITHIN_S,
        what=lambda: (
            f"every slot filled within {FILL_WITHIN_S} s of Redis's return, now {statuses()}:\n{cluster.output()}"
        ),
    )
    log = cluster.log_path.read_text()
    assert "cannot reach the broker" in log and "the broker answers again" in log
    assert "no job finished for" not in log, "the outage was taken for a stalled cluster"
    print(f"filled {time.monotonic() - back_at:.1f} s after Redis came back")
    assert_nobody_double_booked()


def cluster_sessions():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_a_restarted_database_costs_the_next_job_no_failure_and_no_retry(supervised_cluster):
    """What a PostgreSQL restart does to a running cluster: every connection it kept is gone."""
    cluster = supervised_cluster
    appointments, _ = a_morning_to_fill(4)
    cancel_some(appointments[:2])
    wait_until(all_filled(2), timeout=20, what=lambda: f"the first slots filled:\n{cluster.output()}")
    time.sleep(2)  # their confirmations sent too: a job running when its connection dies fails, as it would
    assert cluster_sessions() > 0  # the workers keep their connections between jobs

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    cancel_some(appointments[2:])

    # Well within the 30 s a failed run waits for its retry (BACKFILL RETRY_BACKOFF_SECONDS).
    wait_until(
        all_filled(4), timeout=10, what=lambda: f"the slots filled at once, now {statuses()}:\n{cluster.output()}"
    )
    after = FreedSlot.objects.filter(appointment__in=appointments[2:])
    assert list(after.values_list("failures", flat=True)) == [0, 0]
    log = cluster.log_path.read_text()
    assert not [slot.pk for slot in after if f"[BACKFILL] Backfill of slot {slot.pk} raised" in log]
    assert_nobody_double_booked()


def test_the_webhooks_cluster_is_watched_the_same_way(broker_url):
    """Its one worker, idle, holds its queue's lock; killed, no delivery would go out again."""
    cluster = QCluster(
        current_database_url(),
        redis_url=broker_url,
        name="webhooks",
        command="supervise_qcluster",
        env={"WATCHDOG_INTERVAL_SECONDS": "1", "WATCHDOG_STALL_SECONDS": str(STALL_S)},
    ).start()
    try:
        (qcluster,) = wait_until(lambda: children(cluster.process.pid), what="the qcluster process")
        (sentinel,) = wait_until(lambda: children(qcluster), what="the sentinel")
        worker = wait_until(lambda: len(children(sentinel)) == 3 and children(sentinel)[0], what="its processes")
        holder = wait_until(lambda: holder_of_the_queue_lock([worker]), what="the worker waiting for a job")
        os.kill(holder, signal.SIGKILL)
        wait_until(
            lambda: ClusterHeartbeat.objects.filter(cluster="webhooks", restarts=1).exists(),
            timeout=STALL_S + 20,
            what=lambda: f"the webhooks cluster restarted:\n{cluster.output()}",
        )
        # The new cluster runs the watchdog's check jobs again.
        restarted = ClusterHeartbeat.objects.get(cluster="webhooks").started_at
        wait_until(
            lambda: (
                (state := ClusterHeartbeat.objects.get(cluster="webhooks")).last_finished_at
                and state.last_finished_at > restarted
            ),
            timeout=20,
            what=lambda: f"a job finished by the new cluster:\n{cluster.output()}",
        )
    finally:
        cluster.stop()
        end_other_sessions()
    assert "[WATCHDOG] Restarting the webhooks cluster: no job finished for" in cluster.log_path.read_text()
