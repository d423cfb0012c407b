"""Batch backfill (docs/reference.md, Rules, beyond the seed; `BACKFILL["BATCH_BACKFILL"]`).

When several slots of one specialty are freed at once (a provider's whole afternoon),
filling them one at a time gives the first slot its best patient even when that patient
was the only one who fits a later slot. Here the slots freed together are filled together:
patients are assigned to slots so that the total score is the highest possible, ties going
to the docs/reference.md, Rules order. The first job of the batch to run claims every slot of it; the jobs
of the other slots then find their slot filled and stop.
"""

import logging
from datetime import timedelta

import numpy
from django.db import transaction
from scipy.optimize import linear_sum_assignment

from backfill import booking
from backfill.matching import Rules, SlotFacts, rank_candidates
from backfill.models import FreedSlot, MatchLog

log = logging.getLogger("backfill")

# Slots freed within this many seconds of each other, and not yet run, form one batch.
BATCH_WINDOW = timedelta(seconds=10)


def fill_batch(slot_id):
    with transaction.atomic():
        first = booking.lock_slot(slot_id)
        if first is None or not first.is_fillable:
            return first
        slots = [first, *_lock_siblings(first)]
        rules = Rules()
        live = []
        for slot in slots:
            slot.attempts += 1
            if slot.is_bookable():
                live.append(slot)
            else:
                slot.close(FreedSlot.Status.EXPIRED)
        log.info("[BACKFILL] Handling %s freed slot(s) together: %s", len(live), [slot.pk for slot in live])
        ranked = {
            slot.pk: rank_candidates(SlotFacts.of(slot), rules, pool=rules.CANDIDATE_POOL * len(live)) for slot in live
        }
        chosen = best_assignment(live, ranked)
        for slot in sorted(live, key=lambda slot: slot.start):
            _fill(slot, ranked[slot.pk], chosen, rules)
        return first


def _lock_siblings(first):
    # skip_locked: a sibling another job holds is that job's to fill.
    return list(
        FreedSlot.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
        .select_related("provider__location", "appointment")
        .filter(
            status=FreedSlot.Status.OPEN,
            attempts=0,
            provider__specialty_id=first.provider.specialty_id,
            freed_at__range=(first.freed_at - BATCH_WINDOW, first.freed_at + BATCH_WINDOW),
        )
        .exclude(pk=first.pk)
        .order_by("pk")
    )


def best_assignment(slots, ranked):
    """{slot id: candidate} maximising the total score; each waitlist entry used once."""
    entries = sorted(
        {c.entry.pk: c for cs in ranked.values() for c in cs if not c.already_booked}.values(),
        key=lambda c: c.rank_key,
    )
    if not entries:
        return {}
    column = {candidate.entry.pk: index for index, candidate in enumerate(entries)}
    # Score dominates; within equal totals the docs/reference.md, Rules order (the entry's rank) decides.
    scale = len(slots) * len(entries) + 1
    weights = numpy.zeros((len(slots), len(entries)))
    for row, slot in enumerate(slots):
        for candidate in ranked[slot.pk]:
            if not candidate.already_booked:
                weights[row, column[candidate.entry.pk]] = candidate.score * scale - column[candidate.entry.pk]
    rows, columns = linear_sum_assignment(weights, maximize=True)
    chosen = {}
    for row, col in zip(rows, columns, strict=False):
        if weights[row, col] > 0:
            slot = slots[row]
            chosen[slot.pk] = next(c for c in ranked[slot.pk] if c.entry.pk == entries[col].entry.pk)
    return chosen


def _fill(slot, candidates, chosen, rules):
    mine = chosen.get(slot.pk)
    taken_elsewhere = {c.entry.pk for pk, c in chosen.items() if pk != slot.pk}
    booked, logs = None, []
    for rank, candidate in enumerate(candidates, start=1):
        if candidate.already_booked:
            outcome = MatchLog.Outcome.ALREADY_BOOKED
        elif candidate.entry.pk in taken_elsewhere:
            outcome = MatchLog.Outcome.TAKEN
        elif candidate is mine:
            booked, outcome = booking.try_candidate(slot, candidate)
        else:
            outcome = MatchLog.Outcome.RANKED_LOWER
        logs.append(booking.match_log(slot, rank, candidate, outcome))
    MatchLog.objects.bulk_create(logs)
    if booked is None and mine is not None:
        # The chosen patient was taken by a booking outside the batch: fill greedily.
        booked = booking.book_first_free(slot, SlotFacts.of(slot), rules)
    if booked is None:
        log.info("[BACKFILL] No waitlist matches found (slot %s)", slot.pk)
        slot.close(FreedSlot.Status.NO_MATCH)
        return
    slot.mark_backfilled(booked)
    log.info(
        "[BACKFILL] Auto-backfilled with patient %s (slot %s, appointment %s, batch)",
        booked.patient_id,
        slot.pk,
        booked.pk,
    )
