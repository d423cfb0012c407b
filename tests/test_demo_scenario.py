"""`manage.py demo_scenario provider-sick` on the demo clinic: the reassignment story.

The queue runs in-process (tests/settings.py), and on_commit hand-offs need real commits, so
these tests run outside a wrapping transaction.
"""

import io
import re

import pytest
from django.core.management import call_command

from backfill.models import FreedSlot
from clinic.models import OutboundEmail
from clinic.times import staff_datetime
from scheduling.models import Appointment, ProviderUnavailability
from scheduling.reassignment import DECLINE_REASON
from waitlist.models import WaitlistEntry

# The roles seed_demo gives its logins come from migrations, which an earlier transactional
# test's flush emptied: the roles fixture makes them again.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("roles")]


def play():
    out = io.StringIO()
    call_command("seed_demo", "--history-days", "0", stdout=io.StringIO())
    call_command("demo_scenario", "provider-sick", "--wait", "5", stdout=out)
    return out.getvalue()


def test_the_provider_sick_story_offers_colleagues_and_backfills_a_decline():
    out = play()

    absence = ProviderUnavailability.objects.get()
    assert absence.reason == "out sick"
    offers = Appointment.objects.filter(source=Appointment.Source.REASSIGNMENT)
    assert offers.filter(status=Appointment.Status.OFFERED).count() >= 1
    offered_by_message = OutboundEmail.objects.filter(kind=OutboundEmail.Kind.REASSIGNMENT_OFFER).values_list(
        "appointment", flat=True
    )
    assert set(offered_by_message) == set(offers.values_list("pk", flat=True))  # an email, a text or both each
    declined = offers.get(status=Appointment.Status.CANCELLED, cancel_reason=DECLINE_REASON)
    assert WaitlistEntry.objects.get(patient=declined.patient, status="waiting").reason == "declined_reassignment"
    slot = FreedSlot.objects.get(appointment=declined)
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert f"The slot went to {slot.filled_by.patient} from the waitlist" in out
    assert "clicks Decline" in out


def test_the_same_demo_plays_the_same_story():
    first = play()
    call_command("seed_demo", "--reset", "--history-days", "0", stdout=io.StringIO())
    second = io.StringIO()
    call_command("demo_scenario", "provider-sick", "--wait", "5", stdout=second)

    def story(text):  # the seed's rows have new ids each time: a link names the location by its id
        return [re.sub(r"location=\d+", "location=…", line) for line in text.splitlines() if "ms after" not in line]

    assert story(first) == story(second.getvalue())


def test_with_the_model_setting_the_risks_the_story_still_backfills_the_decline_and_says_why():
    call_command("seed_demo", stdout=io.StringIO())  # 90 days of history: the model sets the risks
    out = io.StringIO()
    call_command("demo_scenario", "provider-sick", "--wait", "5", stdout=out)

    declined = Appointment.objects.get(source=Appointment.Source.REASSIGNMENT, cancel_reason=DECLINE_REASON)
    slot = FreedSlot.objects.get(appointment=declined)
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert f"The slot went to {slot.filled_by.patient} from the waitlist" in out.getvalue()
    assert "Why: no-show risk " in out.getvalue()


def test_the_high_risk_story_is_told_in_names_and_times_with_links_to_the_running_demo(settings):
    settings.SITE_URL = "http://127.0.0.1:8123"  # as bin/manage sets it for a demo on PORT=8123
    out = io.StringIO()
    call_command("seed_demo", "--history-days", "0", stdout=io.StringIO())

    call_command("demo_scenario", "high-risk", "--wait", "5", stdout=out)

    slot = FreedSlot.objects.get(reason="demo: patient called in sick")
    told = out.getvalue()
    assert f"phones to cancel {staff_datetime(slot.start)}" in told
    assert f"The slot went to {slot.filled_by.patient} from the waitlist" in told
    assert f"See it: http://127.0.0.1:8123/schedule/appointments/{slot.appointment_id}/" in told
    assert not re.search(r"\b(patient|appointment|slot) \d+", told, re.IGNORECASE)  # names, not ids
