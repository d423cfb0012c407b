"""Events for integrators, written with the change they describe (SPEC 13).

`record(type, obj)` inserts one row inside the caller's transaction, so the event commits
or rolls back with the change; once committed, the webhook job is asked for (one request
per burst, like the outbox). The payload is the object as the API shows it: each app
registers how its models are shown (`show`) when it is ready, so this bottom layer knows no
serializer and imports nothing above it.
"""

import functools

from django.db import transaction

from clinic.models import Event
from clinic.webhooks import request_delivery

# Every type an endpoint may subscribe to; SPEC 13 keeps the list here.
EVENT_TYPES = [
    "appointment.created", "appointment.cancelled", "appointment.confirmed", "appointment.no_show",
    "slot.freed", "slot.backfilled", "slot.no_match", "slot.expired", "slot.failed",
    "offer.sent", "offer.accepted", "offer.declined", "offer.expired",
    "waitlist_entry.created", "waitlist_entry.booked", "waitlist_entry.removed",
    "provider.unavailable",
]

# model class -> (name used in events, the API's serializer for it)
_SHOWN = {}


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
    appointment of a backfilled slot) are shown beside it under their names."""
    assert event_type in EVENT_TYPES, event_type
    name, data = shown(obj)
    payload = {name: data}
    for key, other in related.items():
        payload[key] = shown(other)[1] if other is not None else None
    event = Event.objects.create(type=event_type, subject=f"{name}:{obj.pk}", payload=payload)
    _ask_for_delivery_after_commit()
    return event


class _DeliveryRequest:
    """Asks for the webhook job once the transaction commits, unless a later request of
    the same transaction has taken over: a backfill writes three events, and each asking
    is a statement on the booking's worker."""

    def __init__(self, savepoints):
        self.savepoints = savepoints
        self.superseded = False

    def __call__(self):
        if not self.superseded:
            request_delivery()


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
