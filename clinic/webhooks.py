"""Webhook deliveries: events to integrators' endpoints, signed (Standard Webhooks 1.0).

Off the hot path: a change only inserts its event row (clinic.events). After commit one job
is asked for per burst; it fans new events out to the endpoints that want them, then sends.
Each endpoint is claimed by one sender at a time (a conditional UPDATE that must change one
row), which sends its deliveries oldest event first, and an event waits while an earlier
event of the same object is still undelivered: events of one object arrive in order.

A failed delivery is retried with exponential backoff (30 s, 1, 2, 4... min, at most an hour
apart) for WEBHOOK_RETRY_HOURS, then marked failed; an endpoint whose every delivery failed
for that long is disabled and the clinic managers are told. The sweep asks for the job
whenever a retry is due, so a receiver, broker or worker that was down loses nothing.

Each connection goes only to an address checked right before it (clinic.addresses: never an
internal one unless WEBHOOK_ALLOW_PRIVATE), redirects are not followed (a 3xx is a failed
delivery), and the delivery log keeps the status code or a generic error class, never what
the receiver answered: the log must not turn the server into a probe of other hosts.
"""

import base64
import http.client
import json
import logging
import secrets
import ssl
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from clinic.addresses import AddressRefused, HostNotFound, check_url, checked_addresses, connect, default_port
from clinic.models import DeliveryAttempt, Event, PendingJob, WebhookDelivery, WebhookEndpoint
from clinic.queue import enqueue, enqueue_unless_pending, started

log = logging.getLogger("clinic")

JOB = "deliver-webhooks"
FAN_OUT_BATCH = 500
CLAIM_SECONDS = 120
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
SEND_SECONDS = 10.0


def new_secret():
    # Standard Webhooks secrets: "whsec_" and 24 to 64 random bytes in base64.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def request_delivery():
    """After an event commits: ask for one job per burst, if any endpoint listens."""
    if WebhookEndpoint.any_active():
        request_delivery_now()


def deliver():
    """The job: passes of fanning out what is new and sending what is due, endpoint by endpoint.

    At most one run is queued or running: its mark (PendingJob) is held until the run ends,
    so the hundreds of commits of a busy minute do not each queue a run. While events keep
    coming, the run pauses WEBHOOK_BATCH_SECONDS between passes so that each pass sends a
    burst's events together: a pass costs a dozen statements however few it sends. The
    run ends when a pass finds nothing, or after SEND_SECONDS; then it queues its
    continuation, which keeps the run's worker from being held for good.
    """
    deadline = time.monotonic() + SEND_SECONDS
    total = 0
    while True:
        sent, more = send_pass(deadline)
        total += sent
        if more or (sent and time.monotonic() + settings.WEBHOOK_BATCH_SECONDS > deadline):
            PendingJob.objects.filter(name=JOB).update(requested_at=timezone.now())  # still held, not stale
            enqueue("clinic.webhooks.deliver", queue=settings.WEBHOOK_QUEUE, group="webhooks")
            return total
        if not sent:
            break
        time.sleep(settings.WEBHOOK_BATCH_SECONDS)
    started(JOB)  # the mark goes: what commits from now on asks for a run of its own
    # An event committed during this run found the mark and asked for nothing: look once more.
    if Event.objects.filter(fanned_out=False).exists():
        request_delivery_now()
    return total


def send_pass(deadline):
    fan_out()
    sent, more = 0, False
    for endpoint_id in WebhookEndpoint.objects.filter(active=True).values_list("pk", flat=True):
        count, left = send_for(endpoint_id, deadline)
        sent, more = sent + count, more or left
    return sent, more


def fan_out():
    """One delivery per new event and endpoint that wants it; each event only once."""
    while True:
        with transaction.atomic():
            # Not the payload: sending reads it; fanning out only needs who wants the event.
            events = list(
                Event.objects.select_for_update(skip_locked=True)
                .filter(fanned_out=False)
                .only("type", "occurred_at")
                .order_by("pk")[:FAN_OUT_BATCH]
            )
            if not events:
                return
            endpoints = list(WebhookEndpoint.objects.filter(active=True))
            WebhookDelivery.objects.bulk_create(
                [
                    WebhookDelivery(endpoint=endpoint, event=event)
                    for event in events
                    for endpoint in endpoints
                    if endpoint.wants(event.type) and endpoint.created_at <= event.occurred_at
                ],
                ignore_conflicts=True,
            )
            Event.objects.filter(pk__in=[event.pk for event in events]).update(fanned_out=True)


def claim(endpoint_id, now):
    until = now + timedelta(seconds=CLAIM_SECONDS)
    return (
        WebhookEndpoint.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), pk=endpoint_id, active=True
        ).update(claimed_until=until)
        == 1
    )


