"""The demo clinic's past backfills: each past cancellation far enough ahead freed a
slot, and most were filled from the waitlist, so the dashboard shows 90 days of trends and a
past appointment's page shows who was chosen and why.

Past visits come first (demo/no_show_history.py); this adds, for their cancellations, the
freed slot, the candidates scored by the same weights the backfill uses (BACKFILL), the
patient booked, their waitlist entry and, for some, the later appointment they gave up for
the earlier one. In offer mode the slot went to offers instead: the top candidates were
emailed, one accepted, the others declined or let the offer expire. Deterministic per rng.
"""

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backfill import rules as table
from backfill.models import FreedSlot, MatchLog, SlotOffer
from backfill.rules import Case, Rules, SlotFacts
from clinic.models import Patient, Provider, takes_plan
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry

BACKFILLED_SHARE = 0.8  # of past slots freed far enough ahead
CHAIN_SHARE = 0.6  # of backfilled patients who held a later appointment for the same care
MIN_LEAD = timedelta(hours=2)
CANDIDATES = 4


@dataclass
class Made:
    appointments: list = field(default_factory=list)
    slots: list = field(default_factory=list)
    entries: list = field(default_factory=list)
    logs: list = field(default_factory=list)
    offers: list = field(default_factory=list)


def score(patient, provider, start):
    """Points by rule as the backfill gives them: the rule table's tiers (backfill/rules.py),
    for the entry the patient would have had waiting for the provider's specialty."""
    entry = WaitlistEntry.defaults_from_patient(
        patient, specialty_id=provider.specialty_id, ranking_risk=patient.risk_on_ranking_scale()
    )
    slot = SlotFacts(provider.pk, provider.specialty_id, provider.location_id, start, start)
    return table.score(Case(entry, slot, Rules()))


