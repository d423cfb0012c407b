"""Booking a waitlisted patient into a freed slot: one transaction, safe to run twice (SPEC 5).

Lock order is always slot, then waitlist entry, so two workers never wait on each other in
a cycle. Every precondition is checked again after the locks are held. Whether the patient
is free then is the overlap constraint's answer alone: it is the one check two workers
booking one patient (through entries for two specialties) cannot both pass.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backfill.matching import Rules, SlotFacts, rank_candidates
from backfill.models import FreedSlot, MatchLog
from clinic import events
from clinic.exceptions import DomainError
from clinic.models import OutboundEmail
from scheduling.messages import queue_email
from scheduling.models import Appointment, AppointmentConflict
from waitlist.models import WaitlistEntry

log = logging.getLogger("backfill")


class BackfillError(DomainError):
    """A staff request about a slot that cannot be carried out; the message says why."""


def book_best_candidate(slot_id):
    """Run one backfill of the slot: rank the waitlist, book the best free candidate."""
    with transaction.atomic(), events.written_together():
        slot = lock_slot(slot_id)
        if slot is None or not begin_run(slot):
            return slot
        rules = Rules()
        booked = book_first_free(slot, SlotFacts.of(slot), rules)
        if booked is None:
            log.info("[BACKFILL] No waitlist matches found (slot %s)", slot.pk)
            slot.close(FreedSlot.Status.NO_MATCH)
            return slot
        slot.mark_backfilled(booked)
        log.info(
            "[BACKFILL] Auto-backfilled with patient %s (slot %s, appointment %s, %s ms)",
            booked.patient_id,
            slot.pk,
            booked.pk,
            slot.fill_ms,
        )
        return slot


def begin_run(slot):
    """Count a run of the locked slot; False when there is nothing to do (closed as expired when too late)."""
    if not slot.is_fillable:
        return False
    slot.attempts += 1
    log.info(
        "[BACKFILL] Handling freed slot from appointment %s (slot %s, run %s)",
        slot.appointment_id,
        slot.pk,
        slot.attempts,
    )
    if not slot.is_bookable():
        slot.close(FreedSlot.Status.EXPIRED)
        return False
    log.info("[BACKFILL] Finding waitlist matches (min no-show risk: %s)", settings.BACKFILL["MIN_NO_SHOW_RISK"])
    return True


def lock_slot(slot_id):
    slots = list(
        FreedSlot.objects.select_for_update(no_key=True, of=("self",))
        # The specialty too: the confirmation email names it (bench/profile_booking.py).
        .select_related("provider__location", "provider__specialty", "appointment")
        .filter(pk=slot_id)
        # No ORDER BY for one row: compiling the model's default ordering over these joins
        # cost Django more CPU than the database spent on the query (bench/stages.py).
        .order_by()
    )
    return slots[0] if slots else None


def candidate_rounds(slot, facts, rules, seen):
    """The slot's candidates best first, a few per round, never an entry already in `seen`.

    Only the best few are ranked; a caller that found nobody it can use asks for the next
    round, which ranks a pool five times wider, so a slot is never given up while a fitting
    patient waits further down.
    """
    pool = rules.CANDIDATE_POOL
    for widening in range(3):
        ranked = rank_candidates(facts, rules, pool=pool)
        if widening == 0 and ranked:
            log.info("[BACKFILL] Found %s match(es) for slot %s", len(ranked), slot.pk)
        fresh = [candidate for candidate in ranked if candidate.entry.pk not in seen]
        seen.update(candidate.entry.pk for candidate in fresh)
        yield fresh
        if len(ranked) < pool:
            return
        pool *= 5


def book_first_free(slot, facts, rules):
    """Try candidates in rank order and log each one's outcome; returns the new appointment."""
    booked, logs = None, []
    for candidates in candidate_rounds(slot, facts, rules, seen=set()):
        for candidate in candidates:
            outcome = MatchLog.Outcome.RANKED_LOWER
            if booked is None:
                booked, outcome = try_candidate(slot, candidate)
            logs.append(match_log(slot, len(logs) + 1, candidate, outcome))
        if booked is not None:
            break
    MatchLog.objects.bulk_create(logs)
    return booked


