"""How times are written: one way for staff, one for patients.

Staff read the clinic's local time on a 24-hour clock ("Wed 2 Dec 2026, 13:00"), with the
zone named once per page (`zone_note`), never beside each time. Patients read a sentence
("Wednesday, December 2, 2026 at 1:00 PM EST"): they may read it from another zone, so their
times carry the zone's abbreviation.

Every template goes through clinic/templatetags/clinic_times.py, which wraps these.
"""

from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.utils import timezone

UTC = ZoneInfo("UTC")


def _local(moment):
    """A moment given on a location's clock stays on it (docs/reference.md, Time zones); one straight from the
    database (UTC) is put on the clinic's."""
    if timezone.is_naive(moment) or moment.utcoffset() is None:
        return moment
    if moment.tzinfo in (dt_timezone.utc, UTC):  # noqa: UP017 - both spellings arrive
        return timezone.localtime(moment)
    return moment


def staff_time(moment):
    return f"{_local(moment):%H:%M}"


def staff_date(day):
    return f"{day:%a} {day.day} {day:%b %Y}"


def staff_datetime(moment):
    local = _local(moment)
    return f"{staff_date(local)}, {local:%H:%M}"


def staff_range(start, end):
    return f"{staff_time(start)}–{staff_time(end)}"


def zone_note(locations=(), at=None):
    """The sentence a staff page shows once: which clock its times are on. A page of one
    location's, or of several, names their clocks (docs/reference.md, Time zones); any other the clinic's.
    `at` (default now) picks the abbreviation: PST or PDT."""
    at = at or timezone.now()
    sites = {}
    for location in locations:
        sites.setdefault(location.time_zone, []).append(location.name)
    if len(sites) <= 1:
        name = next(iter(sites), timezone.get_current_timezone_name())
        return f"Times are {_zone_name(name, at)}"
    clocks = "; ".join(f"{_zone_name(name, at)} at {', '.join(names)}" for name, names in sites.items())
    return f"Times are each location's own: {clocks}"


def _zone_name(name, at):
    return f"{name} ({at.astimezone(ZoneInfo(name)):%Z})"


def _clock(local):
    return f"{local.hour % 12 or 12}:{local:%M} {'AM' if local.hour < 12 else 'PM'}"


def patient_date(day):
    return f"{day:%A, %B} {day.day}, {day.year}"


def patient_time(moment):
    local = _local(moment)
    return f"{_clock(local)} {local:%Z}".strip()


def patient_datetime(moment):
    local = _local(moment)
    return f"{patient_date(local)} at {patient_time(local)}"


def patient_short(moment):
    """For subjects, where space is short: "Wed, Dec 2 at 1:00 PM"."""
    local = _local(moment)
    return f"{local:%a, %b} {local.day} at {_clock(local)}"
