"""Staff choose who gets a freed slot (docs/reference.md, API): the choices the admin and the appointment page
offer, the backfill's ranking first."""

from django.db.models import prefetch_related_objects

from backfill.matching import RANK_ORDER, SlotFacts, rank_candidates
from waitlist.models import WaitlistEntry

# How many unranked waiting entries the book-by-hand pages list under the ranked ones.
HAND_BOOKING_OTHERS = 100


def hand_booking_choices(slot):
    """The slot's candidates as the backfill ranks them, then everyone else waiting for its specialty."""
    ranked = rank_candidates(SlotFacts.of(slot))
    prefetch_related_objects([candidate.entry for candidate in ranked], "patient", "preferred_location")
    waiting = WaitlistEntry.objects.filter(
        specialty_id=slot.provider.specialty_id, status=WaitlistEntry.Status.WAITING
    ).exclude(pk__in=[candidate.entry.pk for candidate in ranked])
    others = list(waiting.select_related("patient", "preferred_location").order_by(*RANK_ORDER)[:HAND_BOOKING_OTHERS])
    return ranked, others, waiting.count()
