"""django-q2 job entry points. Each takes ids, reloads, and re-checks: safe to run twice."""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F

from backfill import filling
from backfill.matching import Rules, SlotFacts, is_eligible
from backfill.models import FreedSlot, enqueue_backfill, enqueue_chain_release
from clinic import times
from clinic.actions import Via
from clinic.queue import enqueue
from scheduling.actions import cancel_appointment
from scheduling.models import Appointment, CannotCancel
from waitlist.models import WaitlistEntry

log = logging.getLogger("backfill")


__all__ = [
    "backfill_slot",
    "enqueue_backfill",
    "enqueue_entry_search",
    "fill_slots_for_entry",
    "housekeeping",
    "hurry_lost_jobs",
    "release_later_appointment",
]


# A run the database cut short (a PostgreSQL restart, a deadlock) is run again, for this long,
# before it counts as the slot's failure: a restart takes a second or two, the backoff 30 s.
DATABASE_RETRY_SECONDS = 10


def backfill_slot(slot_id):
    # A failure is handled here rather than by the queue: the slot records it and the sweep
    # retries with backoff, so the task itself ends cleanly either way.
    give_up_at = time.monotonic() + DATABASE_RETRY_SECONDS
    while True:
        try:
            slot = filling.fill_slot(slot_id)
        except (InterfaceError, OperationalError) as error:
            if time.monotonic() < give_up_at:
                # Its transaction rolled back, so nothing of the run is kept; a new connection
                # runs it again from the start (a run is safe to repeat).
                log.warning(
                    "[BACKFILL] Slot %s: the database cut the run short (%s); running it again", slot_id, error
                )
                if not connection.in_atomic_block:  # (a test's transaction around it keeps its connection)
                    connection.close()
                time.sleep(1)
                continue
            log.exception("[BACKFILL] Backfill of slot %s raised", slot_id)
            slot = record_failure(slot_id, error)
        except Exception as error:
            log.exception("[BACKFILL] Backfill of slot %s raised", slot_id)
            slot = record_failure(slot_id, error)
        return slot.status if slot else None


def record_failure(slot_id, error):
    with transaction.atomic():
        slot = (
            FreedSlot.objects.select_for_update(no_key=True).filter(pk=slot_id, status=FreedSlot.Status.OPEN).first()
        )
        if slot is not None:
            slot.record_failure(error)
        return slot


def release_later_appointment(entry_id):
    """Chain backfill: a patient booked earlier from the waitlist gives up the later
    appointment their entry came from, whose slot is then backfilled in turn. Its own job,
    run once the booking committed; it re-checks, so running it twice releases once."""
    entry = (
        WaitlistEntry.objects.filter(pk=entry_id, status=WaitlistEntry.Status.BOOKED)
        .select_related("original_appointment", "booked_appointment__provider__location")
        .first()
    )
    later = entry and entry.original_appointment
    earlier = entry and entry.booked_appointment
    if later is None or earlier is None or not _still_to_release(later, earlier):
        return None
    # Staff read the reason in the admin: the new time and provider, not an id.
    when = f"{times.staff_datetime(earlier.provider.location.local(earlier.start))} with {earlier.provider.name}"
    try:
        # Told, so the later visit they still hold in their diary is not a surprise: the
        # message names the earlier one and says the later one is released.
        cancel_appointment(
            later, by="backfill", channel=Via.BACKFILL, reason=f"moved earlier to {when}", moved_earlier_to=earlier
        )
    except CannotCancel:  # cancelled meanwhile (by them, staff, or a run of this job)
        return None
    return later.pk


def _still_to_release(later, earlier):
    return later.status in Appointment.CANCELLABLE and earlier.is_active and later.start > earlier.start


