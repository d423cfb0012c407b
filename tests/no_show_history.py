"""A clinic with a generated past whose true no-show chance per visit the test states."""

import math
import random
from datetime import timedelta

from django.utils import timezone

from clinic.models import Location, Patient, Provider, Specialty
from demo.no_show_history import build_history, logistic
from scheduling.models import Appointment

HELD_OUT_FRACTION = 0.2


def known_rule(visit):
    """The true chance: patients who missed before miss again; visits booked far ahead are missed more."""
    return logistic(-3.0 + 4.0 * visit.past.no_show_rate + 0.6 * math.log1p(visit.lead_days))


def clinic(patients=250, providers=8):
    location, _ = Location.objects.get_or_create(name="Downtown")
    specialty, _ = Specialty.objects.get_or_create(name="Orthopedic PT")
    made_providers = Provider.objects.bulk_create(
        [
            Provider(
                name=f"Dr. History {i}", email=f"history{i}@clinic.example", specialty=specialty, location=location
            )
            for i in range(providers)
        ]
    )
    made_patients = Patient.objects.bulk_create(
        [
            Patient(first_name=f"Pat{i}", last_name="History", email=f"history{i}@mail.example", no_show_risk=0.3)
            for i in range(patients)
        ]
    )
    return made_patients, made_providers


def generate_history(no_show_chance, *, days=90, seed=1, **clinic_size):
    """Saves `days` of past visits; returns (true chance, missed) of each held-out visit."""
    patients, providers = clinic(**clinic_size)
    first_day = timezone.localdate() - timedelta(days=days)
    made = build_history(
        random.Random(seed),
        patients,
        providers,
        first_day,
        days,
        no_show_chance=no_show_chance,
        cancel_chance=lambda visit: 0.05,
        fill=0.9,
    )
    Appointment.objects.bulk_create([appointment for appointment, _ in made], batch_size=5000)
    visits = [
        (chance, appointment.status == Appointment.Status.NO_SHOW)
        for appointment, chance in made
        if chance is not None
    ]
    return visits[int(len(visits) * (1 - HELD_OUT_FRACTION)) :]
