"""Webhook deliveries: events to integrators' endpoints, signed (Standard Webhooks 1.0).

Off the hot path: a change only inserts its event row (clinic.events). After commit one job
is asked for per burst; it sends, endpoint by endpoint. Each endpoint is claimed by one sender
at a time (a conditional UPDATE that must change one row), which sends oldest event first,
and an event waits while an earlier event of the same object is still undelivered: events of
one object arrive in order.

Written once: the sender reads the endpoint's new events straight from Event, past the
endpoint's mark (WebhookProgress.sent_through), and a delivery the receiver takes is one row
inserted already delivered, its POST's status code and duration folded in. A pending row is
written only for a POST that failed, and for the events that must wait behind it (a later
event of the same object; the rest of a batch whose receiver is failing). Nothing is written
back to an event, and a delivered row is never updated: the sweep deletes it after
WEBHOOK_DELIVERY_RETENTION_DAYS.

Which events an endpoint has not been sent yet, without a write per event: those past its mark
that have no delivery row of the endpoint. Ids are handed out at insert while transactions
commit in any order, so the mark moves only past ids whose transactions have all ended
(`settled_through`): an event committing late below a delivered one is found by the same
query, as it has no row yet. A crash between a POST and its row sends the event again;
receivers drop the repeat by its webhook-id (Standard Webhooks).

A failed delivery is retried with exponential backoff (30 s, 1, 2, 4... min, at most an hour
apart) for WEBHOOK_RETRY_HOURS, then marked failed; an endpoint whose every delivery failed
for that long is disabled and the clinic managers are told. The sweep asks for the job
whenever a retry is due or an event waits unsent, so a receiver, broker or worker that was
down loses nothing.

Each connection goes only to an address checked right before it (clinic.addresses: never an
internal one unless WEBHOOK_ALLOW_PRIVATE), redirects are not followed (a 3xx is a failed
delivery), and the delivery log keeps the status code or a generic error class, never what
the receiver answered: the log must not turn the server into a probe of other hosts.
"""

import base64
import collections
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
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from psycopg.types.numeric import Int8
from standardwebhooks.webhooks import Webhook

from clinic import prepared
from clinic.addresses import AddressRefused, HostNotFound, check_url, checked_addresses, connect, default_port
from clinic.models import DeliveryAttempt, Event, PendingJob, WebhookDelivery, WebhookEndpoint, WebhookProgress
from clinic.queue import enqueue, enqueue_unless_pending, started

log = logging.getLogger("clinic")

JOB = "deliver-webhooks"
SCAN = 200  # events or pending deliveries read at once
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
    """The job: passes of sending what is new or due, endpoint by endpoint.

    At most one run is queued or running: its mark (PendingJob) is held until the run ends,
    so the hundreds of commits of a busy minute do not each queue a run. While events keep
    coming, the run pauses WEBHOOK_BATCH_SECONDS between passes so that each pass sends a
    burst's events together: a pass costs a dozen statements however few it sends. The
    run ends when a pass finds nothing, or after SEND_SECONDS; then it queues its
    continuation, which keeps the run's worker from being held for good.
    """
    deadline = time.monotonic() + SEND_SECONDS
    total, elsewhere = 0, set()
    while True:
        sent, more = send_pass(deadline, elsewhere)
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
    # Not at the endpoints another sender holds: it looks at them as its own run ends.
    if any_unsent(exclude=elsewhere):
        request_delivery_now()
    return total


def send_pass(deadline, elsewhere=None):
    sent, more = 0, False
    for endpoint_id in WebhookEndpoint.objects.filter(active=True).values_list("pk", flat=True):
        count, left = send_for(endpoint_id, deadline, elsewhere)
        sent, more = sent + count, more or left
    return sent, more


def claim(endpoint_id, now):
    until = now + timedelta(seconds=CLAIM_SECONDS)
    return (
        WebhookEndpoint.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), pk=endpoint_id, active=True
        ).update(claimed_until=until)
        == 1
    )


def send_for(endpoint_id, deadline=float("inf"), elsewhere=None):
    """Send the endpoint's due deliveries and new events in order; returns (sent, whether
    some are left for another run)."""
    now = timezone.now()
    if not claim(endpoint_id, now):
        if elsewhere is not None:
            elsewhere.add(endpoint_id)
        return 0, False  # another sender has it; it sends these too
    try:
        poster = Poster(WebhookEndpoint.objects.select_related("progress").get(pk=endpoint_id))
        try:
            return send_due(poster, deadline)
        finally:
            poster.close()
    finally:
        WebhookEndpoint.objects.filter(pk=endpoint_id).update(claimed_until=None)


