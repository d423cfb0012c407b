"""A realistic, deterministic demo clinic. The same --seed gives the same clinic (dates are
relative to today). --waitlist 100000 builds the benchmark's waitlist."""

import random
import secrets
from datetime import datetime, time, timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from backfill.models import FreedSlot, MatchLog, SlotOffer
from clinic.fields import WEEKDAYS
from clinic.models import InsurancePlan, Location, OutboundEmail, Patient, Provider, Specialty
from demo.history import add_backfill_history
from demo.no_show_history import add_demo_history
from scheduling.models import Appointment, NoShowModel, ProviderUnavailability
from scheduling.no_show import train_and_apply
from waitlist.models import WaitlistEntry

LOCATIONS = [
    ("Downtown", "120 Main St, Springfield", "(555) 010-2000"),
    ("Northside", "48 Oak Ave, Springfield", "(555) 010-3000"),
    ("Riverside", "7 Quay Rd, Springfield", "(555) 010-4000"),
]
INSURANCE_PLANS = [
    ("Aetna Choice POS II", "Aetna"),
    ("Blue Cross PPO", "Blue Cross Blue Shield"),
    ("Medicare Part B", "Medicare"),
    ("UnitedHealthcare Choice Plus", "UnitedHealthcare"),
]
SPECIALTIES = ["Orthopedic PT", "Sports Rehab", "Neurological PT", "Pediatric PT"]
# Patients and providers are drawn from separate names, so nobody on the schedule can be
# mistaken for someone else, and no two patients share a full name (up to 572 of them).
FIRST_NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Isla",
    "Jon",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Will",
    "Xin",
    "Yara",
    "Zane",
]
LAST_NAMES = [
    "Adams",
    "Brown",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Khan",
    "Lopez",
    "Miller",
    "Nguyen",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Smith",
    "Tanaka",
    "Usman",
    "Vargas",
]
PROVIDER_FIRST_NAMES = [
    "Alice",
    "Bruno",
    "Carmen",
    "Daniel",
    "Esther",
    "Felix",
    "Gloria",
    "Henry",
    "Irene",
    "Julian",
    "Karen",
    "Louis",
    "Monica",
    "Nathan",
    "Ophelia",
    "Peter",
    "Rachel",
    "Simon",
    "Teresa",
    "Victor",
]
PROVIDER_LAST_NAMES = [
    "Abbott",
    "Bishop",
    "Castillo",
    "Dawson",
    "Ellison",
    "Fontaine",
    "Gallagher",
    "Holloway",
    "Iverson",
    "Jablonski",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Ortega",
    "Pritchard",
    "Quintero",
    "Sorensen",
    "Thornton",
    "Whitaker",
]
# Share of a provider's hours booked: a busy clinic with room left for backfills and colleagues.
FORWARD_FILL = 0.55
TIME_WINDOWS = [[], [], [], ["08:00-12:00"], ["12:00-17:00"], ["16:00-19:00"], ["08:00-10:00", "15:00-18:00"]]
DOMAIN_MODELS = [
    NoShowModel,
    SlotOffer,
    MatchLog,
    FreedSlot,
    OutboundEmail,
    WaitlistEntry,
    Appointment,
    ProviderUnavailability,
    Patient,
    Provider,
    InsurancePlan,
    Specialty,
    Location,
]
# The demo's logins, one per role (docs/reference.md, Production). Their passwords are made when the demo is built,
# and exist only in a database this command built: never a built-in password.
DEMO_LOGINS = [("frontdesk", "Front desk"), ("manager", "Clinic manager"), ("ehr", "Integrator")]


TEXTS_TOO = {
    "preferred_channel": Patient.Channel.BOTH,
    "sms_consent": True,
    "sms_consent_source": Patient.ConsentSource.STAFF,
}


