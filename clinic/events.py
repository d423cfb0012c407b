"""Events for integrators, written with the change they describe (docs/reference.md, Events).

`record(type, obj)` inserts one row inside the caller's transaction (inside
`written_together()`, one statement for all of the block's events), so the event commits
or rolls back with the change; once committed, the webhook job is asked for (one request
per burst, like the outbox). The payload is the object as the API shows it: each app
registers how its models are shown (`show`) when it is ready, so this bottom layer knows no
serializer and imports nothing above it.
"""

import functools
from contextlib import contextmanager

from django.db import transaction

from clinic import prepared
from clinic.models import Event
from clinic.webhooks import request_delivery

# Every type an endpoint may subscribe to; docs/reference.md, Events keeps the list here.
EVENT_TYPES = [
    "appointment.created",
    "appointment.cancelled",
    "appointment.confirmed",
    "appointment.no_show",
    "slot.freed",
    "slot.backfilled",
    "slot.no_match",
    "slot.expired",
    "slot.failed",
    "offer.sent",
    "offer.accepted",
    "offer.declined",
    "offer.expired",
    "waitlist_entry.created",
    "waitlist_entry.booked",
    "waitlist_entry.removed",
    "provider.unavailable",
    "patient.merged",
]

# model class -> (name used in events, the API's serializer for it)
_SHOWN = {}
# What else runs once events have committed, besides asking for the webhooks' job: added by
# apps above this one when they are ready (the HL7 interface's sending).
_ALSO_AFTER_COMMIT = []


def after_commit(callback):
    """Call `callback()` (no arguments) whenever events have committed; once per burst."""
    _ALSO_AFTER_COMMIT.append(callback)


def show(model, name, serializer_class):
    """Register how events show instances of `model` (called from an app's ready())."""
    _SHOWN[model] = (name, serializer_class)


def shown(obj):
    name, serializer_class = _SHOWN[type(obj)]
    return name, _serializer(serializer_class).to_representation(obj)


@functools.cache
def _serializer(serializer_class):
    # One instance per class, reused: building a DRF serializer's fields costs about a
    # millisecond, several times per backfill, inside the booking transaction. Reading with
    # to_representation keeps no state on the instance, so threads can share it.
    return serializer_class()


def record(event_type, obj, **related):
    """Write the event `event_type` about `obj`; `related` objects (e.g. the booked
    appointment of a backfilled slot) are shown beside it under their names. Inside
    `written_together()` the returned event has its id once the block has ended."""
    assert event_type in EVENT_TYPES, event_type
    name, data = shown(obj)
    payload = {name: data}
    for key, other in related.items():
        payload[key] = shown(other)[1] if other is not None else None
    event = Event(type=event_type, subject=f"{name}:{obj.pk}", payload=payload)
    connection = transaction.get_connection()
    batch = getattr(connection, "backfill_event_batch", None)
    if batch is None:
        prepared.insert([event])
    request = _ask_for_delivery_after_commit()
    if batch is not None:
        batch.append((event, request))
    return event


@contextmanager
def written_together():
    """Events recorded inside the block are inserted in one statement as it ends, still in
    the caller's transaction: a backfill records three, and each INSERT through the ORM
    costs the booking's worker more CPU than the database spends on it (bench/stages.py).

    The block joins the caller's atomic block without a savepoint of its own: should an
    exception leave it, that transaction can only roll back, so no change commits without
    its events. An event recorded under a savepoint that rolled back is not written: Django
    drops the commit callbacks of a rolled-back savepoint, so an event whose delivery request
    (registered as one, superseded or not) is gone was undone.
    """
    connection = transaction.get_connection()
    if getattr(connection, "backfill_event_batch", None) is not None:
        yield  # inside another such block: the outer one writes
        return
    with transaction.atomic(savepoint=False):
        connection.backfill_event_batch = batch = []
        try:
            yield
        finally:
            connection.backfill_event_batch = None
        still_kept = {id(callback) for _, callback, _ in connection.run_on_commit}
        prepared.insert([event for event, request in batch if id(request) in still_kept])


class _DeliveryRequest:
    """Asks for the webhook job once the transaction commits, unless a later request of
    the same transaction has taken over: a backfill writes three events, and each asking
    is a statement on the booking's worker."""

    def __init__(self, savepoints):
        self.savepoints = savepoints
        self.superseded = False
        # Django's robust on_commit names a failing callback by its __qualname__, which an
        # instance lacks: without it the log call itself raised, and the callbacks after
        # this one never ran.
        self.__qualname__ = "clinic.events.ask_for_webhook_delivery"

    def __call__(self):
        if not self.superseded:
            request_delivery()
            for callback in _ALSO_AFTER_COMMIT:
                callback()


def _ask_for_delivery_after_commit():
    connection = transaction.get_connection()
    savepoints = frozenset(connection.savepoint_ids)
    previous = getattr(connection, "backfill_delivery_request", None)
    # Django drops a commit callback with any savepoint it was registered under that rolls
    # back. When this request's savepoints are among the previous one's, this one is never
    # dropped without the previous one, so the previous one may stand down. (A previous one
    # from a transaction already over has run or been dropped: standing it down is moot.)
    if previous is not None and savepoints <= previous.savepoints:
        previous.superseded = True
    connection.backfill_delivery_request = request = _DeliveryRequest(savepoints)
    transaction.on_commit(request, robust=True)
    return request