def progress_of(endpoint):
    try:
        return endpoint.progress
    except WebhookProgress.DoesNotExist:  # an endpoint written around save(): from when it was made
        WebhookProgress.start(endpoint, now=endpoint.created_at)
        return WebhookProgress.objects.get(pk=endpoint.pk)


def send_due(poster, deadline):
    """The pending deliveries that are due first (retries, and events that waited behind
    them), then the new events."""
    sent, endpoint, failing, pending = 0, poster.endpoint, False, False
    while not failing:
        due, pending = next_due(endpoint)
        if not due:
            break
        taken = []
        for delivery in due:
            kept = post_event(poster, delivery.event)
            if not was_taken(kept):
                record_failed(delivery, kept)
                failing = True  # the receiver is failing: the rest wait for the next retry
                break
            taken.append((delivery, kept))
            if time.monotonic() > deadline:  # after one at least: every run makes progress
                record_retried(endpoint, taken)
                return sent + len(taken), True
        record_retried(endpoint, taken)
        sent += len(taken)
    count, more = send_new(poster, deadline, failing=failing, pending=pending or failing)
    return sent + count, more


def next_due(endpoint, scan=SCAN):
    """The next due pending deliveries, oldest event first, none of an object that has an
    earlier delivery still waiting for its retry (those wait too); and whether any is pending."""
    pending = list(
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
    return due, bool(pending)


def new_events(endpoint, progress):
    """The endpoint's events not sent yet, oldest first: past its mark, with no delivery of it."""
    events = Event.objects.filter(pk__gt=progress.sent_through, occurred_at__gte=progress.since).filter(
        ~Exists(WebhookDelivery.objects.filter(endpoint=endpoint, event=OuterRef("pk")))
    )
    if "*" not in endpoint.events:
        events = events.filter(type__in=endpoint.events)
    return events.order_by("pk")


def send_new(poster, deadline, failing, pending):
    """POST the new events in order, a batch at a time, each batch written in one transaction:
    a row per event (delivered, or pending when it failed or waits) and the mark moved on.
    An event of an object with a pending delivery waits behind it, and once the receiver has
    failed the rest of the batch waits for the next retry: neither is POSTed."""
    endpoint = poster.endpoint
    progress = progress_of(endpoint)
    sent = 0
    while True:
        settled = settled_through()  # before the events are read: all settled ones are then seen
        events = list(new_events(endpoint, progress)[:SCAN])
        blocked = waiting_subjects(endpoint, events) if pending and events else set()
        delivered, waiting, failed, stopped = [], [], None, False
        for event in events:
            if failing or event.subject in blocked:
                waiting.append(event)
            else:
                kept = post_event(poster, event)
                if was_taken(kept):
                    delivered.append((event, kept))
                else:
                    failed, failing = (event, kept), True
            if time.monotonic() > deadline:
                stopped = events[-1] is not event
                break
        # Every event up to the last one read is handled now, or was before, or is not for the
        # endpoint, or is in a transaction still open: the mark stops below those.
        whole = not stopped and len(events) < SCAN
        mark = settled if whole else min(settled, event.pk)
        record_new(endpoint, progress, delivered, waiting, failed, mark)
        sent += len(delivered)
        if stopped or whole:
            return sent, stopped


def waiting_subjects(endpoint, events):
    """Of these events' objects, those with a delivery pending for the endpoint."""
    return set(
        WebhookDelivery.objects.filter(
            endpoint=endpoint, status=WebhookDelivery.Status.PENDING, event__subject__in={e.subject for e in events}
        ).values_list("event__subject", flat=True)
    )


# This process's readings of the event id sequence, (last id handed out, when), oldest first.
_readings = collections.deque(maxlen=256)

SETTLED = """SELECT handed_out, clock_timestamp(), (
    SELECT min(xact_start) FROM pg_stat_activity
    WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()
) FROM (
    SELECT pg_sequence_last_value(pg_get_serial_sequence('clinic_event', 'id')::regclass) AS handed_out OFFSET 0
) AS s"""


def settled_through():
    """The highest event id below which no event can still commit: each is visible or never
    will be.

    PostgreSQL hands an id out when the row is inserted, and its transaction may commit after
    a later one's. An id read from the sequence at T is settled once every transaction open
    now started after T: one that took an id up to it had started before T, so it has ended.
    (A transaction's start time is in pg_stat_activity from its first statement on, before
    any insert; this needs track_activities, on by default, and the app's role reading its own
    sessions, which it always may.) The sequence is read first, the clock after it (OFFSET 0
    keeps the order). Readings are kept in this process, so the mark trails by a pass while
    events are written; a transaction left open holds it back, and only makes each pass read
    more rows: the events past the mark are still sent (new_events).

    SQLite writes one transaction at a time: nothing can commit below the newest event.
    """
    if connection.vendor != "postgresql":
        return Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    with connection.cursor() as cursor:
        cursor.execute(SETTLED)
        handed_out, read_at, oldest_open = cursor.fetchone()
    handed_out = handed_out or 0
    while _readings and _readings[-1][0] > handed_out:  # the sequence went back (a restore, a test's flush)
        _readings.pop()
    _readings.append((handed_out, read_at))
    return max((value for value, at in _readings if oldest_open is None or at < oldest_open), default=0)


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


# One POST: a DeliveryAttempt's fields, made into one only when the POST failed (a POST the
# receiver took is kept on its delivery's row).
Attempt = collections.namedtuple("Attempt", ["attempted_at", "status_code", "error", "duration_ms"])


def post_event(poster, event):
    """POST the event once: its Attempt."""
    body = body_of(event)
    at = timezone.now()
    status_code, error = None, ""
    began = time.monotonic()
    try:
        status_code = poster.post(body, poster.headers(event, body, at))
    except (OSError, ValueError, http.client.HTTPException) as failure:  # refused, timed out, unreachable, bad URL
        error = failure_class(failure)
    duration_ms = int((time.monotonic() - began) * 1000)
    return Attempt(at, status_code, error, duration_ms)


def was_taken(kept):
    return kept.status_code is not None and 200 <= kept.status_code < 300


def record_new(endpoint, progress, delivered, waiting, failed, mark):
    """One transaction for a batch of new events: the delivered rows and the waiting ones in
    one INSERT, the failed one with its attempt, the mark moved on. Should the worker die
    before it, they are sent again: receivers tell a repeat by its webhook-id."""
    now = timezone.now()
    waiting = [
        WebhookDelivery(endpoint=endpoint, event=event, next_attempt_at=now, created_at=now) for event in waiting
    ]
    moves = mark > progress.sent_through
    if not (delivered or waiting or failed or moves):
        return
    with transaction.atomic():
        # A sender whose claim ran out may have written one already: it stands.
        insert_delivered(endpoint, delivered)
        if waiting:
            WebhookDelivery.objects.bulk_create(waiting, ignore_conflicts=True)
        if moves:
            WebhookProgress.objects.filter(pk=progress.pk, sent_through__lt=mark).update(sent_through=mark)
            progress.sent_through = mark
        if delivered:
            was_delivered(endpoint)
        if failed:
            event, kept = failed
            record_failed(WebhookDelivery(endpoint=endpoint, event=event, created_at=kept.attempted_at), kept)
    for event, kept in delivered:
        log.info(
            "webhook.delivered endpoint=%s event=%s attempt=1 status=%s ms=%s",
            endpoint.pk,
            event.pk,
            kept.status_code,
            kept.duration_ms,
        )


# The delivered rows of a batch in one statement, each column one array (bench/floor.py's shape):
# the ORM's bulk_create spent more of the sender's CPU building them than PostgreSQL did writing.
DELIVERED = """INSERT INTO clinic_webhookdelivery (endpoint_id, event_id, status, attempts, next_attempt_at,
delivered_at, created_at, status_code, duration_ms) SELECT %s, e, 'delivered', 1, t, t, t, c, d
FROM UNNEST(%s::bigint[], %s::timestamptz[], %s::integer[], %s::integer[]) AS r(e, t, c, d)
ON CONFLICT DO NOTHING"""


def insert_delivered(endpoint, delivered):
    if not delivered:
        return
    if prepared.in_use():
        with prepared.cursor() as cursor:
            cursor.execute(
                DELIVERED,
                [
                    Int8(endpoint.pk),
                    [Int8(event.pk) for event, _ in delivered],
                    [kept.attempted_at for _, kept in delivered],
                    [Int8(kept.status_code) for _, kept in delivered],
                    [Int8(kept.duration_ms) for _, kept in delivered],
                ],
            )
        return
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                event=event,
                status=WebhookDelivery.Status.DELIVERED,
                attempts=1,
                next_attempt_at=kept.attempted_at,
                delivered_at=kept.attempted_at,
                created_at=kept.attempted_at,
                status_code=kept.status_code,
                duration_ms=kept.duration_ms,
            )
            for event, kept in delivered
        ],
        ignore_conflicts=True,
    )


