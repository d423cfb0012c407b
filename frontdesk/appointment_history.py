"""One appointment as the front desk opens it from the day schedule: who, when, what happened
to it, the slot it freed or filled and who was chosen for that slot and why, the messages sent,
and what staff may still do.

Only reads; what staff do goes through the actions (scheduling.actions.cancel_appointment,
backfill.actions.retry_backfill and book_by_hand). A fixed number of queries whatever the
slot's history; the waitlist is explained a page at a time, as in the admin.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from django.utils import timezone

from backfill.explained_waitlist import EXPLAINED_ON_PAGE, ExplainedWaitlist
from backfill.models import FreedSlot, MatchLog, SlotOffer
from clinic.models import OutboundEmail
from scheduling.models import Appointment

# An open slot whose job has not come back for this long is no longer "being filled": the
# queue may be down (docs/operations.md), so the page offers staff the slot again.
STALLED_AFTER = timedelta(minutes=2)


@dataclass
class SlotStory:
    """A freed slot: why it was freed, every candidate of every run, the offers, the outcome."""

    slot: FreedSlot
    runs: list = field(default_factory=list)  # [(run number, [MatchLog, ...]), ...], newest first
    chosen: MatchLog | None = None

    @classmethod
    def of(cls, slot):
        runs = {}
        for log in slot.match_logs.all():
            runs.setdefault(log.run, []).append(log)
        ordered = [(run, sorted(logs, key=lambda log: log.rank)) for run, logs in sorted(runs.items(), reverse=True)]
        chosen = next((log for _, logs in ordered for log in logs if log.outcome == MatchLog.Outcome.BOOKED), None)
        return cls(slot=slot, runs=ordered, chosen=chosen)

    @cached_property
    def waitlist(self):
        """Everyone waiting for the slot's specialty (and whoever was booked into it), judged
        by the rules as the admin's freed-slot page judges them: eligible first in the
        engine's order, each left out with the rules they fail."""
        return ExplainedWaitlist(self.slot)

    @cached_property
    def explanations(self):
        return self.waitlist[:EXPLAINED_ON_PAGE]

    @cached_property
    def offers(self):
        return list(self.slot.offers.all())

    @property
    def pending_offers(self):
        return [offer for offer in self.offers if offer.status == SlotOffer.Status.PENDING]

    @property
    def backfill_running(self):
        """The backfill is at this slot now or will be shortly: a job queued or due, or offers
        awaiting an answer. Staff wait for it rather than race it."""
        slot = self.slot
        if slot.status != FreedSlot.Status.OPEN or slot.start <= timezone.now():
            return False
        if self.pending_offers:
            return True
        return timezone.now() - (slot.next_attempt_at or slot.freed_at) < STALLED_AFTER

    @property
    def stalled(self):
        """Open, yet no job has come back to it for a while: the queue may be down."""
        slot = self.slot
        return slot.status == FreedSlot.Status.OPEN and slot.start > timezone.now() and not self.backfill_running


@dataclass
class AppointmentHistory:
    appointment: Appointment
    freed: SlotStory | None  # the slot this appointment's cancellation freed
    filled: SlotStory | None  # the freed slot this appointment was booked into
    messages: list

    @classmethod
    def of(cls, appointment_id):
        slots = FreedSlot.objects.select_related("filled_by__patient", "appointment__patient").prefetch_related(
            Prefetch("match_logs", queryset=MatchLog.objects.select_related("patient")),
            Prefetch("offers", queryset=SlotOffer.objects.select_related("patient")),
        )
        appointment = get_object_or_404(
            Appointment.objects.select_related(
                "patient",
                "provider__location",
                "provider__specialty",
                "replaces__provider",
                "filled_slot",
            ),
            pk=appointment_id,
        )
        freed = slots.filter(appointment=appointment).first()
        filled = slots.filter(filled_by=appointment).first()
        messages = list(OutboundEmail.objects.filter(appointment=appointment).order_by("created_at", "id"))
        return cls(
            appointment=appointment,
            freed=SlotStory.of(freed) if freed else None,
            filled=SlotStory.of(filled) if filled else None,
            messages=messages,
        )

    @property
    def can_cancel(self):
        return self.appointment.status in Appointment.CANCELLABLE

    @property
    def backfill_running(self):
        return self.freed is not None and self.freed.backfill_running

    @property
    def can_retry(self):
        """Nobody is booked and no job is at the slot (its own page refuses what is too late)."""
        if self.freed is None or self.backfill_running:
            return False
        return self.freed.slot.status in (FreedSlot.Status.OPEN, FreedSlot.Status.NO_MATCH, FreedSlot.Status.FAILED)

    @property
    def can_book_by_hand(self):
        """Staff may choose the patient once the backfill has found nobody (or stalled), never
        while a job is about to book the slot, and only before it starts."""
        if self.freed is None or self.backfill_running:
            return False
        slot = self.freed.slot
        return slot.is_fillable and slot.start > timezone.now()

    @property
    def hand_booking_choices(self):
        """The explained waitlist minus whoever is booked already: those who fit, then the others."""
        return [item for item in self.freed.explanations if item.outcome != "booked"]
