"""What a person or another system can do to the waitlist, one function each (the
conventions are clinic/actions.py's): join it, change an entry, leave it; and the
sweep's expiry of entries whose dates have passed.

A new waiting entry looks for open freed slots it fits once it commits: the job is
backfill's, handed off by its receiver (backfill/signals.py), which only enqueues.
"""

import logging

from django.db import transaction

from clinic.actions import action_transaction, actor
from clinic.models import Location
from waitlist.models import WaitlistEntry

log = logging.getLogger("waitlist")


def join_waitlist(entry, *, by, channel):
    """Put a patient on the waitlist with the entry given (unsaved; its omitted preferences
    the patient's own, WaitlistEntry.defaults_from_patient). Raises IntegrityError when they
    already wait for that specialty: the caller answers it.

    Not durable: the admin's add form (Django's changeform_view) saves inside its own
    transaction, with its log entry."""
    with transaction.atomic():
        entry.save()  # with its waitlist_entry.created event
    log.info(
        "action.join_waitlist entry=%s patient=%s by=%s channel=%s", entry.pk, entry.patient_id, actor(by), channel
    )
    return entry


def change_waitlist_entry(form, *, by, channel):
    """Save a waiting entry's changed days, times, dates or location (a validated ModelForm)."""
    with transaction.atomic(durable=True):
        entry = form.save()
    log.info("action.change_waitlist_entry entry=%s by=%s channel=%s", entry.pk, actor(by), channel)
    return entry


def leave_waitlist(entry, *, by, channel):
    """Take a waiting entry off the list (kept, marked removed, with its event); False when it
    was not waiting. The feed's patient merge runs it inside the message's unit."""
    with action_transaction():
        removed = entry.remove()
    log.info("action.leave_waitlist entry=%s removed=%s by=%s channel=%s", entry.pk, removed, actor(by), channel)
    return removed


def expire_past_entries(now):
    """For the sweep (ops/sweep.py): waiting entries whose latest date has passed are expired.
    A latest date is a day at the slot's site (docs/reference.md, Time zones), so it has passed
    once it is over at every site."""
    from_before = Location.objects.earliest_date(now)
    return WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING, latest_date__lt=from_before).update(
        status=WaitlistEntry.Status.EXPIRED
    )
