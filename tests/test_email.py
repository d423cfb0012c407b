import pytest
from anymail.exceptions import AnymailAPIError
from anymail.signals import AnymailTrackingEvent, tracking
from django.core import mail

from clinic.email import resend_stuck_emails, send_stored_email
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email

pytestmark = pytest.mark.django_db


def queued(django_capture_on_commit_callbacks, execute=True, **patient):
    appointment = AppointmentFactory(**({"patient__" + k: v for k, v in patient.items()}))
    with django_capture_on_commit_callbacks(execute=execute):
        return queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)


def test_it_stores_and_sends_the_message_after_commit(django_capture_on_commit_callbacks):
    email = queued(django_capture_on_commit_callbacks)
    email.refresh_from_db()
    assert email.status == OutboundEmail.Status.SENT
    assert email.attempts == 1
    assert email.esp_message_id  # anymail's test backend gives every message an id
    assert mail.outbox[0].subject == email.subject
    assert "/appointments/cancel/" in email.text_body


def test_it_does_not_email_a_patient_who_opted_out(django_capture_on_commit_callbacks):
    assert queued(django_capture_on_commit_callbacks, email_opt_out=True) is None
    assert OutboundEmail.objects.count() == 0
    assert mail.outbox == []


def test_a_failed_send_stays_queued_for_a_retry(django_capture_on_commit_callbacks, monkeypatch):
    email = queued(django_capture_on_commit_callbacks, execute=False)

    def refuse(self, *args, **kwargs):
        raise AnymailAPIError("ESP is down")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)
    send_stored_email(email.pk)
    email.refresh_from_db()
    assert (email.status, email.attempts) == (OutboundEmail.Status.QUEUED, 1)
    assert "ESP is down" in email.last_error


def test_it_gives_up_after_the_last_attempt(django_capture_on_commit_callbacks, monkeypatch, settings):
    settings.EMAIL_MAX_ATTEMPTS = 2
    email = queued(django_capture_on_commit_callbacks, execute=False)
    monkeypatch.setattr(
        "django.core.mail.EmailMultiAlternatives.send", lambda self: (_ for _ in ()).throw(OSError("no route"))
    )
    send_stored_email(email.pk)
    send_stored_email(email.pk)
    email.refresh_from_db()
    assert (email.status, email.attempts) == (OutboundEmail.Status.FAILED, 2)


def test_sending_twice_sends_once(django_capture_on_commit_callbacks):
    email = queued(django_capture_on_commit_callbacks)
    send_stored_email(email.pk)
    assert len(mail.outbox) == 1


def test_the_sweep_resends_a_stuck_message(django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    email = queued(django_capture_on_commit_callbacks, execute=False)
    assert resend_stuck_emails(timezone.now()) == 0
    assert resend_stuck_emails(timezone.now() + timedelta(minutes=5)) == 1
    email.refresh_from_db()
    assert email.status == OutboundEmail.Status.SENT


def test_delivery_tracking_updates_the_status_once(django_capture_on_commit_callbacks):
    email = queued(django_capture_on_commit_callbacks)
    email.refresh_from_db()
    event = AnymailTrackingEvent(event_type="delivered", message_id=email.esp_message_id, event_id="evt-1")
    tracking.send(sender=object, event=event, esp_name="TestESP")
    email.refresh_from_db()
    assert email.status == OutboundEmail.Status.DELIVERED
    bounced_replay = AnymailTrackingEvent(event_type="bounced", message_id=email.esp_message_id, event_id="evt-1")
    tracking.send(sender=object, event=bounced_replay, esp_name="TestESP")
    email.refresh_from_db()
    assert email.status == OutboundEmail.Status.DELIVERED