class Command(BaseCommand):
    help = "Fill the database with a deterministic demo clinic (refuses if one exists unless --reset)."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--providers",
            type=int,
            default=24,
            help="spread over every location and specialty; 24 gives two of each specialty at each site",
        )
        parser.add_argument("--patients", type=int, default=400)
        parser.add_argument(
            "--waitlist", type=int, default=50, help="waiting entries (needs as many patients; more are made)"
        )
        parser.add_argument("--days", type=int, default=14, help="days of appointments from today")
        parser.add_argument("--history-days", type=int, default=90, help="days of past visits, for the no-show model")
        parser.add_argument(
            "--risks",
            choices=["learned", "typed"],
            default="learned",
            help="learned (default): train the no-show model on the history and let it set every patient's risk; "
            "typed: keep the seeded risks as if typed by staff, and train no model",
        )
        parser.add_argument("--reset", action="store_true", help="delete the clinic's data first")
        parser.add_argument("--if-empty", action="store_true", help="do nothing if the clinic already has data")
        parser.add_argument(
            "--logins-file", help="also write the demo logins to this file (bin/run keeps them in .demo/)"
        )

    def handle(self, *args, **options):
        if Location.objects.exists():
            if options["if_empty"]:
                self.stdout.write("Demo data already present; leaving it (and its logins) as it is.")
                return
            if not options["reset"]:
                raise CommandError("The database already has a clinic. Use --reset to replace it.")
        elif get_user_model().objects.exists() and not options["reset"]:
            # A database with accounts but no clinic is somebody's real one being set up:
            # the demo's logins must never appear there.
            raise CommandError("The database has user accounts: seed_demo only fills a new, empty database.")
        with transaction.atomic():
            if options["reset"]:
                for model in DOMAIN_MODELS:
                    delete_all(model)
            counts = DemoClinic(random.Random(options["seed"])).build(options)
            counts["past appointments"] = add_demo_history(random.Random(options["seed"]), options["history_days"])
            counts.update(add_backfill_history(random.Random(options["seed"]), options["history_days"]))
            risks = set_risks(options["risks"])
            logins = create_demo_logins()
        for name, count in counts.items():
            self.stdout.write(f"{count:>8} {name}")
        self.stdout.write(risks)
        text = "\n".join(logins)
        self.stdout.write(self.style.SUCCESS(text))
        if options["logins_file"]:
            path = Path(options["logins_file"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
            path.chmod(0o600)


def set_risks(kind):
    """What the clinic does once it has a history: the no-show model learns from it and sets
    the patients' risks, the waiting ones included (docs/rules.md: one scale for typed and
    learned risks). Says what happened."""
    if kind == "typed":
        Patient.objects.update(no_show_risk_source=Patient.RiskSource.MANUAL)
        return "No-show risks: as seeded, typed by staff (no model trained)."
    # Scored as of this morning, so the same seed gives the same risks all day (the history's
    # dates are relative to today).
    this_morning = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    return train_and_apply(now=this_morning).message


def delete_all(model, chunk=10_000):
    # In chunks: Django looks up the rows that refer to the deleted ones with one IN list,
    # and PostgreSQL takes at most 65,535 parameters (100,000 patients failed to reset).
    while pks := list(model.objects.values_list("pk", flat=True)[:chunk]):
        model.objects.filter(pk__in=pks).delete()


def create_demo_logins():
    """One account per role, with a fresh random password (and a token for the integrator).
    Accounts of these names left by an earlier demo get new passwords."""
    lines = []
    for username, role in DEMO_LOGINS:
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.update_or_create(
            username=username, defaults={"is_staff": role != "Integrator", "email": f"{username}@clinic.example"}
        )
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=role)])
        line = f"{role} login: {username} / {password}"
        if role == "Integrator":
            Token.objects.filter(user=user).delete()
            line += f"   API token: {Token.objects.create(user=user).key}"
        lines.append(line)
    return lines


