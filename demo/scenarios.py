"""The reassignment story, played on the demo clinic (`manage.py demo_scenario provider-sick`).

A provider is out sick on the next clinic day where a colleague of the same specialty, at the
same site, is free at some of their times: those patients are offered the colleague (Accept /
Decline emails in the outbox), the others go on the waitlist. One patient then declines from
the stored email, exactly as the link's button does, and the slot they give up is backfilled
from the waitlist. Dates are relative to today; the same demo clinic plays the same story.
"""

import re
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import CommandError
from django.urls import resolve, reverse
from django.utils import timezone

from backfill.explanation import judge_for_slot
from backfill.models import FreedSlot
from backfill.rules import Rules, SlotFacts
from clinic.actions import Via
from clinic.models import OutboundEmail, Patient, Provider
from clinic.times import staff_datetime
from scheduling.actions import mark_provider_unavailable
from scheduling.links import read_token
from scheduling.models import Appointment
from scheduling.patient_views import PATIENT_ACTIONS
from waitlist.models import WaitlistEntry

SEARCH_DAYS = 14
DECLINE_LINK = re.compile(r"https?://\S+?(/appointments/decline/[^/\s]+/)")
# The waiting patient the freed slot is for: keen (high no-show risk ranks first, docs/reference.md, Rules), any day.
KEEN_PATIENT = {"first_name": "Lena", "last_name": "Marsh", "email": "lena.marsh@mail.example", "no_show_risk": 0.9}


def _free(provider, appointment):
    return not Appointment.objects.overlapping(appointment.start, appointment.end).filter(provider=provider).exists()


def story_day_and_provider():
    """The first clinic day from tomorrow, and the provider on it, with at least two
    appointments a colleague at the same site could take at the same time."""
    today = timezone.localdate()
    providers = list(Provider.objects.filter(active=True).select_related("specialty", "location").order_by("pk"))
    for offset in range(1, SEARCH_DAYS + 1):
        day = today + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for provider in providers:
            colleagues = [
                p
                for p in providers
                if p.pk != provider.pk
                and p.specialty_id == provider.specialty_id
                and p.location_id == provider.location_id
                and not p.is_unavailable_on(day)
            ]
            if not colleagues or provider.is_unavailable_on(day):
                continue
            booked = Appointment.objects.active().filter(provider=provider, start__date=day)
            movable = [a for a in booked if any(_free(colleague, a) for colleague in colleagues)]
            if len(movable) >= 2:
                return day, provider
    raise CommandError("No provider with a free colleague in the next two weeks: run seed_demo --reset first.")


def why_chosen(slot):
    """The booked patient's points by rule, in the words the slot's page uses: learned and
    typed risks rank on one scale (docs/how-it-works.md), so the keen patient may be outranked."""
    entry = WaitlistEntry.objects.select_related("patient", "specialty", "preferred_location").get(
        booked_appointment=slot.filled_by
    )
    return judge_for_slot(entry, slot, SlotFacts.of(slot), Rules(), None).summary


class ProviderSick:
    def __init__(self, stdout, style, wait):
        self.out, self.style, self.wait = stdout, style, wait

    def say(self, line, style=None):
        self.out.write(style(line) if style else line)

    def play(self):
        day, provider = story_day_and_provider()
        keen = self.keen_patient(provider)
        self.say(
            f"{keen} (no-show risk {keen.no_show_risk_words()}, typed by staff) is on the waitlist "
            f"for {provider.specialty.name}, any day."
        )
        self.say(
            f"1. {provider.name} ({provider.specialty.name}, {provider.location.name}) "
            f"calls in sick for {day:%A %-d %B}."
        )
        summary = mark_provider_unavailable(provider, day, day, "out sick", by="demo_scenario", channel=Via.DEMO)
        offers = list(
            Appointment.objects.filter(pk__in=[r["new_appointment"] for r in summary.reassigned])
            .select_related("patient", "provider")
            .order_by("start")
        )
        for offer in offers:
            self.say(
                f"   {offer.patient} moved to {offer.provider.name} at {staff_datetime(offer.start)}: offer emailed"
            )
        self.say(f"   {len(summary.waitlisted)} other patient(s) had no colleague free then and joined the waitlist.")
        if not offers:
            raise CommandError("Nobody could be offered a colleague.")
        declined = self.decline_from_outbox(offers)
        slot = self.wait_for_backfill(declined)
        if slot.filled_by_id:
            self.say(
                f"3. The slot went to {slot.filled_by.patient} from the waitlist "
                f"({slot.fill_ms} ms after the decline).",
                self.style.SUCCESS,
            )
            self.say(f"   Why: {why_chosen(slot)}.")
        site = settings.SITE_URL
        self.say(f"See it: {site}{reverse('schedule')}?date={day:%Y-%m-%d}&location={provider.location_id}")
        self.say(f"The messages patients were sent: {site}{reverse('outbox')}")

    def keen_patient(self, provider):
        patient, _ = Patient.objects.update_or_create(
            email=KEEN_PATIENT["email"],
            defaults={
                **KEEN_PATIENT,
                "preferred_location": provider.location,
                "available_days": [],
                "no_show_risk_source": Patient.RiskSource.MANUAL,
            },
        )
        WaitlistEntry.objects.filter(patient=patient, status=WaitlistEntry.Status.WAITING).delete()
        WaitlistEntry.defaults_from_patient(patient, specialty=provider.specialty).save()
        return patient

    def decline_from_outbox(self, offers):
        """What the patient's Decline button does, starting from the link in the stored email
        of the last offer sent by email (a patient who chose texts gets a short link instead)."""
        emails = OutboundEmail.objects.filter(appointment__in=offers, kind=OutboundEmail.Kind.REASSIGNMENT_OFFER)
        email = next(
            (e for e in emails.order_by("-appointment__start", "-created_at") if DECLINE_LINK.search(e.text_body)),
            None,
        )
        if email is None:
            raise CommandError("No offer was emailed with a Decline link.")
        offer = email.appointment
        path = DECLINE_LINK.search(email.text_body).group(1)
        action = PATIENT_ACTIONS["decline"]
        appointment = read_token(resolve(path).kwargs["token"], "decline")
        action.perform(appointment)
        self.say(
            f'2. {offer.patient} opens "{email.subject}" and clicks Decline: '
            f"they go first in line on the waitlist and the {staff_datetime(offer.start)} slot is freed."
        )
        return appointment

    def wait_for_backfill(self, appointment):
        deadline = time.monotonic() + self.wait
        while True:
            slot = FreedSlot.objects.select_related("filled_by__patient").filter(appointment=appointment).first()
            if slot is None:
                raise CommandError("The declined slot was not freed (too soon, or the colleague is away).")
            if slot.status != FreedSlot.Status.OPEN or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if slot.status == FreedSlot.Status.OPEN:
            self.say("Still open: is a qcluster running (bin/run starts one)?", self.style.WARNING)
        return slot