def record_retried(endpoint, taken):
    """One transaction for a batch of pending deliveries the receiver took at last."""
    if not taken:
        return
    for delivery, kept in taken:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.attempts += 1
        delivery.delivered_at = kept.attempted_at
        delivery.status_code = kept.status_code
        delivery.duration_ms = kept.duration_ms
    with transaction.atomic():
        WebhookDelivery.objects.bulk_update(
            [delivery for delivery, _ in taken], ["status", "attempts", "delivered_at", "status_code", "duration_ms"]
        )
        was_delivered(endpoint)
    for delivery, kept in taken:
        log.info(
            "webhook.delivered endpoint=%s event=%s attempt=%s status=%s ms=%s",
            endpoint.pk,
            delivery.event_id,
            delivery.attempts,
            kept.status_code,
            kept.duration_ms,
        )


def was_delivered(endpoint):
    if endpoint.failing_since is not None:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        endpoint.failing_since = None


def record_failed(delivery, kept):
    """A failed POST: its attempt kept, the delivery (inserted if new) retried later or failed."""
    now = kept.attempted_at
    delivery.attempts += 1
    if now - delivery.event.occurred_at >= timedelta(hours=settings.WEBHOOK_RETRY_HOURS):
        delivery.status = WebhookDelivery.Status.FAILED
    else:
        backoff = min(FIRST_RETRY_SECONDS * 2 ** (delivery.attempts - 1), MAX_RETRY_SECONDS)
        delivery.next_attempt_at = now + timedelta(seconds=backoff)
    with transaction.atomic():
        if delivery.pk is None:
            delivery.save()
        else:
            delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
        DeliveryAttempt.objects.create(delivery=delivery, **kept._asdict())
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


