"""Outgoing email: every message is stored first, then sent after commit by a job (SPEC 7).

One job sends every message not tried yet; a burst of bookings asks for it once, not once
per message (clinic.queue.enqueue_unless_pending). The sweep gives a message whose send
failed or whose job was lost a job of its own. Both lock the stored row and skip it unless it
is still queued, so a retry or a redelivered task never sends a message twice.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from clinic import sms
from clinic.models import OutboundEmail, Patient
from clinic.queue import enqueue, enqueue_unless_pending, started

log = logging.getLogger("clinic")

RESEND_AFTER = timedelta(minutes=2)
SEND_JOB = "send-queued-emails"
# Messages sent per transaction: fewer commits, and a crash mid-batch can resend at most this many.
SEND_BATCH = 10
UNSUBSCRIBE_SALT = "clinic.email.unsubscribe"


def queue_patient_email(kind, patient, context, appointment=None):
    """Store a message for a patient (about an appointment, or e.g. a slot offered before
    any appointment exists) on each channel that reaches them, and send it once committed.

    Returns the email when one was stored (callers and tests read it), else the text or None.
    """
    channels = patient.message_channels()
    if not channels:
        log.info(
            "message.skipped kind=%s appointment=%s patient=%s reason=opted_out",
            kind,
            appointment.pk if appointment else None,
            patient.pk,
        )
        return None
    context = {"patient": patient, "site_url": settings.SITE_URL, "clinic_phone": settings.CLINIC_PHONE, **context}
    # One INSERT for both channels: a backfill's worker pays the ORM's price per statement.
    stored = OutboundEmail.objects.bulk_create(
        [COMPOSE[channel](kind, patient, context, appointment) for channel in channels]
    )
    transaction.on_commit(request_send, robust=True)
    return stored[0]


def _compose_email(kind, patient, context, appointment):
    template = f"emails/{kind}"
    context = {**context, "unsubscribe_url": unsubscribe_url(patient.pk)}
    return OutboundEmail(
        kind=kind,
        channel=OutboundEmail.Channel.EMAIL,
        patient=patient,
        recipient=patient.email,
        subject=subject_line(render_to_string(f"{template}_subject.txt", context)),
        text_body=render_to_string(f"{template}.txt", context),
        html_body=render_to_string(f"{template}.html", context),
        appointment=appointment,
    )


def _compose_text(kind, patient, context, appointment):
    context = {**context, "short": sms.ShortLinks(context.get("links", {}))}
    body = sms.gsm_friendly(" ".join(render_to_string(f"sms/{kind}.txt", context).split()))
    if sms.segments(body) > sms.MAX_SEGMENTS:
        log.warning("sms.long kind=%s patient=%s segments=%s", kind, patient.pk, sms.segments(body))
    return OutboundEmail(
        kind=kind,
        channel=OutboundEmail.Channel.SMS,
        patient=patient,
        recipient=str(patient.phone),
        text_body=body,
        appointment=appointment,
    )


COMPOSE = {OutboundEmail.Channel.EMAIL: _compose_email, OutboundEmail.Channel.SMS: _compose_text}


def subject_line(text):
    """A header is one line: whatever a name or a reason carried, the subject never breaks
    it (BadHeaderError left messages stuck). The templates render it unescaped: it is
    plain text, and "O'Neil & Sons" must not arrive as "O&#x27;Neil &amp; Sons"."""
    return " ".join(text.split())


def request_send():
    enqueue_unless_pending(SEND_JOB, "clinic.email.send_queued_emails", expires_after=30, group="email")


def send_queued_emails():
    """Send every message not tried yet, oldest first; returns how many were sent."""
    started(SEND_JOB)
    # Without row locks (SQLite) a transaction holds the whole database's write lock while
    # it talks to the ESP: there, one message per transaction, so bookings wait for one send.
    batch_size = SEND_BATCH if connection.features.has_select_for_update_skip_locked else 1
    sent = 0
    while True:
        with transaction.atomic():
            batch = list(
                OutboundEmail.objects.select_for_update(skip_locked=True)
                .filter(status=OutboundEmail.Status.QUEUED, attempts=0)
                .order_by("pk")[:batch_size]
            )
            sent += sum(_send(email) == OutboundEmail.Status.SENT for email in batch)
        if len(batch) < batch_size:
            return sent


def enqueue_send(email_id):
    enqueue("clinic.email.send_stored_email", email_id, group="email", task_name=f"email-{email_id}")


def send_stored_email(email_id):
    with transaction.atomic():
        email = (
            OutboundEmail.objects.select_for_update().filter(pk=email_id, status=OutboundEmail.Status.QUEUED).first()
        )
        if email is None:
            return None
        return _send(email)


def _send(email):
    """Send a locked, queued message (an email or a text) and record the outcome on it."""
    email.attempts += 1
    try:
        message_id = _send_text(email) if email.is_text else _send_email(email)
    except Exception as error:  # any ESP or network failure: keep the row, retry later
        email.last_error = f"{type(error).__name__}: {error}"[:2000]
        email.status = OutboundEmail.Status.QUEUED if email.can_retry else OutboundEmail.Status.FAILED
        email.save(update_fields=["attempts", "last_error", "status", "updated_at"])
        log.warning("email.failed id=%s attempt=%s error=%s", email.pk, email.attempts, email.last_error)
        return email.status
    email.status = OutboundEmail.Status.SENT
    email.sent_at = timezone.now()
    email.esp_message_id = message_id
    email.save(update_fields=["attempts", "status", "sent_at", "esp_message_id", "updated_at"])
    log.info(
        "%s.sent id=%s kind=%s appointment=%s",
        "sms" if email.is_text else "email",
        email.pk,
        email.kind,
        email.appointment_id,
    )
    return email.status


def _send_email(email):
    message = EmailMultiAlternatives(
        email.subject,
        email.text_body,
        settings.DEFAULT_FROM_EMAIL,
        [email.recipient],
        headers=unsubscribe_headers(email),
    )
    if email.html_body:
        message.attach_alternative(email.html_body, "text/html")
    message.send()
    return _esp_message_id(message)


def _send_text(email):
    return sms.send_text(email.recipient, email.text_body)


def unsubscribe_url(patient_id):
    return settings.SITE_URL + reverse("unsubscribe", kwargs={"token": unsubscribe_token(patient_id)})


def unsubscribe_token(patient_id):
    return signing.dumps({"p": patient_id}, salt=UNSUBSCRIBE_SALT, compress=True)


def read_unsubscribe_token(token):
    """The patient a one-click unsubscribe link names, or None for a forged or altered one."""
    try:
        payload = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    return Patient.objects.filter(pk=payload.get("p")).first()


def unsubscribe_headers(email):
    """RFC 8058: a mail client's own Unsubscribe button POSTs to this link, no page shown."""
    if email.patient_id is None:
        return {}
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(email.patient_id)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _esp_message_id(message):
    status = getattr(message, "anymail_status", None)
    if status is None or status.message_id is None:
        return ""
    return str(status.message_id)


def resend_stuck_emails(now):
    """Queued messages whose send job failed or was lost get another job (called by the sweep)."""
    stuck = list(
        OutboundEmail.objects.filter(
            status=OutboundEmail.Status.QUEUED, updated_at__lte=now - RESEND_AFTER
        ).values_list("pk", flat=True)[:500]
    )
    OutboundEmail.objects.filter(pk__in=stuck).update(updated_at=now)
    for email_id in stuck:
        enqueue_send(email_id)
    return len(stuck)
