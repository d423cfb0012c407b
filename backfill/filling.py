"""How a freed slot is filled: the one place that chooses, for every trigger (docs/reference.md, Triggers, 5).

A cancellation (trigger 1), a declined reassignment (2), a new waitlist entry (3) and the
sweep (4) all end here, so a setting changes every one of them at once.
"""

from django.conf import settings

from backfill import batch, booking, offers


def fill_slot(slot_id):
    """Run the slot's backfill the way the BACKFILL settings say; returns the slot."""
    return strategy()(slot_id)


def strategy():
    if settings.BACKFILL["OFFER_MODE"]:
        # Offer mode books nobody until a patient accepts, so it has no batch to assign.
        return offers.offer_best_candidates
    if settings.BACKFILL["BATCH_BACKFILL"]:
        return batch.fill_batch
    return booking.book_best_candidate