def any_unsent(older_than=None, exclude=()):
    """Whether an active endpoint has an event it was not sent yet (and older than `older_than`)."""
    for endpoint in WebhookEndpoint.objects.filter(active=True).exclude(pk__in=exclude).select_related("progress"):
        events = new_events(endpoint, progress_of(endpoint))
        if older_than is not None:
            events = events.filter(occurred_at__lte=older_than)
        if events.exists():
            return True
    return False


def all_sent():
    """Whether every event is delivered to each active endpoint it is for, and no delivery is
    pending or failed (the tests and benchmarks wait for this)."""
    return not WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.DELIVERED).exists() and not any_unsent()


def retries_due(now):
    """For the sweep: ask for the job when a retry is due or an event waits unsent."""
    if not WebhookEndpoint.objects.filter(active=True).exists():
        return 0  # nobody listens: the events stay recorded, and no run is asked for
    due = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now, endpoint__active=True
    ).exists()
    if due or any_unsent(older_than=now - timedelta(seconds=30)):
        request_delivery_now()
        return 1
    return 0


def prune_delivered(now, batch=1000):
    """For the sweep: delivered rows older than WEBHOOK_DELIVERY_RETENTION_DAYS, a batch per
    endpoint each time, read oldest event first on the sending index (no index on the time).
    Only rows at or below the endpoint's mark: above it, a row is what says its event was sent."""
    cutoff = now - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    pruned = 0
    for endpoint_id, mark in WebhookProgress.objects.values_list("endpoint_id", "sent_through"):
        oldest = (
            WebhookDelivery.objects.filter(
                endpoint_id=endpoint_id, status=WebhookDelivery.Status.DELIVERED, event_id__lte=mark
            )
            .order_by("event_id")
            .values_list("pk", "delivered_at")[:batch]
        )
        old = [pk for pk, delivered_at in oldest if delivered_at is not None and delivered_at < cutoff]
        if old:
            pruned += WebhookDelivery.objects.filter(pk__in=old).delete()[1].get("clinic.WebhookDelivery", 0)
    return pruned
