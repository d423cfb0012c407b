"""Why this patient and not that one, in words (docs/reference.md, Staff explanation), read off the rule table.

`explain` judges one waitlist entry against one slot with the rules' Python side (the
same the full-scan reference uses), so what staff read is what the engine does:
tests/test_explanation.py checks its eligible entries and their order against
`rank_candidates`.
"""

import copy
from dataclasses import dataclass

from backfill import rules as table
from backfill.matching import busy_patients
from backfill.rules import Case, Rules, SlotFacts
from waitlist.models import WaitlistEntry


class Outcome:
    BOOKED = "booked"
    RANKED_LOWER = "ranked_lower"
    LEFT_OUT = "left_out"


@dataclass
class Explanation:
    entry: WaitlistEntry
    eligible: bool
    score: int
    breakdown: dict  # points by rule
    words: dict  # "available Wednesdays: +20" by rule
    reasons: list  # the sentence of every rule the entry fails
    outcome: str = ""

    @property
    def summary(self):
        """The breakdown in one line: "no-show risk 0.85: +40 · available Wednesdays: +20"."""
        return " · ".join(self.words.values())

    @property
    def rank_key(self):
        return table.rank_key(self.score, self.entry)


def explain(entry, slot: SlotFacts, rules: Rules | None = None, busy_with=None, rule_table=table.RULES):
    """Whether the entry may be booked into the slot, its score by rule, and why not.

    `busy_with` is the patient's appointment overlapping the slot, if any (explain_slot
    looks them all up at once); needs `entry.patient`.
    """
    case = Case(entry, slot, rules or Rules(), busy_with)
    score, breakdown = table.score(case, rule_table)
    reasons = table.refusals(case, rule_table)
    if score < case.rules.MIN_SCORE:
        reasons.append(f"score {score} is under the minimum {case.rules.MIN_SCORE}")
    return Explanation(entry, not reasons, score, breakdown, table.breakdown_words(case, rule_table), reasons)


def explain_slot(slot, rules: Rules | None = None):
    """Every waiting entry of the slot's specialty (and the one booked into it), eligible
    first in the engine's order, each with its outcome for this slot."""
    rules = rules or Rules()
    facts = SlotFacts.of(slot)
    busy = busy_patients(facts)
    if slot.filled_by_id:
        busy = {patient: appointment for patient, appointment in busy.items() if appointment.pk != slot.filled_by_id}
    explanations = [
        judge_for_slot(entry, slot, facts, rules, busy.get(entry.patient_id)) for entry in _entries_of(slot)
    ]
    return sorted(explanations, key=lambda explanation: (not explanation.eligible, explanation.rank_key))


def _entries_of(slot):
    waiting = WaitlistEntry.objects.filter(
        specialty_id=slot.provider.specialty_id, status=WaitlistEntry.Status.WAITING
    )
    if slot.filled_by_id:
        waiting = waiting | WaitlistEntry.objects.filter(booked_appointment_id=slot.filled_by_id)
    return waiting.select_related("patient__insurance_plan", "specialty", "preferred_location", "preferred_provider")


def judge_for_slot(entry, slot, facts, rules, busy_with):
    """One entry's explanation for one freed slot (the slot's page and its paged waitlist)."""
    booked = slot.filled_by_id is not None and entry.booked_appointment_id == slot.filled_by_id
    # The booked entry is judged as it stood when it was chosen: still waiting.
    judged = replace_status(entry, WaitlistEntry.Status.WAITING) if booked else entry
    explanation = explain(judged, facts, rules, busy_with)
    explanation.entry = entry
    if booked:
        explanation.outcome = Outcome.BOOKED
    else:
        explanation.outcome = Outcome.RANKED_LOWER if explanation.eligible else Outcome.LEFT_OUT
    return explanation


def replace_status(entry, status):
    judged = copy.copy(entry)  # keeps the related objects already loaded
    judged.status = status
    return judged
