"""Offer mode (docs/reference.md, Rules, beyond the seed; `BACKFILL["OFFER_MODE"]`).

Instead of booking the best candidate, the slot's job emails the top OFFER_TOP_N
candidates a time-limited offer; the first to accept is booked and the other offers are
withdrawn. Offers go out in rounds: while an offer of the round is pending, another run
of the job offers nobody new. When every offer of the round is declined (`decline`
enqueues the job) or has expired (the slot's `next_attempt_at` is the earliest expiry, so
the sweep runs the job then), the next candidates get theirs. Nobody left to offer and
nothing pending: the slot is no_match, open for staff.

Every change to a slot's offers holds the slot's row lock, taken first as in booking.py
(slot, then waitlist entry), so an accept, a decline and a run of the job
never interleave.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from backfill import booking, contact_rules
from backfill.matching import Rules, SlotFacts
from backfill.models import FreedSlot, MatchLog, SlotOffer
from backfill.offer_links import offer_links
from clinic import events
from clinic.email import queue_patient_email
from clinic.exceptions import DomainError
from clinic.models import OutboundEmail
from scheduling.models import AppointmentConflict
from waitlist.models import WaitlistEntry

log = logging.getLogger("backfill")

# What a patient reads when an answer cannot be taken; lazy, so in the patient's language.
TAKEN = gettext_lazy("Sorry, someone else accepted this time first. You stay on the waitlist.")
GONE = gettext_lazy("Sorry, this time is no longer available. You stay on the waitlist.")
EXPIRED = gettext_lazy("Sorry, this offer has expired. You stay on the waitlist.")
ALREADY_DECLINED = gettext_lazy("You declined this time, so it can no longer be accepted. You stay on the waitlist.")
ALREADY_ACCEPTED = gettext_lazy(
    "You accepted this time, so it can no longer be declined. If you can't come, "
    "use the cancel link in your confirmation email or contact the clinic."
)
NOT_WAITING = gettext_lazy(
    "You are no longer on our waitlist for this, so this time can no longer be accepted. Please contact the clinic."
)
CLASHES = gettext_lazy(
    "Sorry, this time now clashes with another appointment, so it can no longer be booked. You stay on the waitlist."
)


class OfferError(DomainError):
    """An offer that cannot be answered as asked; the message is shown to the patient as is."""


def offer_best_candidates(slot_id):
    """One run of the slot's job in offer mode."""
    with transaction.atomic():
        slot = booking.lock_slot(slot_id)
        if slot is None or not booking.begin_run(slot):
            return slot
        return offer_slot(slot, SlotFacts.of(slot), Rules())


def offer_slot(slot, facts, rules):
    """Offer the locked slot to the next candidates, unless offers of this round are still out."""
    now = timezone.now()
    _expire_lapsed(slot, now)
    pending = slot.offers.filter(status=SlotOffer.Status.PENDING).order_by("expires_at").first()
    if pending:
        slot.wait_for_answers(pending.expires_at)
        return slot
    # An answer must come while the slot is still worth booking (MIN_LEAD_MINUTES).
    answer_by = slot.start - timedelta(minutes=rules.MIN_LEAD_MINUTES)
    quiet_end = contact_rules.quiet_until(now, contact_rules.slot_zone(slot))
    if quiet_end and quiet_end >= answer_by:
        log.info(
            "[BACKFILL] Slot %s not offered: quiet hours last until %s, too late to answer",
            slot.pk,
            quiet_end.isoformat(),
        )
        slot.close(FreedSlot.Status.NO_MATCH)
        return slot
    if quiet_end:
        log.info("[BACKFILL] Slot %s offers wait for the end of quiet hours, %s", slot.pk, quiet_end.isoformat())
        slot.wait_for_answers(quiet_end, reopen=True)
        return slot
    chosen = _choose_candidates(slot, facts, rules, now)
    if not chosen:
        log.info("[BACKFILL] No waitlist matches found (slot %s)", slot.pk)
        slot.close(FreedSlot.Status.NO_MATCH)
        return slot
    expires_at = min(now + timedelta(minutes=rules.OFFER_MINUTES), answer_by)
    for candidate in chosen:
        _send_offer(slot, candidate, now, expires_at)
    log.info(
        "[BACKFILL] Offered slot %s to patient(s) %s until %s",
        slot.pk,
        [candidate.entry.patient_id for candidate in chosen],
        expires_at.isoformat(),
    )
    slot.wait_for_answers(expires_at, reopen=True)  # reopen: a no_match slot retried by a new waitlist entry
    return slot


