"""Plays the seed's two test scenarios against the running product (README walkthrough).

    manage.py demo_scenario high-risk      # a high-risk waitlisted patient gets a cancelled slot
    manage.py demo_scenario no-match       # a slot nobody on the waitlist fits stays open
    manage.py demo_scenario provider-sick  # a provider out sick: colleagues offered, a decline, its backfill

The cancellation goes through the real door (scheduling.actions.cancel_appointment), so the backfill runs in
whatever qcluster is serving the queue; the command waits for its outcome. It tells the story in
names and times, with links to the pages that show it (SITE_URL: bin/manage points it at the
running demo); the log lines go to the log.
"""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from django.utils import timezone

from backfill.models import FreedSlot
from clinic.actions import Via
from clinic.models import Location, Patient, Provider, Specialty
from clinic.times import staff_datetime
from demo.scenarios import ProviderSick, why_chosen
from frontdesk.templatetags.backfill_words import points_by_rule
from scheduling.actions import book_appointment, cancel_appointment
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry


class Command(BaseCommand):
    help = "Run a scenario: high-risk, no-match (the seed's) or provider-sick (the reassignment story)."

    def add_arguments(self, parser):
        parser.add_argument("scenario", choices=["high-risk", "no-match", "provider-sick"])
        parser.add_argument("--wait", type=float, default=15, help="seconds to wait for the worker")

    def handle(self, *args, scenario, wait, **options):
        if scenario == "provider-sick":
            ProviderSick(self.stdout, self.style, wait).play()
            return
        appointment = self.high_risk() if scenario == "high-risk" else self.no_match()
        self.stdout.write(
            f"{appointment.patient} phones to cancel {staff_datetime(appointment.start)} with "
            f"{appointment.provider.name} ({appointment.provider.location.name}); the front desk cancels it."
        )
        # The patient phoned in: the front desk cancels and, as the phone call said it all, sends nothing.
        cancel_appointment(
            appointment, by="demo_scenario", channel=Via.DEMO, reason="demo: patient called in sick", notify=False
        )
        slot = FreedSlot.objects.filter(appointment=appointment).first()
        if slot is None:
            raise CommandError("No freed slot was recorded (too soon, or the provider is away).")
        slot = self.wait_for_outcome(slot, wait)
        self.tell_outcome(slot)
        self.stdout.write(f"See it: {settings.SITE_URL}{reverse('appointment-detail', args=[appointment.pk])}")

    def tell_outcome(self, slot):
        if slot.filled_by_id:
            self.stdout.write(
                self.style.SUCCESS(
                    f"The slot went to {slot.filled_by.patient} from the waitlist, "
                    f"{slot.fill_ms} ms after the cancellation."
                )
            )
            self.stdout.write(f"Why: {why_chosen(slot)}.")
        elif slot.status == FreedSlot.Status.NO_MATCH:
            self.stdout.write("Nobody on the waitlist fits: the slot stays open for the front desk to book by hand.")
        logs = slot.match_logs.select_related("patient").order_by("-run", "rank")
        for log in logs:
            self.stdout.write(
                f"  {log.rank}. {log.patient}: score {log.score} ({points_by_rule(log.breakdown)}), "
                f"{log.get_outcome_display().lower()}"
            )

    def wait_for_outcome(self, slot, wait):
        deadline = time.monotonic() + wait
        while slot.status == FreedSlot.Status.OPEN and time.monotonic() < deadline:
            time.sleep(0.2)
            slot.refresh_from_db()
        if slot.status == FreedSlot.Status.OPEN:
            self.stdout.write(self.style.WARNING("Still open: is a qcluster running (bin/run starts one)?"))
        return slot

    def next_free_start(self, provider, patient=None):
        day = timezone.localdate() + timedelta(days=1)
        while True:
            if day.weekday() < 5:
                for hour in range(8, 18):
                    start = timezone.make_aware(datetime.combine(day, datetime.min.time().replace(hour=hour)))
                    busy = Appointment.objects.overlapping(start, start + timedelta(minutes=45))
                    if not busy.filter(provider=provider).exists() and not (
                        patient and busy.filter(patient=patient).exists()
                    ):
                        return start
            day += timedelta(days=1)

    def book(self, provider, patient):
        start = self.next_free_start(provider, patient)
        return book_appointment(
            patient=patient,
            provider=provider,
            start=start,
            end=start + timedelta(minutes=45),
            by="demo_scenario",
            channel=Via.DEMO,
        )

    def high_risk(self):
        provider = Provider.objects.filter(active=True, specialty__name="Orthopedic PT").first()
        if provider is None:
            raise CommandError("Run seed_demo first.")
        patient, _ = Patient.objects.get_or_create(
            email="pat.waitlist.001@mail.example",
            defaults={
                "first_name": "Pat",
                "last_name": "Waitlist",
                "no_show_risk": 0.85,
                "no_show_risk_source": Patient.RiskSource.MANUAL,
                "preferred_location": provider.location,
            },
        )
        WaitlistEntry.objects.filter(patient=patient, status=WaitlistEntry.Status.WAITING).delete()
        WaitlistEntry.defaults_from_patient(patient, specialty=provider.specialty).save()
        self.stdout.write(f"{patient} (no-show risk 0.85, typed by staff) is waiting for {provider.specialty}.")
        other = Patient.objects.exclude(pk=patient.pk).first()
        return self.book(provider, other)

    def no_match(self):
        specialty, _ = Specialty.objects.get_or_create(name="Vestibular PT")
        provider, _ = Provider.objects.get_or_create(
            email="vestibular@clinic.example",
            defaults={"name": "Dr. Vera Vestibular", "specialty": specialty, "location": Location.objects.first()},
        )
        self.stdout.write(f"Nobody on the waitlist is waiting for {specialty}.")
        return self.book(provider, Patient.objects.first())
