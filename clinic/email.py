"""Outgoing email and texts: every message is stored first, then sent after commit by a job.

One job sends every message not tried yet; a burst of bookings asks for it once, not once
per message (clinic.queue.enqueue_unless_pending). The sweep gives a message whose send
failed or whose job was lost a job of its own. Claim, then act (as healthchecks' sendalerts):
a sender claims a queued row with a conditional UPDATE (queued -> sending) and commits, and
only then talks to the provider, holding no lock; the outcome is written only while the
claim is still its own. A retry or a redelivered task finds the row no longer queued and
sends nothing; a claim whose sender died is retaken by the sweep.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from clinic import languages, prepared, sms
from clinic.models import OutboundEmail, Patient
from clinic.queue import enqueue, enqueue_unless_pending, started

log = logging.getLogger("clinic")

RESEND_AFTER = timedelta(minutes=2)
# A sender that has held a claim this long died mid-send (a send times out in EMAIL_TIMEOUT):
# the sweep queues the message again. Should it have gone out after all, it goes twice;
# a message is never lost.
SEND_CLAIM_TIMEOUT = timedelta(minutes=10)
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
    # In the patient's language (docs/reference.md, Languages), whoever's request or job this is.
    with languages.for_patient(patient):
        composed = [COMPOSE[channel](kind, patient, context, appointment) for channel in channels]
    # One INSERT for both channels: a backfill's worker pays the ORM's price per statement.
    stored = prepared.insert(composed)
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
    # A text shows on a locked screen: the time, the place and what to do, never a specialty
    # or a reason; the provider's name only where SMS_NAME_PROVIDER says (docs/operations.md).
    provider, location = context.get("provider"), context.get("location")
    named = settings.SMS_NAME_PROVIDER and provider
    context = {
        **context,
        "short": sms.short_links_for(kind, context.get("links", {})),
        "with_provider": gettext(" with {name}").format(name=provider.name) if named else "",
        "new_provider": provider.name if named else gettext("another provider"),
        # Every text names whom to call: the site's own phone, else the clinic's.
        "clinic_phone": (location.phone if location else "") or settings.CLINIC_PHONE,
    }
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
    sent = 0
    while batch := claim_batch():
        sent += send_batch(batch)
    return sent


def send_batch(batch):
    """Send each claimed message, then record the batch's successes in one statement (a
    failure is recorded at once). Should the worker die before that, the sweep retakes the
    claims and sends them again: at most SEND_BATCH messages twice, never one lost."""
    taken = []
    for email in batch:
        try:
            taken.append((email, _send_text(email) if email.is_text else _send_email(email)))
        except Exception as error:  # any ESP or network failure: keep the row, retry later
            _record_failure(email, error)
    _record_sent(taken)
    return len(taken)


def claim_batch():
    """Claim the oldest untried messages for this sender, and commit before any is sent.

    On PostgreSQL a batch at once: SKIP LOCKED passes over rows another sender is claiming
    in this instant. Elsewhere (SQLite) one conditional UPDATE per message decides.
    """
    untried = OutboundEmail.objects.filter(status=OutboundEmail.Status.QUEUED, attempts=0).order_by("pk")
    now = timezone.now()
    if not connection.features.has_select_for_update_skip_locked:
        claimed = (claim(pk, now) for pk in untried.values_list("pk", flat=True)[:SEND_BATCH])
        return [email for email in claimed if email is not None]
    with transaction.atomic():
        ids = list(untried.select_for_update(skip_locked=True).values_list("pk", flat=True)[:SEND_BATCH])
        OutboundEmail.objects.filter(pk__in=ids).update(status=OutboundEmail.Status.SENDING, claimed_at=now)
    return list(OutboundEmail.objects.filter(pk__in=ids).order_by("pk"))


def claim(email_id, now=None):
    """The queued message, claimed for this sender; None when another has it or it is done."""
    now = now or timezone.now()
    claimed = OutboundEmail.objects.filter(pk=email_id, status=OutboundEmail.Status.QUEUED).update(
        status=OutboundEmail.Status.SENDING, claimed_at=now
    )
    return OutboundEmail.objects.get(pk=email_id) if claimed == 1 else None


def enqueue_send(email_id):
    enqueue("clinic.email.send_stored_email", email_id, group="email", task_name=f"email-{email_id}")


def send_stored_email(email_id):
    email = claim(email_id)
    return send_claimed(email) if email is not None else None


def send_claimed(email):
    """Send a message this sender claimed (an email or a text), no transaction open, and
    record the outcome, unless the sweep retook the claim meanwhile."""
    try:
        message_id = _send_text(email) if email.is_text else _send_email(email)
    except Exception as error:  # any ESP or network failure: keep the row, retry later
        return _record_failure(email, error)
    _record_sent([(email, message_id)])
    return OutboundEmail.Status.SENT


def _record_sent(taken):
    """Mark sent what the provider took, each only while its claim is still this sender's:
    one UPDATE per claim (a batch shares one), the provider's ids by message."""
    now = timezone.now()
    by_claim = {}
    for email, message_id in taken:
        by_claim.setdefault(email.claimed_at, {})[email.pk] = message_id
    for claimed_at, ids in by_claim.items():
        named = [When(pk=pk, then=Value(message_id)) for pk, message_id in ids.items() if message_id]
        OutboundEmail.objects.filter(pk__in=ids, status=OutboundEmail.Status.SENDING, claimed_at=claimed_at).update(
            status=OutboundEmail.Status.SENT,
            sent_at=now,
            esp_message_id=Case(*named, default=Value("")) if named else "",
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    for email, _ in taken:
        log.info(
            "%s.sent id=%s kind=%s appointment=%s",
            "sms" if email.is_text else "email",
            email.pk,
            email.kind,
            email.appointment_id,
        )


def _record_failure(email, error):
    email.attempts += 1
    email.last_error = f"{type(error).__name__}: {error}"[:2000]
    email.status = OutboundEmail.Status.QUEUED if email.can_retry else OutboundEmail.Status.FAILED
    OutboundEmail.objects.filter(pk=email.pk, status=OutboundEmail.Status.SENDING, claimed_at=email.claimed_at).update(
        status=email.status, attempts=email.attempts, last_error=email.last_error, updated_at=timezone.now()
    )
    log.warning("email.failed id=%s attempt=%s error=%s", email.pk, email.attempts, email.last_error)
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
    """For the sweep: queued messages whose send failed or whose job was lost, and claims
    older than SEND_CLAIM_MINUTES (their sender died mid-send), each get a job of their own.

    Each is taken with a conditional UPDATE, so two sweeps at once enqueue it once.
    """
    stale_claims = OutboundEmail.objects.filter(
        status=OutboundEmail.Status.SENDING, claimed_at__lte=now - SEND_CLAIM_TIMEOUT
    )
    stuck = OutboundEmail.objects.filter(status=OutboundEmail.Status.QUEUED, updated_at__lte=now - RESEND_AFTER)
    retaken = 0
    for email_id in [*stale_claims.values_list("pk", flat=True)[:500], *stuck.values_list("pk", flat=True)[:500]]:
        again = OutboundEmail.objects.filter(pk=email_id).filter(
            Q(status=OutboundEmail.Status.SENDING, claimed_at__lte=now - SEND_CLAIM_TIMEOUT)
            | Q(status=OutboundEmail.Status.QUEUED, updated_at__lte=now - RESEND_AFTER)
        )
        if again.update(status=OutboundEmail.Status.QUEUED, claimed_at=None, updated_at=now) == 1:
            enqueue_send(email_id)
            retaken += 1
    return retaken
