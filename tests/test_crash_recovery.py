"""A worker killed mid-job, and a broker that goes away, lose no slot (docs/reference.md, Triggers and Numbers).

To catch the workers inside the job, the test holds row locks on the waitlisted patients
from a connection of its own: each worker gets as far as locking its slot and a waitlist
entry, then waits for the patient. The whole qcluster is then SIGKILLed. Its transactions
die with it; on Redis its tasks are simply gone, on the ORM broker they come back only
after Q_CLUSTER["retry"] (60 s). The sweep is what brings every slot back.
"""

import time
from datetime import timedelta

import psycopg
import pytest
import redis
from django.conf import settings
from django.utils import timezone
from django_q.models import OrmQ

from backfill.models import FreedSlot
from ops.sweep import sweep
from scheduling.models import Appointment
from tests.processes import (
    QCluster,
    a_morning_to_fill,
    assert_nobody_double_booked,
    current_database_url,
    end_other_sessions,
    enqueue_to_redis,
    running_qcluster,
    sessions_waiting_for_a_lock,
    wait_until,
)
from waitlist.models import WaitlistEntry

pytestmark = [pytest.mark.postgres, pytest.mark.qcluster, pytest.mark.django_db(transaction=True)]

WORKERS = 2


def hold_new_appointments():
    """From another connection, hold back every new appointment, as a long transaction would.

    A SHARE lock on the table lets the jobs read and lock their slot and candidate, then
    stops them at the insert of the new appointment: mid-transaction, with locks held.
    """
    blocker = psycopg.connect(current_database_url())
    blocker.execute("LOCK TABLE scheduling_appointment IN SHARE MODE")
    return blocker


def sweep_after_lost_jobs():
    """The sweep as it runs once a slot's job has been silent for LOST_JOB_SECONDS."""
    return sweep(now=timezone.now() + timedelta(seconds=settings.BACKFILL["LOST_JOB_SECONDS"] + 1))


def failed_enqueues(caplog):
    """The enqueue that met a broker down logs it and leaves the slot due for the sweep."""
    return [
        record
        for record in caplog.records
        if record.exc_info
        and isinstance(record.exc_info[1], redis.ConnectionError)
        and "Could not enqueue the job of slot" in record.getMessage()
    ]


def statuses():
    return sorted(FreedSlot.objects.values_list("status", flat=True))


def test_it_loses_no_slot_when_the_cluster_is_killed_mid_job(broker_url):
    appointments, _ = a_morning_to_fill(4)
    for appointment in appointments:  # the jobs wait on the broker until the cluster starts
        appointment.cancel("patient called in sick")
    blocker = hold_new_appointments()
    cluster = QCluster(current_database_url(), redis_url=broker_url, workers=WORKERS).start()
    try:
        wait_until(
            lambda: sessions_waiting_for_a_lock() == WORKERS,
            what=lambda: f"both workers inside a job:\n{cluster.output()}",
        )
        cluster.kill()
    finally:
        blocker.close()
        cluster.stop()
    end_other_sessions()

    # The killed jobs' transactions rolled back: every slot is open, every patient still waiting.
    assert statuses() == ["open"] * 4
    assert WaitlistEntry.objects.filter(status="waiting").count() == 4
    with running_qcluster(redis_url=broker_url, workers=WORKERS) as restarted:
        time.sleep(1)
        still_open = FreedSlot.objects.filter(status="open").count()
        if broker_url is not None:
            # The Redis broker lost the killed tasks: nothing but the sweep brings them back.
            assert still_open >= WORKERS
        # On the ORM broker the killed tasks are normally held for their lease ("retry",
        # 60 s), but in some CI runs they ran again at once; either way the sweep must
        # recover whatever is still open, and nothing may be lost or doubled.
        if still_open:
            assert sweep_after_lost_jobs()["requeued_slots"] >= 1
        wait_until(
            lambda: statuses() == ["backfilled"] * 4,
            timeout=20,
            what=lambda: f"every slot backfilled, now {statuses()}:\n{restarted.output()}",
        )
        if broker_url is None:
            # The ORM broker delivers the killed tasks again once their lease ("retry") runs
            # out: shorten it, so the sweep's runs and the redelivered ones both happen.
            OrmQ.objects.update(lock=timezone.now() - timedelta(seconds=1))
            wait_until(
                lambda: not OrmQ.objects.exists(), what=lambda: f"the redelivered tasks to run:\n{restarted.output()}"
            )
    assert WaitlistEntry.objects.filter(status="booked").count() == 4
    assert_nobody_double_booked()


@pytest.mark.redis
def test_it_keeps_cancellations_and_fills_their_slots_after_a_redis_outage(redis_server, monkeypatch, caplog):
    appointments, entries = a_morning_to_fill(3)
    enqueue_to_redis(monkeypatch, redis_server.url)
    with running_qcluster(redis_url=redis_server.url, workers=WORKERS) as cluster:
        redis_server.stop()

        for appointment in appointments:
            appointment.cancel("patient called in sick")

        # The cancellations committed even though their jobs could not be enqueued.
        assert Appointment.objects.filter(pk__in=[a.pk for a in appointments], status="cancelled").count() == 3
        assert statuses() == ["open"] * 3
        assert len(failed_enqueues(caplog)) == 3
        redis_server.start()
        # Due at once, not after LOST_JOB_SECONDS: the sweep's next run (every 30 s) takes them.
        assert sweep()["requeued_slots"] == 3
        # The pusher that lost Redis sleeps 10 s before the sentinel replaces it.
        wait_until(
            lambda: statuses() == ["backfilled"] * 3,
            timeout=40,
            what=lambda: f"every slot backfilled, now {statuses()}:\n{cluster.output()}",
        )
    assert WaitlistEntry.objects.filter(pk__in=[e.pk for e in entries], status="booked").count() == 3
    assert_nobody_double_booked()