class BackfillPast:
    def __init__(self, rng, offer_mode=None):
        self.rng = rng
        self.offer_mode = settings.BACKFILL["OFFER_MODE"] if offer_mode is None else offer_mode
        self.made = Made()

    def build(self, since):
        now = timezone.now()
        cancelled = list(
            Appointment.objects.filter(status=Appointment.Status.CANCELLED, start__gte=since, start__lt=now)
            .select_related("provider")
            .order_by("start", "pk")
        )
        self.busy = {
            (patient_id, timezone.localdate(start))
            for patient_id, start in Appointment.objects.filter(start__gte=since)
            .exclude(status=Appointment.Status.CANCELLED)
            .values_list("patient_id", "start")
        }
        self.candidates = list(
            Patient.objects.reachable().filter(ranking_risk__gte=settings.BACKFILL["MIN_NO_SHOW_RISK"]).order_by("pk")
        )
        self.plans_taken = {}  # provider id -> the plans they take (none listed: every plan)
        through = Provider.accepted_insurance_plans.through
        for provider_id, plan_id in through.objects.values_list("provider_id", "insuranceplan_id"):
            self.plans_taken.setdefault(provider_id, set()).add(plan_id)
        for appointment in cancelled:
            if appointment.cancelled_at and appointment.start - appointment.cancelled_at >= MIN_LEAD:
                self.slot_for(appointment)
        return self.save()

    def slot_for(self, appointment):
        slot = FreedSlot(
            provider=appointment.provider,
            start=appointment.start,
            end=appointment.end,
            appointment=appointment,
            reason=appointment.cancel_reason,
            freed_at=appointment.cancelled_at,
            attempts=1,
        )
        self.made.slots.append(slot)
        ranked = self.rank(appointment)
        if not ranked or self.rng.random() > BACKFILLED_SHARE:
            slot.status = FreedSlot.Status.NO_MATCH if self.rng.random() < 0.7 else FreedSlot.Status.EXPIRED
            for rank, (points, breakdown, patient) in enumerate(ranked[:2], 1):
                self.log(slot, rank, patient, points, breakdown, MatchLog.Outcome.ALREADY_BOOKED, None)
            return
        self.fill(slot, ranked)

    def rank(self, appointment):
        day = timezone.localdate(appointment.start)
        taken = self.plans_taken.get(appointment.provider_id, ())
        free = [
            p
            for p in self.rng.sample(self.candidates, min(len(self.candidates), 12))
            if (p.pk, day) not in self.busy
            and p.pk != appointment.patient_id
            and takes_plan(p.insurance_plan_id, taken)
        ]
        scored = [(*score(p, appointment.provider, appointment.start), p) for p in free[:CANDIDATES]]
        scored = [item for item in scored if item[0] >= settings.BACKFILL["MIN_SCORE"]]
        return sorted(scored, key=lambda item: (-item[0], -item[2].ranking_risk, item[2].pk))

    def fill(self, slot, ranked):
        rng, (_, _, winner) = self.rng, ranked[0]
        offered = ranked[: settings.BACKFILL["OFFER_TOP_N"]] if self.offer_mode else ranked[:1]
        if self.offer_mode:
            # The first patient to answer yes wins; here the best ranked, after some minutes.
            slot.fill_ms = int(rng.uniform(3, 25) * 60_000)
        else:
            slot.fill_ms = rng.randint(25, 400)
        slot.status = FreedSlot.Status.BACKFILLED
        slot.filled_at = slot.freed_at + timedelta(milliseconds=slot.fill_ms)
        booked = Appointment(
            patient=winner,
            provider=slot.provider,
            start=slot.start,
            end=slot.end,
            source=Appointment.Source.BACKFILL,
            created_at=slot.filled_at,
            status=Appointment.Status.NO_SHOW if rng.random() < 0.08 else Appointment.Status.COMPLETED,
        )
        slot.filled_by = booked
        self.made.appointments.append(booked)
        self.busy.add((winner.pk, timezone.localdate(slot.start)))
        offered_ids = {patient.pk for _, _, patient in offered}
        for rank, (points, breakdown, patient) in enumerate(ranked, 1):
            entry = (
                self.entry(slot, patient, booked if patient is winner else None) if patient.pk in offered_ids else None
            )
            outcome = (
                MatchLog.Outcome.BOOKED
                if patient is winner
                else (MatchLog.Outcome.OFFERED if entry else MatchLog.Outcome.RANKED_LOWER)
            )
            self.log(slot, rank, patient, points, breakdown, outcome, entry)
            if self.offer_mode and entry:
                self.offer(slot, entry, points, breakdown, won=patient is winner)

    def entry(self, slot, patient, booked):
        entry = WaitlistEntry(
            patient=patient,
            specialty_id=slot.provider.specialty_id,
            preferred_location_id=patient.preferred_location_id,
            available_days=patient.available_days,
            time_windows=patient.preferred_times,
            reason=self.rng.choice([WaitlistEntry.Reason.STAFF, WaitlistEntry.Reason.PATIENT_REQUEST]),
            status=WaitlistEntry.Status.BOOKED if booked else WaitlistEntry.Status.EXPIRED,
            created_at=slot.freed_at - timedelta(days=self.rng.uniform(1, 20)),
            ranking_risk=patient.risk_on_ranking_scale(),
            booked_appointment=booked,
        )
        if booked and self.rng.random() < CHAIN_SHARE:
            entry.original_appointment = self.later_appointment(slot, patient, booked)
        self.made.entries.append(entry)
        return entry

    def later_appointment(self, slot, patient, booked):
        """The appointment the patient held before the earlier slot came up, given up for it."""
        later = slot.start + timedelta(days=self.rng.randint(3, 35))
        appointment = Appointment(
            patient=patient,
            provider=slot.provider,
            start=later,
            end=later + (slot.end - slot.start),
            source=Appointment.Source.STAFF,
            status=Appointment.Status.CANCELLED,
            created_at=booked.created_at - timedelta(days=5),
            cancelled_at=slot.filled_at,
            cancelled_by="backfill",
            cancel_reason="moved earlier from the waitlist",
        )
        self.made.appointments.append(appointment)
        return appointment

    def offer(self, slot, entry, points, breakdown, won):
        status = (
            SlotOffer.Status.ACCEPTED
            if won
            else self.rng.choice([SlotOffer.Status.DECLINED, SlotOffer.Status.EXPIRED, SlotOffer.Status.WITHDRAWN])
        )
        expires = slot.freed_at + timedelta(minutes=settings.BACKFILL["OFFER_MINUTES"])
        responded = {
            SlotOffer.Status.ACCEPTED: slot.filled_at,
            SlotOffer.Status.EXPIRED: None,
            SlotOffer.Status.WITHDRAWN: slot.filled_at,
        }.get(status, slot.freed_at + timedelta(minutes=self.rng.uniform(1, 20)))
        self.made.offers.append(
            SlotOffer(
                slot=slot,
                entry=entry,
                patient=entry.patient,
                score=points,
                breakdown=breakdown,
                status=status,
                sent_at=slot.freed_at,
                expires_at=expires,
                responded_at=responded,
            )
        )

    def log(self, slot, rank, patient, points, breakdown, outcome, entry):
        self.made.logs.append(
            MatchLog(
                slot=slot,
                run=1,
                rank=rank,
                entry=entry,
                patient=patient,
                score=points,
                breakdown=breakdown,
                outcome=outcome,
                created_at=slot.freed_at,
            )
        )

    def save(self):
        made = self.made
        with transaction.atomic():
            # Parents first: bulk_create gives them the primary keys their children then take.
            Appointment.objects.bulk_create(made.appointments, batch_size=2000)
            FreedSlot.objects.bulk_create(made.slots, batch_size=2000)
            WaitlistEntry.objects.bulk_create(made.entries, batch_size=2000)
            MatchLog.objects.bulk_create(made.logs, batch_size=5000)
            SlotOffer.objects.bulk_create(made.offers, batch_size=2000)
        return {
            "past freed slots": len(made.slots),
            "past backfills": sum(s.filled_by is not None for s in made.slots),
            "past offers": len(made.offers),
        }


def add_backfill_history(rng, days=90, offer_mode=None):
    first_day = timezone.localdate() - timedelta(days=days)
    return BackfillPast(rng, offer_mode).build(timezone.make_aware(datetime.combine(first_day, time.min)))
