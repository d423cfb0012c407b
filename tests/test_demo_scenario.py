"""`manage.py demo_scenario provider-sick` on the demo clinic: the reassignment story.

The queue runs in-process (tests/settings.py), and on_commit hand-offs need real commits, so
these tests run outside a wrapping transaction.
"""

import io

import pytest
from django.core.management import call_command

from backfill.models import FreedSlot
from clinic.models import OutboundEmail
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

    assert [line for line in first.splitlines() if "ms after" not in line] == [
        line for line in second.getvalue().splitlines() if "ms after" not in line
    ]


def test_with_the_model_setting_the_risks_the_story_still_backfills_the_decline_and_says_why():
    call_command("seed_demo", stdout=io.StringIO())  # 90 days of history: the model sets the risks
    out = io.StringIO()
    call_command("demo_scenario", "provider-sick", "--wait", "5", stdout=out)

    declined = Appointment.objects.get(source=Appointment.Source.REASSIGNMENT, cancel_reason=DECLINE_REASON)
    slot = FreedSlot.objects.get(appointment=declined)
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert f"The slot went to {slot.filled_by.patient} from the waitlist" in out.getvalue()
    assert "Why: no-show risk " in out.getvalue()
