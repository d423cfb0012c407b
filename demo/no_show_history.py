"""Past visits for a clinic that has none yet: the demo's (seed_demo), the benchmark's and
the tests' (docs/reference.md, No-show model). Visits kept and missed, cancellations, each booked some days ahead.

Visits are made in time order, so the rule deciding each visit's no-show chance sees the
patient's past exactly as the no-show model will (scheduling/no_show.py): only visits and
cancellations before it. The rule is a parameter, so a test can state the true chance of
every visit and compare the model with it.
"""

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.utils import timezone

from clinic.models import Patient, Provider
from scheduling.models import Appointment

SOURCES = (
    [Appointment.Source.STAFF] * 10
    + [Appointment.Source.API] * 6
    + [Appointment.Source.BACKFILL] * 3
    + [Appointment.Source.REASSIGNMENT]
)
VISIT_MINUTES = 45
DEMO_FILL = 0.5  # of each provider's past hours, with one visit a day per patient


@dataclass
class PatientPast:
    visits: int = 0
    no_shows: int = 0
    cancellations: int = 0

    @property
    def no_show_rate(self):
        return self.no_shows / self.visits if self.visits else 0.0


@dataclass
class VisitToBe:
    """What a no-show rule may look at: the patient, their past, and the visit as booked."""

    patient: Patient
    past: PatientPast
    start: datetime
    lead_days: float
    source: str

    @property
    def weekday(self):
        return timezone.localtime(self.start).weekday()

    @property
    def hour(self):
        return timezone.localtime(self.start).hour


def logistic(value):
    return 1 / (1 + math.exp(-value))


def believable_no_show_chance(visit):
    """The demo's pattern: some patients miss more (their typed risk is the habit staff
    noticed), and missing breeds missing; visits booked far ahead, Monday mornings and the
    first and last hours are missed more; patients who asked for a freed slot come."""
    logit = -3.2 + 4.0 * (visit.patient.no_show_risk - 0.44) + 1.5 * visit.past.no_show_rate
    logit += 0.45 * math.log1p(visit.lead_days)
    logit += 0.4 * (visit.weekday == 0) + 0.35 * (visit.hour in (8, 16))
    logit += {Appointment.Source.BACKFILL: -0.6, Appointment.Source.API: 0.2}.get(visit.source, 0.0)
    return logistic(logit)


def believable_cancel_chance(visit):
    return 0.03 + 0.12 * visit.patient.no_show_risk


def lead_days(rng, source):
    if source == Appointment.Source.BACKFILL:
        return rng.uniform(0.1, 3)  # a freed slot is offered days, not weeks, ahead
    return min(rng.expovariate(1 / 12), 90)


def build_history(
    rng,
    patients,
    providers,
    first_day,
    days,
    *,
    no_show_chance=believable_no_show_chance,
    cancel_chance=believable_cancel_chance,
    fill=0.7,
    hours=range(8, 17),
    one_visit_a_day=False,
):
    """Unsaved past appointments, oldest first, and each visit's true no-show chance (None
    for a cancelled one). The demo books a patient at most once a day (`one_visit_a_day`);
    the no-show tests keep their denser history."""
    pasts = {patient.pk: PatientPast() for patient in patients}
    busy, made = set(), []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for hour in hours:
            start = timezone.make_aware(datetime.combine(day, time(hour)))
            for provider in providers:
                if rng.random() > fill:
                    continue
                patient = rng.choice(patients)
                key = (patient.pk, day if one_visit_a_day else start)
                if key in busy:
                    continue
                busy.add(key)
                made.append(
                    past_visit(rng, patient, provider, start, pasts[patient.pk], no_show_chance, cancel_chance)
                )
    return made


def past_visit(rng, patient, provider, start, past, no_show_chance, cancel_chance):
    source = rng.choice(SOURCES)
    lead = lead_days(rng, source)
    visit = VisitToBe(patient=patient, past=past, start=start, lead_days=lead, source=source)
    created_at = start - timedelta(days=lead)
    appointment = Appointment(
        patient=patient,
        provider=provider,
        start=start,
        end=start + timedelta(minutes=VISIT_MINUTES),
        source=source,
        created_at=created_at,
    )
    if rng.random() < cancel_chance(visit):
        appointment.status = Appointment.Status.CANCELLED
        appointment.cancelled_at = created_at + (start - created_at) * rng.uniform(0.2, 0.95)
        appointment.cancel_reason, appointment.cancelled_by = "patient called to cancel", "staff"
        past.cancellations += 1
        return appointment, None
    chance = no_show_chance(visit)
    missed = rng.random() < chance
    appointment.status = Appointment.Status.NO_SHOW if missed else Appointment.Status.COMPLETED
    past.visits += 1
    past.no_shows += missed
    return appointment, chance


def add_demo_history(rng, days=90):
    """seed_demo's past: `days` of visits before today, for the demo clinic's patients.

    Every patient's risk is the model's to set once trained (seed_demo trains it on this
    history), waitlisted patients' included: the backfill ranks them by learned risks.
    """
    patients = list(Patient.objects.order_by("pk"))
    providers = list(Provider.objects.filter(active=True).order_by("pk"))
    if not patients or not providers or days <= 0:
        return 0
    made = build_history(
        rng,
        patients,
        providers,
        timezone.localdate() - timedelta(days=days),
        days,
        fill=DEMO_FILL,
        one_visit_a_day=True,
    )
    Appointment.objects.bulk_create([appointment for appointment, _ in made], batch_size=5000)
    return len(made)