def send_for(endpoint_id, deadline=float("inf")):
    """Send the endpoint's due deliveries in order; returns (sent, whether some are left for another run)."""
    now = timezone.now()
    if not claim(endpoint_id, now):
        return 0, False  # another sender has it; it sends these too
    try:
        poster = Poster(WebhookEndpoint.objects.get(pk=endpoint_id))
        try:
            return send_due(poster, deadline)
        finally:
            poster.close()
    finally:
        WebhookEndpoint.objects.filter(pk=endpoint_id).update(claimed_until=None)


def send_due(poster, deadline):
    sent, endpoint = 0, poster.endpoint
    while due := next_due(endpoint):
        delivered = []
        for delivery in due:
            if not attempt(poster, delivery, delivered):
                record_delivered(endpoint, delivered)
                return sent + len(delivered), False  # the receiver is failing: the rest wait for the next retry
            if time.monotonic() > deadline:  # after one at least: every run makes progress
                record_delivered(endpoint, delivered)
                return sent + len(delivered), True
        record_delivered(endpoint, delivered)
        sent += len(delivered)
    return sent, False


def next_due(endpoint, scan=200):
    """The next due pending deliveries, oldest event first, none of an object that has an
    earlier delivery still waiting for its retry (those wait too)."""
    pending = (
        WebhookDelivery.objects.filter(endpoint=endpoint, status=WebhookDelivery.Status.PENDING)
        .select_related("event")
        .order_by("event_id")[:scan]
    )
    blocked, due = set(), []
    now = timezone.now()
    for delivery in pending:
        subject = delivery.event.subject
        if subject in blocked:
            continue
        if delivery.next_attempt_at <= now:
            due.append(delivery)
        else:
            blocked.add(subject)
    return due


def body_of(event):
    return json.dumps(
        {
            "type": event.type,
            "timestamp": event.occurred_at.isoformat(),
            "data": event.payload,
        },
        separators=(",", ":"),
        default=str,
    )


def pinned_connection(url, addresses, timeout):
    """An http.client connection whose TCP connection goes only to the addresses checked for
    it (DNS rebinding: the name is not resolved again); the Host header, TLS's SNI and the
    certificate check keep the URL's name."""
    kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = kind(url.hostname, url.port, timeout=timeout)
    # http.client opens its socket through this attribute (HTTPConnection.connect).
    connection._create_connection = lambda _address, timeout, source_address=None: connect(
        addresses, timeout, source_address
    )
    return connection


