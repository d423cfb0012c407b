"""A candidate's points by rule, in the front desk's words."""

from django import template

register = template.Library()

RULE_WORDS = {"no_show_risk": "no-show risk", "time_of_day": "time of day"}


@register.filter
def points_by_rule(breakdown):
    """{"no_show_risk": 40, "specialty": 20} -> "no-show risk 40, specialty 20"."""
    if not breakdown:
        return "–"
    return ", ".join(f"{RULE_WORDS.get(rule, rule.replace('_', ' '))} {points}" for rule, points in breakdown.items())
