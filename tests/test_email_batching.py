"""A burst of confirmations asks for one send job, not one per message (clinic/email.py).

This process enqueues to a Redis database of this file's own, as the web server and the
cluster's workers do, and nothing consumes it: the tests count the jobs waiting there and
run the send job by hand.
"""

import pytest
import redis
from django.core import mail
from django_q.signing import SignedPackage

from clinic.email import queue_email, send_queued_emails
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from tests.processes import enqueue_to_redis

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

REDIS_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def queue(monkeypatch):
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    enqueue_to_redis(monkeypatch, REDIS_URL)
    yield connection
    connection.flushdb()


def waiting_jobs(queue):
    return [SignedPackage.loads(job)["func"] for key in queue.keys("django_q:*:q") for job in queue.lrange(key, 0, -1)]


def confirm(django_capture_on_commit_callbacks, count):
    emails = []
    for _ in range(count):  # one booking (one transaction) each
        with django_capture_on_commit_callbacks(execute=True):
            emails.append(queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, AppointmentFactory()))
    return emails


def test_a_burst_of_bookings_enqueues_one_send_job_which_sends_them_all(queue, django_capture_on_commit_callbacks):
    emails = confirm(django_capture_on_commit_callbacks, 25)
    assert waiting_jobs(queue) == ["clinic.email.send_queued_emails"]

    assert send_queued_emails() == 25

    assert OutboundEmail.objects.filter(pk__in=[e.pk for e in emails], status="sent", attempts=1).count() == 25
    assert sorted(message.to[0] for message in mail.outbox) == sorted(e.recipient for e in emails)


def test_a_message_committed_once_the_job_has_started_gets_a_new_job(queue, django_capture_on_commit_callbacks):
    confirm(django_capture_on_commit_callbacks, 2)
    queue.delete(*queue.keys("django_q:*:q"))  # the cluster took the job...
    send_queued_emails()  # ...and ran it

    late = confirm(django_capture_on_commit_callbacks, 1)[0]

    assert waiting_jobs(queue) == ["clinic.email.send_queued_emails"]
    send_queued_emails()
    late.refresh_from_db()
    assert late.status == OutboundEmail.Status.SENT


def test_the_send_job_leaves_failed_messages_to_the_sweep(queue, django_capture_on_commit_callbacks):
    failed, fresh = confirm(django_capture_on_commit_callbacks, 2)
    OutboundEmail.objects.filter(pk=failed.pk).update(attempts=1, last_error="OSError: no route")

    assert send_queued_emails() == 1

    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (OutboundEmail.Status.QUEUED, 1)
    assert [message.to[0] for message in mail.outbox] == [fresh.recipient]