class Poster:
    """One endpoint's sending for one run: the signer made once, and one connection kept
    open between POSTs when the receiver allows it (each new one is a TCP, maybe TLS, setup)."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.signer = Webhook(endpoint.secret)
        self.connection = None

    def headers(self, event, body, at):
        return {
            "Content-Type": "application/json",
            "User-Agent": "Backfill-Webhooks/1.0",
            "webhook-id": event.webhook_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self.signer.sign(event.webhook_id, at, body),
        }

    def post(self, body, headers):
        """The status code; raises OSError, AddressRefused or HTTPException when no answer came."""
        reused = self.connection is not None
        try:
            return self._post(body, headers)
        except (OSError, http.client.HTTPException):
            self.close()
            if not reused:
                raise
            # The receiver closed the idle connection we kept: once more on a new one. A
            # repeat is harmless: receivers drop it by its webhook-id.
            return self._post(body, headers)

    def open(self):
        """A new connection, to an address checked now: the URL's name may resolve elsewhere
        than when the endpoint was saved."""
        allow_private = settings.WEBHOOK_ALLOW_PRIVATE
        url = check_url(self.endpoint.url, allow_private=allow_private, resolve=False)
        addresses = checked_addresses(url.hostname, url.port or default_port(url.scheme), allow_private=allow_private)
        return url, pinned_connection(url, addresses, settings.WEBHOOK_TIMEOUT_SECONDS)

    def _post(self, body, headers):
        if self.connection is None:
            self.url, self.connection = self.open()
        path = (self.url.path or "/") + (f"?{self.url.query}" if self.url.query else "")
        self.connection.request("POST", path, body=body.encode(), headers=headers)
        response = self.connection.getresponse()
        response.read(65536)  # read, to keep the connection; never kept
        if not response.isclosed():  # a long answer: not worth reading to keep the connection
            self.close()
        return response.status

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def failure_class(failure):
    """What the delivery log says of a POST that got no answer: a class, not the details
    (which would tell what listens where)."""
    if isinstance(failure, AddressRefused):
        return failure.kind
    if isinstance(failure, HostNotFound):
        return "host not found"
    if isinstance(failure, ssl.SSLError):
        return "TLS error"
    if isinstance(failure, TimeoutError):
        return "timed out"
    if isinstance(failure, ConnectionRefusedError):
        return "connection refused"
    if isinstance(failure, http.client.HTTPException):
        return "bad HTTP answer"
    return "connection failed"


def attempt(poster, delivery, delivered):
    """POST once. Taken (2xx): appended to `delivered`, recorded with its batch; otherwise
    recorded now. True when the receiver took it."""
    event = delivery.event
    body = body_of(event)
    at = timezone.now()
    status_code, error = None, ""
    began = time.monotonic()
    try:
        status_code = poster.post(body, poster.headers(event, body, at))
    except (OSError, ValueError, http.client.HTTPException) as failure:  # refused, timed out, unreachable, bad URL
        error = failure_class(failure)
    duration_ms = int((time.monotonic() - began) * 1000)
    kept = DeliveryAttempt(
        delivery=delivery, attempted_at=at, status_code=status_code, error=error, duration_ms=duration_ms
    )
    if status_code is not None and 200 <= status_code < 300:
        delivered.append(kept)
        return True
    record_failed(delivery, kept)
    return False


def record_delivered(endpoint, attempts):
    """One transaction for a batch of taken deliveries. Should the worker die before it, they
    are sent again: receivers tell a repeat by its webhook-id (Standard Webhooks)."""
    if not attempts:
        return
    now = timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(attempts)
        WebhookDelivery.objects.filter(pk__in=[kept.delivery_id for kept in attempts]).update(
            status=WebhookDelivery.Status.DELIVERED, delivered_at=now, attempts=F("attempts") + 1
        )
        if endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
            endpoint.failing_since = None
    for kept in attempts:
        log.info(
            "webhook.delivered endpoint=%s event=%s attempt=%s status=%s ms=%s",
            endpoint.pk,
            kept.delivery.event_id,
            kept.delivery.attempts + 1,
            kept.status_code,
            kept.duration_ms,
        )


def record_failed(delivery, kept):
    now = kept.attempted_at
    with transaction.atomic():
        kept.save()
        delivery.attempts += 1
        if now - delivery.event.occurred_at >= timedelta(hours=settings.WEBHOOK_RETRY_HOURS):
            delivery.status = WebhookDelivery.Status.FAILED
        else:
            backoff = min(FIRST_RETRY_SECONDS * 2 ** (delivery.attempts - 1), MAX_RETRY_SECONDS)
            delivery.next_attempt_at = now + timedelta(seconds=backoff)
        delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
        note_failure(delivery.endpoint_id, now)
    log.info(
        "webhook.failed endpoint=%s event=%s attempt=%s status=%s ms=%s",
        delivery.endpoint_id,
        delivery.event_id,
        delivery.attempts,
        kept.status_code or kept.error,
        kept.duration_ms,
    )


def note_failure(endpoint_id, now):
    WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(failing_since=now)
    cutoff = now - timedelta(hours=settings.WEBHOOK_RETRY_HOURS)
    disabled = WebhookEndpoint.objects.filter(pk=endpoint_id, active=True, failing_since__lte=cutoff).update(
        active=False, disabled_reason=f"Every delivery failed for {settings.WEBHOOK_RETRY_HOURS} hours."
    )
    if disabled:
        transaction.on_commit(lambda: tell_managers(endpoint_id), robust=True)


def tell_managers(endpoint_id):
    endpoint = WebhookEndpoint.objects.select_related("owner").get(pk=endpoint_id)
    recipients = list(
        User.objects.filter(groups__name="Clinic manager", is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if endpoint.owner and endpoint.owner.is_active and endpoint.owner.email not in ("", *recipients):
        recipients.append(endpoint.owner.email)  # the integrator who made it can fix the receiver
    log.warning("webhook.endpoint_disabled endpoint=%s", endpoint_id)
    if recipients:
        send_mail(
            f"Webhook endpoint disabled: {endpoint}",
            f"Backfill stopped sending events to {endpoint.url}: {endpoint.disabled_reason}\n"
            "Check the receiver, then tick Active again on the endpoint in the admin; failed events can be re-sent.",
            None,
            recipients,
        )


def resend(deliveries):
    """Failed deliveries go out again, as if new (staff or an integrator asked)."""
    count = deliveries.filter(status=WebhookDelivery.Status.FAILED).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=timezone.now()
    )
    if count:
        transaction.on_commit(request_delivery_now, robust=True)
    return count


def request_delivery_now():
    enqueue_unless_pending(
        JOB, "clinic.webhooks.deliver", expires_after=60, queue=settings.WEBHOOK_QUEUE, group="webhooks"
    )


def retries_due(now):
    """For the sweep: ask for the job when a retry is due or events wait to fan out."""
    if not WebhookEndpoint.objects.filter(active=True).exists():
        return 0  # nobody listens: the events stay recorded, and no run is asked for
    due = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now, endpoint__active=True
    ).exists()
    if due or Event.objects.filter(fanned_out=False, occurred_at__lte=now - timedelta(seconds=30)).exists():
        request_delivery_now()
        return 1
    return 0
