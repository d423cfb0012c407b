"""One appointment as the front desk opens it from the day schedule: who, when, what happened
to it, the slot it freed or filled and who was chosen for that slot and why, the messages sent,
and what staff may still do.

Only reads; what staff do goes through the actions (scheduling.actions.cancel_appointment,
backfill.actions.retry_backfill and book_by_hand). A fixed number of queries whatever the
slot's history.
"""

from dataclasses import dataclass, field

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404

from backfill.hand_booking import hand_booking_choices
from backfill.models import FreedSlot, MatchLog, SlotOffer
from clinic.models import OutboundEmail
from scheduling.models import Appointment


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

    @property
    def reasons(self):
        """Sentences saying why this patient and not that one (docs/reference.md, Staff explanation). The worded
        explanation is another change's; until it lands, the table of scores by
        rule below is the answer."""
        return []

    @property
    def offers(self):
        return list(self.slot.offers.all())


@dataclass
class AppointmentHistory:
    appointment: Appointment
    freed: SlotStory | None  # the slot this appointment's cancellation freed
    filled: SlotStory | None  # the freed slot this appointment was booked into
    messages: list
    hand_booking: tuple | None = None  # (ranked candidates, others, others_count) for an open slot

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
            ),
            pk=appointment_id,
        )
        freed = slots.filter(appointment=appointment).first()
        filled = slots.filter(filled_by=appointment).first()
        messages = list(OutboundEmail.objects.filter(appointment=appointment).order_by("created_at", "id"))
        history = cls(
            appointment=appointment,
            freed=SlotStory.of(freed) if freed else None,
            filled=SlotStory.of(filled) if filled else None,
            messages=messages,
        )
        if freed and freed.is_fillable:
            history.hand_booking = hand_booking_choices(freed)
        return history

    @property
    def can_cancel(self):
        return self.appointment.status in Appointment.CANCELLABLE

    @property
    def can_retry(self):
        return self.freed is not None and self.freed.slot.status in (
            FreedSlot.Status.OPEN,
            FreedSlot.Status.NO_MATCH,
            FreedSlot.Status.FAILED,
        )
