"""Booking a waitlisted patient into a freed slot: one transaction, safe to run twice (docs/reference.md, Rules).

Lock order is always slot, then waitlist entry, so two workers never wait on each other in
a cycle. Every precondition is checked again after the locks are held. Whether the patient
is free then is the overlap constraint's answer alone: it is the one check two workers
booking one patient (through entries for two specialties) cannot both pass.
"""

import functools
import logging

from django.conf import settings
from django.db import transaction

from backfill.matching import Rules, SlotFacts, rank_candidates
from backfill.models import FreedSlot, MatchLog, enqueue_chain_release
from clinic import events, prepared
from clinic.exceptions import DomainError
from clinic.models import OutboundEmail
from scheduling.messages import queue_email
from scheduling.models import Appointment, AppointmentConflict
from waitlist.models import WaitlistEntry

log = logging.getLogger("backfill")


class BackfillError(DomainError):
    """A staff request about a slot that cannot be carried out; the message says why."""


def book_best_candidate(slot_id):
    """Run one backfill of the slot: rank the waitlist, book the best free candidate.

    Its own transaction (durable: nothing wraps it, so the slot's lock goes at its end), which
    holds only the run's reads and writes; what the run did is logged once it has committed.
    """
    with transaction.atomic(durable=True), events.written_together():
        slot = lock_slot(slot_id)
        ran = slot is not None and begin_run(slot)
        booked = book_first_free(slot, SlotFacts.of(slot), Rules()) if ran else None
        if ran and booked is None:
            slot.close(FreedSlot.Status.NO_MATCH)
        elif ran:
            slot.mark_backfilled(booked)
    if ran:
        log_run(slot, booked)
    return slot


def begin_run(slot):
    """Count a run of the locked slot; False when there is nothing to do (closed as expired when too late)."""
    if not slot.is_fillable:
        return False
    slot.attempts += 1
    if not slot.is_bookable():
        slot.close(FreedSlot.Status.EXPIRED)
        return False
    return True


def log_run(slot, booked):
    run = (slot.appointment_id, slot.pk, slot.attempts)
    log.info("[BACKFILL] Ran freed slot from appointment %s (slot %s, run %s)", *run)
    if booked is None:
        log.info("[BACKFILL] No waitlist matches found (slot %s)", slot.pk)
        return
    log.info(
        "[BACKFILL] Auto-backfilled with patient %s (slot %s, appointment %s, %s ms)",
        booked.patient_id,
        slot.pk,
        booked.pk,
        slot.fill_ms,
    )


def lock_slot(slot_id):
    """The slot, locked, with its provider, site, specialty and the cancelled appointment.

    The first lock of every booking, so the order is always slot, then entry (this module's docstring).
    """
    if prepared.in_use():
        return _slot_with_related().one("t0.id = %s", [slot_id], "FOR NO KEY UPDATE OF t0")
    slots = list(
        FreedSlot.objects.select_for_update(no_key=True, of=("self",))
        # The specialty too: the confirmation email names it (bench/profile_booking.py).
        .select_related(*SLOT_RELATED)
        .filter(pk=slot_id)
        # No ORDER BY for one row: compiling the model's default ordering over these joins
        # cost Django more CPU than the database spent on the query (bench/stages.py).
        .order_by()
    )
    return slots[0] if slots else None


SLOT_RELATED = ("provider__location", "provider__specialty", "appointment")


@functools.cache
def _slot_with_related():
    return prepared.Joined(FreedSlot, SLOT_RELATED)


@functools.cache
def _entry_with_patient():
    return prepared.Joined(WaitlistEntry, ("patient",))


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
    prepared.insert(logs)
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
    entry = lock_waiting_entry(candidate.entry.pk)
    if entry is None:
        return None, MatchLog.Outcome.TAKEN
    try:
        appointment = book_entry(slot, entry)
    except AppointmentConflict:
        return None, MatchLog.Outcome.ALREADY_BOOKED
    return appointment, MatchLog.Outcome.BOOKED


def lock_waiting_entry(entry_id):
    # skip_locked: an entry another worker is booking right now is taken; try the next.
    # no_key: FOR NO KEY UPDATE still excludes other bookers, but not the FOR KEY SHARE
    # that inserting a MatchLog (or appointment) referencing the row takes. With a plain
    # FOR UPDATE two workers logging each other's locked candidates deadlock.
    if prepared.in_use():
        where, waiting = "t0.id = %s AND t0.status = %s", [entry_id, WaitlistEntry.Status.WAITING]
        return _entry_with_patient().one(where, waiting, "FOR NO KEY UPDATE OF t0 SKIP LOCKED")
    return (
        WaitlistEntry.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
        .select_related("patient")
        .filter(pk=entry_id, status=WaitlistEntry.Status.WAITING)
        .first()
    )


def book_entry(slot, entry, source=Appointment.Source.BACKFILL, booked_by=""):
    """Book the entry's patient into the slot; raises AppointmentConflict if they are busy.
    `source` and `booked_by` say who chose them: the backfill, or staff by hand."""
    appointment = Appointment.book(
        patient=entry.patient,
        provider=slot.provider,
        start=slot.start,
        end=slot.end,
        source=source,
        booked_by=booked_by,
        status=Appointment.Status.SCHEDULED,
        precheck=False,  # the overlap constraint refuses a busy patient; the error names them
    )
    entry.mark_booked(appointment)
    events.record("waitlist_entry.booked", entry, appointment=appointment)
    queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)
    if settings.BACKFILL["CHAIN_BACKFILL"] and entry.original_appointment_id:
        # Chain backfill: the later appointment the patient no longer needs is released by
        # a job of its own once this booking commits, not inside it (backfill/tasks.py).
        entry_id = entry.pk
        transaction.on_commit(lambda: enqueue_chain_release(entry_id), robust=True)
    return appointment
