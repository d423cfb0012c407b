"""Template filters for times (clinic/times.py says which way each reader gets)."""

from django import template

from clinic import times

register = template.Library()


def _blank_for_none(format_):
    def filter_(value):
        return "" if value in (None, "") else format_(value)

    return filter_


for name in (
    "staff_time",
    "staff_date",
    "staff_datetime",
    "patient_date",
    "patient_time",
    "patient_datetime",
    "patient_short",
):
    register.filter(name, _blank_for_none(getattr(times, name)))


@register.filter
def on_clock(moment, location):
    """The moment on a location's clock, for the time filters after it: `start|on_clock:site|staff_datetime`."""
    return location.local(moment) if moment and location else moment


@register.simple_tag
def staff_range(start, end):
    return times.staff_range(start, end)


@register.simple_tag(takes_context=True)
def zone_note(context):
    """A page showing locations' own times says whose (`clock_locations`, and `clock_at` for
    the day they are read on); others the clinic's."""
    return times.zone_note(context.get("clock_locations") or (), context.get("clock_at"))