class DemoClinic:
    def __init__(self, rng):
        self.rng = rng
        # Insurance draws from a copy, so adding it left the rest of a seed's clinic as it was.
        self.insurance_rng = random.Random()
        self.insurance_rng.setstate(rng.getstate())

    def build(self, options):
        locations = [
            Location.objects.create(name=name, address=address, phone=phone) for name, address, phone in LOCATIONS
        ]
        specialties = [Specialty.objects.create(name=name) for name in SPECIALTIES]
        plans = [InsurancePlan.objects.create(name=name, payer=payer) for name, payer in INSURANCE_PLANS]
        providers = self.providers(options["providers"], locations, specialties)
        self.accepted_plans(providers, plans)
        patient_count = max(options["patients"], options["waitlist"])
        patients = self.patients(patient_count, locations, plans)
        appointments = self.appointments(providers, patients, options["days"])
        entries = self.waitlist(patients, specialties, providers, options["waitlist"])
        return {
            "locations": len(locations),
            "specialties": len(specialties),
            "insurance plans": len(plans),
            "providers": len(providers),
            "patients": len(patients),
            "appointments": appointments,
            "waitlist entries": entries,
        }

    def names(self, firsts, lasts, count):
        """`count` full names, all different while the lists allow, in a seeded order."""
        pool = [(first, last) for first in firsts for last in lasts]
        self.rng.shuffle(pool)
        return [pool[index % len(pool)] for index in range(count)]

    def providers(self, count, locations, specialties):
        """Every specialty at every location in turn, so the first 24 give two of each at
        each site: a provider out sick always has a colleague to hand patients to."""
        pairs = [(location, specialty) for location in locations for specialty in specialties]
        providers = []
        for index, (first, last) in enumerate(self.names(PROVIDER_FIRST_NAMES, PROVIDER_LAST_NAMES, count)):
            location, specialty = pairs[index % len(pairs)]
            providers.append(
                Provider(
                    name=f"Dr. {first} {last}",
                    email=f"provider{index + 1}@clinic.example",
                    specialty=specialty,
                    location=location,
                )
            )
        return Provider.objects.bulk_create(providers)

    def accepted_plans(self, providers, plans):
        """A third of the providers take every plan (none listed); the others two or three of them."""
        through = Provider.accepted_insurance_plans.through
        rows = []
        for index, provider in enumerate(providers):
            if index % 3 == 0:
                continue
            chosen = self.insurance_rng.sample(plans, self.insurance_rng.choice([2, 3]))
            rows += [through(provider_id=provider.pk, insuranceplan_id=plan.pk) for plan in chosen]
        through.objects.bulk_create(rows)

    def patients(self, count, locations, plans):
        rng, patients = self.rng, []
        for index, (first, last) in enumerate(self.names(FIRST_NAMES, LAST_NAMES, count)):
            days = sorted(rng.sample(range(5), rng.choice([0, 2, 3, 3, 4, 5])))
            patients.append(
                Patient(
                    first_name=first,
                    last_name=last,
                    email=f"patient{index + 1}@mail.example",
                    phone=f"+1617555{index % 10000:04d}",
                    preferred_location=rng.choice(locations + [None]),
                    available_days=[WEEKDAYS[day] for day in days],
                    preferred_times=rng.choice(TIME_WINDOWS),
                    no_show_risk=round(rng.betavariate(2, 2.5), 2),
                    email_opt_out=rng.random() < 0.02,
                    # One in six pays for themselves.
                    insurance_plan=None if self.insurance_rng.random() < 1 / 6 else self.insurance_rng.choice(plans),
                    # One patient in three also gets texts, so the messages page shows both kinds.
                    **(TEXTS_TOO if index % 3 == 0 else {}),
                    # One in seven reads Spanish (docs/reference.md, Languages), as in the United States.
                    preferred_language="es" if index % 7 == 3 else "",
                )
            )
        for patient in patients:  # bulk_create skips Patient.save, which keeps it in step
            patient.ranking_risk = patient.risk_on_ranking_scale()
        return Patient.objects.bulk_create(patients, batch_size=5000)

    def appointments(self, providers, patients, days):
        rng, today = self.rng, timezone.localdate()
        busy, appointments = set(), []
        for offset in range(days):
            day = today + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            for provider in providers:
                for hour in range(9, 17):
                    if rng.random() > FORWARD_FILL:
                        continue
                    patient = rng.choice(patients)
                    if (patient.pk, day) in busy:  # one visit a day per patient
                        continue
                    busy.add((patient.pk, day))
                    start = timezone.make_aware(datetime.combine(day, time(hour)))
                    appointments.append(
                        Appointment(
                            patient=patient,
                            provider=provider,
                            start=start,
                            end=start + timedelta(minutes=45),
                            status=Appointment.Status.CONFIRMED
                            if rng.random() < 0.3
                            else Appointment.Status.SCHEDULED,
                            source=rng.choice([Appointment.Source.STAFF, Appointment.Source.API]),
                        )
                    )
        Appointment.objects.bulk_create(appointments, batch_size=5000)
        return len(appointments)

    def waitlist(self, patients, specialties, providers, count):
        # bulk_create skips save() and signals: no backfill jobs while seeding, and the
        # ranking copies (risk, declined_first) are filled in here.
        rng, entries = self.rng, []
        now = timezone.now()
        reasons = (
            [WaitlistEntry.Reason.STAFF] * 5
            + [WaitlistEntry.Reason.PATIENT_REQUEST] * 3
            + [WaitlistEntry.Reason.LOW_MATCH, WaitlistEntry.Reason.DECLINED_REASSIGNMENT]
        )
        for patient in rng.sample(patients, count):
            reason = rng.choice(reasons)
            entries.append(
                WaitlistEntry(
                    patient=patient,
                    specialty=rng.choice(specialties),
                    preferred_location=patient.preferred_location,
                    available_days=patient.available_days,
                    time_windows=patient.preferred_times,
                    reason=reason,
                    created_at=now - timedelta(minutes=rng.randint(10, 60 * 24 * 30)),
                    ranking_risk=patient.risk_on_ranking_scale(),
                    declined_first=reason == WaitlistEntry.Reason.DECLINED_REASSIGNMENT,
                    insurance_plan_id=patient.insurance_plan_id,
                )
            )
        WaitlistEntry.objects.bulk_create(entries, batch_size=5000)
        return len(entries)
