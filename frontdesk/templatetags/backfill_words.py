"""A candidate's points by rule, in the front desk's words."""

from django import template

from backfill.models import FreedSlot
from backfill.rules import Rules, risk_points
from scheduling import reassignment

register = template.Library()

RULE_WORDS = {"no_show_risk": "no-show risk", "time_of_day": "time of day"}
# Cancel reasons the workflows write as codes (the API keeps them as they are), in words.
CANCEL_REASON_WORDS = {
    reassignment.CANCEL_REASON: "the provider is away; the patient was offered a colleague or the waitlist",
    reassignment.DECLINE_REASON: "the patient declined the move to another provider",
}
# Who cancelled, when it was not a member of staff (whose username is kept).
ACTOR_WORDS = {"patient": "the patient", "backfill": "the backfill (the patient took an earlier slot)"}


HOW_BOOKED = {
    "backfill": "by the backfill, from the waitlist",
    "reassignment": "as a move from another provider",
    "api": "through the API",
    "hl7": "by the EHR's feed (HL7)",
    "staff": "by staff",
}


@register.filter
def how_booked(appointment):
    """ "by hand from the waitlist, by frontdesk" / "by the backfill, from the waitlist" / ..."""
    filled = getattr(appointment, "filled_slot", None)
    if filled is not None and filled.status == FreedSlot.Status.MANUAL:
        words = "by hand from the waitlist"
    else:
        words = HOW_BOOKED.get(appointment.source, appointment.get_source_display())
    return f"{words}, by {appointment.booked_by}" if appointment.booked_by else words


@register.filter
def cancel_reason_words(reason):
    return CANCEL_REASON_WORDS.get(reason, reason)


@register.filter
def actor_words(by):
    return ACTOR_WORDS.get(by, by)


@register.filter
def points_by_rule(breakdown):
    """{"no_show_risk": 40, "specialty": 20} -> "no-show risk 40, specialty 20"."""
    if not breakdown:
        return "–"
    return ", ".join(f"{RULE_WORDS.get(rule, rule.replace('_', ' '))} {points}" for rule, points in breakdown.items())


@register.filter
def risk_level(entry):
    """ "high", "medium" or "low": the no-show risk rule's points for the entry (backfill/rules.py)."""
    rules = Rules()
    points = risk_points(entry, rules)
    if points and points >= rules.HIGH_RISK_POINTS:
        return "high"
    return "medium" if points else "low"