def release_lost_chain_jobs(now):
    """For the sweep: booked entries whose later appointment a lost job never released."""
    if not settings.BACKFILL["CHAIN_BACKFILL"]:
        return 0
    stale = now - timedelta(seconds=settings.BACKFILL["LOST_JOB_SECONDS"])
    entries = list(
        WaitlistEntry.objects.filter(
            status=WaitlistEntry.Status.BOOKED,
            original_appointment__status__in=Appointment.CANCELLABLE,
            original_appointment__start__gt=F("booked_appointment__start"),
            booked_appointment__status__in=Appointment.CANCELLABLE,
            booked_appointment__source=Appointment.Source.BACKFILL,
            booked_appointment__created_at__lte=stale,
        ).values_list("pk", flat=True)[:500]
    )
    for entry_id in entries:
        enqueue_chain_release(entry_id)
    return len(entries)


def enqueue_entry_search(entry_id):
    enqueue("backfill.tasks.fill_slots_for_entry", entry_id, group="backfill", task_name=f"waitlist-entry-{entry_id}")


def fill_slots_for_entry(entry_id, limit=20):
    """Trigger 3: a new waitlist entry looks for open slots it fits, soonest first."""
    entry = (
        WaitlistEntry.objects.select_related("patient")
        .filter(pk=entry_id, status=WaitlistEntry.Status.WAITING)
        .first()
    )
    if entry is None:
        return None
    slots = (
        FreedSlot.objects.fillable()
        .filter(provider__specialty_id=entry.specialty_id, provider__active=True)
        .select_related("provider__location", "appointment")
        .order_by("start")
    )
    rules = Rules()
    for slot in slots[:limit]:
        if not is_eligible(entry, SlotFacts.of(slot), rules):
            continue
        filling.fill_slot(slot.pk)
        entry.refresh_from_db(fields=["status", "booked_appointment"])
        if entry.status != WaitlistEntry.Status.WAITING:
            return entry.booked_appointment_id
    return None


def expire_slots(too_soon):
    """Slots nobody filled before their lead time: one by one, each its own slot.expired event."""
    with transaction.atomic():
        slots = (
            FreedSlot.objects.select_for_update(skip_locked=True, no_key=True)
            .filter(status__in=FreedSlot.FILLABLE, start__lte=too_soon)
            .order_by("start")[:1000]
        )
        for slot in slots:
            slot.close(FreedSlot.Status.EXPIRED)
    return len(slots)


def hurry_lost_jobs(now):
    """A cluster's process died (ops/watchdog.py): the jobs it had taken are gone with it.
    Slots waiting for their job are due now rather than after LOST_JOB_SECONDS; the sweep
    then hands each to a new job. A slot whose job survived is then run twice, which is safe."""
    FreedSlot.objects.filter(
        status=FreedSlot.Status.OPEN,
        next_attempt_at__gt=now,
        next_attempt_at__lte=now + timedelta(seconds=settings.BACKFILL["LOST_JOB_SECONDS"]),
    ).update(next_attempt_at=now)


def claim_due_slots(now):
    """Open slots whose job is due again, each claimed by moving its next attempt on, so two
    sweeps at once enqueue it once: SKIP LOCKED passes over rows the other sweep holds, and the
    UPDATE repeats the condition for databases without row locks (SQLite)."""
    due = FreedSlot.objects.filter(status=FreedSlot.Status.OPEN, next_attempt_at__lte=now)
    later = now + timedelta(seconds=settings.BACKFILL["LOST_JOB_SECONDS"])
    with transaction.atomic():
        ids = list(due.select_for_update(skip_locked=True, no_key=True).values_list("pk", flat=True)[:1000])
        if connection.features.has_select_for_update_skip_locked:
            due.filter(pk__in=ids).update(next_attempt_at=later)
            return ids
    return [slot_id for slot_id in ids if due.filter(pk=slot_id).update(next_attempt_at=later) == 1]


def housekeeping(now):
    """The backfill's part of the sweep (ops/sweep.py): expire slots past their lead time, hand
    each slot whose job was lost or whose retry is due to a new job, and release the later
    appointments lost chain jobs never released."""
    expired = expire_slots(now + timedelta(minutes=settings.BACKFILL["MIN_LEAD_MINUTES"]))
    due = claim_due_slots(now)
    for slot_id in due:
        enqueue_backfill(slot_id)
    return {"expired_slots": expired, "requeued_slots": len(due), "chain_releases": release_lost_chain_jobs(now)}
