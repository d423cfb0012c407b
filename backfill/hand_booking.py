"""Staff choose who gets a freed slot (docs/reference.md, API): the choices the appointment page
offers, and how the backfill's rules judge the one chosen before staff confirm."""

from backfill.explanation import judge_for_slot
from backfill.matching import busy_patients
from backfill.rules import Rules, SlotFacts
from waitlist.models import WaitlistEntry


def judge_choice(slot, entry):
    """The backfill's verdict on booking the entry into the slot: whether it fits, its score,
    and the sentence of every rule it fails (backfill/rules.py), for staff to read and confirm."""
    entry = WaitlistEntry.objects.select_related(
        "patient__insurance_plan", "specialty", "preferred_location", "preferred_provider"
    ).get(pk=entry.pk)
    facts = SlotFacts.of(slot)
    busy = busy_patients(facts).get(entry.patient_id)
    return judge_for_slot(entry, slot, facts, Rules(), busy)