def match_log(slot, rank, candidate, outcome):
    return MatchLog(
        slot=slot,
        run=slot.attempts,
        rank=rank,
        entry=candidate.entry,
        patient_id=candidate.entry.patient_id,
        score=candidate.score,
        breakdown=candidate.breakdown,
        outcome=outcome,
    )


def try_candidate(slot, candidate):
    if candidate.already_booked:
        return None, MatchLog.Outcome.ALREADY_BOOKED
    entry = _lock_waiting_entry(candidate.entry.pk)
    if entry is None:
        return None, MatchLog.Outcome.TAKEN
    try:
        appointment = book_entry(slot, entry)
    except AppointmentConflict:
        return None, MatchLog.Outcome.ALREADY_BOOKED
    return appointment, MatchLog.Outcome.BOOKED


def _lock_waiting_entry(entry_id):
    # skip_locked: an entry another worker is booking right now is taken; try the next.
    # no_key: FOR NO KEY UPDATE still excludes other bookers, but not the FOR KEY SHARE
    # that inserting a MatchLog (or appointment) referencing the row takes. With a plain
    # FOR UPDATE two workers logging each other's locked candidates deadlock.
    return (
        WaitlistEntry.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
        .select_related("patient")
        .filter(pk=entry_id, status=WaitlistEntry.Status.WAITING)
        .first()
    )


def book_entry(slot, entry):
    """Book the entry's patient into the slot; raises AppointmentConflict if they are busy."""
    appointment = Appointment.book(
        patient=entry.patient,
        provider=slot.provider,
        start=slot.start,
        end=slot.end,
        source=Appointment.Source.BACKFILL,
        status=Appointment.Status.SCHEDULED,
        precheck=False,  # the overlap constraint refuses a busy patient; the error names them
    )
    entry.status = WaitlistEntry.Status.BOOKED
    entry.booked_appointment = appointment
    entry.save(update_fields=["status", "booked_appointment"])
    events.record("waitlist_entry.booked", entry, appointment=appointment)
    queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)
    if settings.BACKFILL["CHAIN_BACKFILL"]:
        _release_later_appointment(entry, appointment)
    return appointment


def _release_later_appointment(entry, appointment):
    """Chain backfill: the patient moved earlier gives up their later appointment."""
    later = entry.original_appointment
    if later is None or later.status not in Appointment.CANCELLABLE or later.start <= appointment.start:
        return
    # Staff read the reason in the admin: the new time and provider, not an id.
    earlier = (
        f"{appointment.provider.location.local(appointment.start):%a %-d %b %H:%M} with {appointment.provider.name}"
    )
    later.cancel(f"moved earlier to {earlier}", by="backfill")


def book_entry_by_hand(slot, entry, by):
    """Staff choose the patient for a freed slot (admin, API)."""
    with transaction.atomic():
        slot = lock_slot(slot.pk)
        if not slot.is_fillable:
            raise BackfillError(f"This slot is {slot.get_status_display().lower()}; only open slots can be booked.")
        if slot.start <= timezone.now():
            raise BackfillError("This slot has already started.")
        locked = _lock_waiting_entry(entry.pk)
        if locked is None:
            raise BackfillError("That waitlist entry is no longer waiting.")
        if locked.specialty_id != slot.provider.specialty_id:
            raise BackfillError("That patient is waiting for another specialty.")
        try:
            appointment = book_entry(slot, locked)
        except AppointmentConflict as conflict:
            raise BackfillError(str(conflict)) from conflict
        slot.mark_booked_by_hand(appointment)
    log.info(
        "slot.booked_by_hand slot=%s patient=%s appointment=%s by=%s",
        slot.pk,
        appointment.patient_id,
        appointment.pk,
        by,
    )
    return appointment


def retry_slot(slot, by):
    """Staff ask for another backfill run of a slot that found nobody or failed."""
    with transaction.atomic():
        slot = lock_slot(slot.pk)
        if slot.status not in (FreedSlot.Status.OPEN, FreedSlot.Status.NO_MATCH, FreedSlot.Status.FAILED):
            raise BackfillError(f"This slot is {slot.get_status_display().lower()}; there is nothing to retry.")
        if not slot.is_bookable():
            raise BackfillError("This slot is too soon, or its provider is away or inactive; it cannot be backfilled.")
        slot.reopen()
    log.info("slot.retry slot=%s by=%s", slot.pk, by)
    return slot
