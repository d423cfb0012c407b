"""A burst of confirmations asks for one send job, not one per message (clinic/email.py).

This process enqueues to the ORM broker (the test database), as the web server and the
cluster's workers do, and nothing consumes it: the tests count the jobs waiting there and
run the send job by hand.
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_q.models import OrmQ

from clinic.email import SEND_JOB, send_queued_emails
from clinic.models import OutboundEmail, PendingJob
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from tests.processes import enqueue_to_orm

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def queue(monkeypatch):
    enqueue_to_orm(monkeypatch)


def waiting_jobs():
    return [job.task["func"] for job in OrmQ.objects.all()]


def confirm(django_capture_on_commit_callbacks, count):
    emails = []
    for _ in range(count):  # one booking (one transaction) each
        with django_capture_on_commit_callbacks(execute=True):
            emails.append(queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, AppointmentFactory()))
    return emails


def test_a_burst_of_bookings_enqueues_one_send_job_which_sends_them_all(django_capture_on_commit_callbacks):
    emails = confirm(django_capture_on_commit_callbacks, 25)
    assert waiting_jobs() == ["clinic.email.send_queued_emails"]

    assert send_queued_emails() == 25

    assert OutboundEmail.objects.filter(pk__in=[e.pk for e in emails], status="sent", attempts=1).count() == 25
    assert sorted(message.to[0] for message in mail.outbox) == sorted(e.recipient for e in emails)


def test_a_message_committed_once_the_job_has_started_gets_a_new_job(django_capture_on_commit_callbacks):
    confirm(django_capture_on_commit_callbacks, 2)
    OrmQ.objects.all().delete()  # the cluster took the job...
    send_queued_emails()  # ...and ran it

    late = confirm(django_capture_on_commit_callbacks, 1)[0]

    assert waiting_jobs() == ["clinic.email.send_queued_emails"]
    send_queued_emails()
    late.refresh_from_db()
    assert late.status == OutboundEmail.Status.SENT


def test_a_job_lost_before_it_started_is_asked_for_again_once_its_mark_is_stale(django_capture_on_commit_callbacks):
    confirm(django_capture_on_commit_callbacks, 1)
    OrmQ.objects.all().delete()  # the job was lost before it started: its mark stays
    confirm(django_capture_on_commit_callbacks, 1)
    assert waiting_jobs() == []

    PendingJob.objects.filter(name=SEND_JOB).update(requested_at=timezone.now() - timedelta(minutes=1))
    confirm(django_capture_on_commit_callbacks, 1)

    assert waiting_jobs() == ["clinic.email.send_queued_emails"]
    assert send_queued_emails() == 3


def test_the_send_job_leaves_failed_messages_to_the_sweep(django_capture_on_commit_callbacks):
    failed, fresh = confirm(django_capture_on_commit_callbacks, 2)
    OutboundEmail.objects.filter(pk=failed.pk).update(attempts=1, last_error="OSError: no route")

    assert send_queued_emails() == 1

    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (OutboundEmail.Status.QUEUED, 1)
    assert [message.to[0] for message in mail.outbox] == [fresh.recipient]


def test_a_send_job_the_broker_refused_is_asked_for_again_by_the_next_message(
    django_capture_on_commit_callbacks, monkeypatch
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    with monkeypatch.context() as outage:
        outage.setattr("clinic.queue.async_task", broker_down)
        confirm(django_capture_on_commit_callbacks, 1)  # the job could not be queued
    assert waiting_jobs() == []

    confirm(django_capture_on_commit_callbacks, 1)  # the broker is back

    assert waiting_jobs() == ["clinic.email.send_queued_emails"]
    assert send_queued_emails() == 2
