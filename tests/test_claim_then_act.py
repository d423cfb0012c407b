"""Claim, then act: senders claim their rows and commit before they talk to the network, so
no row lock is held while an email provider, Twilio, a webhook receiver or the broker is
slow. Each fake here, while "sending", tries to lock the rows from another connection with
NOWAIT (PostgreSQL), which fails at once if the sender still held them."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.db import OperationalError, connections
from django.utils import timezone

from backfill.models import FreedSlot
from clinic import sms
from clinic.email import send_stored_email
from clinic.models import OutboundEmail, WebhookDelivery, WebhookEndpoint
from clinic.webhooks import new_secret
from ops.sweep import sweep
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from tests.webhook_receiver import receiving

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

probes = []


def rows_free(*tables):
    """Whether another connection can lock every row of these tables right now."""
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            for table in tables:
                cursor.execute(f"SELECT 1 FROM {table} FOR UPDATE NOWAIT")
        return True
    except OperationalError:
        return False
    finally:
        other.rollback()
        other.close()


class LockProbingEmailBackend(BaseEmailBackend):
    def send_messages(self, messages):
        probes.extend(rows_free("clinic_outboundemail") for _ in messages)
        return len(messages)


class LockProbingTextBackend:
    def send(self, to, body, status_callback=None):
        probes.append(rows_free("clinic_outboundemail"))
        return "SM-probe"


@pytest.fixture(autouse=True)
def probing(settings):
    settings.EMAIL_BACKEND = "tests.test_claim_then_act.LockProbingEmailBackend"
    settings.SMS_BACKEND = "tests.test_claim_then_act.LockProbingTextBackend"
    probes.clear()
    sms.outbox.clear()


def message_for(patient_fields):
    return queue_email(OutboundEmail.Kind.CLINIC_CANCELLATION, AppointmentFactory(**patient_fields))


def test_the_send_job_holds_no_lock_while_the_email_provider_answers():
    message_for({})  # autocommit: the send job runs once it is stored (tests.settings: in-process queue)

    assert probes == [True]
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT


def test_a_text_is_sent_with_no_lock_held_on_its_row():
    message_for({"patient__preferred_channel": "sms", "patient__sms_consent": True})

    assert probes == [True]
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT


def test_a_message_claimed_by_another_sender_is_not_sent_again():
    with mock.patch("clinic.email.request_send"):  # nobody sends it yet
        email = message_for({})
    OutboundEmail.objects.filter(pk=email.pk).update(status=OutboundEmail.Status.SENDING, claimed_at=timezone.now())

    assert send_stored_email(email.pk) is None
    assert probes == []


def test_the_sweep_retakes_a_claim_whose_sender_died():
    with mock.patch("clinic.email.request_send"):
        email = message_for({})
    died_at = timezone.now() - timedelta(minutes=11)
    OutboundEmail.objects.filter(pk=email.pk).update(status=OutboundEmail.Status.SENDING, claimed_at=died_at)

    sweep()

    assert probes == [True]
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT


def test_a_webhook_is_posted_with_no_lock_held_on_its_delivery_endpoint_or_event(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the receiver listens on loopback
    appointment = AppointmentFactory()
    free = []
    with receiving(
        on_post=lambda: free.append(rows_free("clinic_webhookdelivery", "clinic_webhookendpoint"))
    ) as receiver:
        WebhookEndpoint.objects.create(url=receiver.url, events=["appointment.cancelled"], secret=new_secret())
        appointment.cancel("sick", by="frontdesk")  # autocommit: the delivery job runs at once

    assert free == [True]
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.DELIVERED


def test_the_sweep_enqueues_due_slots_with_no_lock_held():
    appointment = AppointmentFactory()
    with mock.patch("backfill.models.enqueue"):
        appointment.cancel("sick")  # recorded; its job is lost
    FreedSlot.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    with mock.patch(
        "backfill.models.enqueue", side_effect=lambda *a, **k: probes.append(rows_free("backfill_freedslot"))
    ):
        result = sweep()

    assert result["requeued_slots"] == 1
    assert probes == [True]