def _expire_lapsed(slot, now):
    # One by one, not one UPDATE: each expiry is an event of its own offer.
    for offer in slot.offers.filter(status=SlotOffer.Status.PENDING, expires_at__lte=now):
        offer.slot = slot
        _answer(offer, SlotOffer.Status.EXPIRED, responded=False)
        contact_rules.note_offer_let_go(offer.patient_id, now)


def _choose_candidates(slot, facts, rules, now):
    """The best OFFER_TOP_N free candidates not offered this slot before and not held back
    by the contact rules; logs everyone ranked.

    Candidates offered in earlier rounds still rank (they stay on the waitlist), so the
    pool widens (booking.candidate_rounds) until enough new ones turn up.
    """
    seen = set(slot.offers.values_list("entry_id", flat=True))
    chosen, logs = [], []
    for candidates in booking.candidate_rounds(slot, facts, rules, seen):
        held = contact_rules.held_back([candidate.entry.patient_id for candidate in candidates], now)
        for candidate in candidates:
            outcome = MatchLog.Outcome.RANKED_LOWER
            if candidate.already_booked:
                outcome = MatchLog.Outcome.ALREADY_BOOKED
            elif candidate.entry.patient_id in held:
                outcome = held[candidate.entry.patient_id]
            elif len(chosen) < rules.OFFER_TOP_N:
                chosen.append(candidate)
                outcome = MatchLog.Outcome.OFFERED
            logs.append(booking.match_log(slot, len(logs) + 1, candidate, outcome))
        if len(chosen) >= rules.OFFER_TOP_N:
            break
    MatchLog.objects.bulk_create(logs)
    return chosen


def _send_offer(slot, candidate, now, expires_at):
    entry = candidate.entry
    offer = SlotOffer.objects.create(
        slot=slot,
        entry_id=entry.pk,
        patient_id=entry.patient_id,
        score=candidate.score,
        breakdown=candidate.breakdown,
        sent_at=now,
        expires_at=expires_at,
    )
    events.record("offer.sent", offer, slot=slot)
    location = slot.provider.location
    with timezone.override(location.zone):  # the site's clock (docs/reference.md, Time zones)
        queue_patient_email(
            OutboundEmail.Kind.SLOT_OFFER,
            entry.patient,
            {
                **_slot_context(slot),
                "offer": offer,
                "links": offer_links(offer),
                "expires": location.local(expires_at),
            },
        )
    return offer


def _slot_context(slot):
    location = slot.provider.location
    return {"slot": slot, "provider": slot.provider, "location": location, "start": location.local(slot.start)}


def closed_reason(offer, now=None):
    """Why the patient can no longer answer this offer, in their words, or None. Reads only.

    Offers the patient already answered (accepted, declined) are the caller's to describe.
    """
    slot = offer.slot
    if offer.status == SlotOffer.Status.EXPIRED or (
        offer.status == SlotOffer.Status.PENDING and offer.has_expired(now)
    ):
        return EXPIRED
    if offer.status == SlotOffer.Status.WITHDRAWN or slot.status != FreedSlot.Status.OPEN or not slot.is_bookable(now):
        return TAKEN if slot.filled_by_id else GONE
    return None


def accept(offer):
    """The patient takes the slot, inside the caller's transaction (backfill.actions.accept_slot_offer):
    (appointment, None) once booked, or (None, why not) in their words.

    What made the offer unanswerable (it expired, the slot was taken) is recorded even so,
    so the admin shows it too: the caller commits it, then tells the patient.
    """
    slot = booking.lock_slot(offer.slot_id)
    offer = _reload(offer, slot)
    if offer.status == SlotOffer.Status.ACCEPTED:
        return slot.filled_by, None  # a double click: the first one booked
    refusal = ALREADY_DECLINED if offer.status == SlotOffer.Status.DECLINED else closed_reason(offer)
    if refusal:
        _record_closed(slot, offer)
        return None, refusal
    appointment, refusal = _book(slot, offer)
    if appointment is not None:
        log.info(
            "[BACKFILL] Backfilled slot %s with patient %s, who accepted offer %s (appointment %s, %s ms)",
            slot.pk,
            offer.patient_id,
            offer.pk,
            appointment.pk,
            slot.fill_ms,
        )
    return appointment, refusal


def _reload(offer, slot):
    offer = SlotOffer.objects.select_related("patient").get(pk=offer.pk)
    offer.slot = slot
    return offer


def _record_closed(slot, offer):
    if offer.status != SlotOffer.Status.PENDING:
        return
    if offer.has_expired():
        _answer(offer, SlotOffer.Status.EXPIRED, responded=False)
    else:
        _withdraw_pending(slot)


def _book(slot, offer):
    """(appointment, None) once booked, or (None, why not) when the patient can't be booked now."""
    entry = (
        WaitlistEntry.objects.select_for_update(no_key=True, of=("self",))  # waits: we need the real answer
        .select_related("patient")
        .filter(pk=offer.entry_id, status=WaitlistEntry.Status.WAITING)
        .first()
    )
    if entry is None:
        return None, _give_up(slot, offer, NOT_WAITING)
    try:
        appointment = booking.book_entry(slot, entry)
    except AppointmentConflict:
        return None, _give_up(slot, offer, CLASHES)
    _answer(offer, SlotOffer.Status.ACCEPTED)
    _withdraw_pending(slot, taken=True)
    slot.mark_backfilled(appointment)
    return appointment, None


def _give_up(slot, offer, reason):
    """This patient cannot take the slot after all: their offer is withdrawn, the round goes on."""
    _answer(offer, SlotOffer.Status.WITHDRAWN, responded=False)
    _next_round_if_unanswered(slot)
    return reason


def _answer(offer, status, responded=True):
    offer.status = status
    offer.responded_at = timezone.now() if responded else None
    offer.save(update_fields=["status", "responded_at"])
    if status != SlotOffer.Status.WITHDRAWN:  # withdrawn is the slot's news (backfilled, expired), not the offer's
        events.record(f"offer.{status}", offer, slot=offer.slot)
    log.info("slot_offer.%s offer=%s slot=%s patient=%s", status, offer.pk, offer.slot_id, offer.patient_id)


def _withdraw_pending(slot, taken=False):
    """The slot is no longer on offer: withdraw its pending offers, telling each patient if it was taken."""
    pending = list(slot.offers.filter(status=SlotOffer.Status.PENDING).select_related("patient"))
    SlotOffer.objects.filter(pk__in=[offer.pk for offer in pending]).update(status=SlotOffer.Status.WITHDRAWN)
    if taken:
        with timezone.override(slot.provider.location.zone):
            for offer in pending:
                queue_patient_email(
                    OutboundEmail.Kind.SLOT_OFFER_TAKEN, offer.patient, {**_slot_context(slot), "offer": offer}
                )
    if pending:
        log.info("slot_offer.withdrawn slot=%s offers=%s", slot.pk, [offer.pk for offer in pending])


def _next_round_if_unanswered(slot):
    if slot.status == FreedSlot.Status.OPEN and not slot.offers.filter(status=SlotOffer.Status.PENDING).exists():
        slot.enqueue_on_commit()


def decline(offer):
    """The patient turns the time down and stays on the waitlist, inside the caller's
    transaction (backfill.actions.decline_slot_offer); once the whole round has declined,
    the slot's job offers it to the next candidates. Returns why it could not be declined, or None."""
    slot = booking.lock_slot(offer.slot_id)
    offer = _reload(offer, slot)
    if offer.status == SlotOffer.Status.DECLINED:
        return None  # a double click
    refusal = ALREADY_ACCEPTED if offer.status == SlotOffer.Status.ACCEPTED else closed_reason(offer)
    if refusal:
        _record_closed(slot, offer)
        return refusal
    _answer(offer, SlotOffer.Status.DECLINED)
    contact_rules.note_offer_let_go(offer.patient_id, timezone.now())
    _next_round_if_unanswered(slot)
    return None
