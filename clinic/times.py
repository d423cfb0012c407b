"""How times are written: one way for staff, one for patients.

Staff read the clinic's local time on a 24-hour clock ("Wed 2 Dec 2026, 13:00"), with the
zone named once per page (`zone_note`), never beside each time; the admin writes the same
(clinic/formats/). Patients read a sentence in their language ("Wednesday, December 2, 2026
at 1:00 PM EST", "miércoles, 2 de diciembre de 2026 a la 1:00 p. m. EST"): they may read it
from another zone, so their times carry the zone's abbreviation. Texts and subjects use the
short form ("Wed, Dec 2 at 1:00 PM").

The patterns are translatable strings (locale/), the day and month names Django's own, so a
language is added in its catalog alone. Every template goes through
clinic/templatetags/clinic_times.py, which wraps these.
"""

from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

from django.utils import dateformat, timezone
from django.utils.translation import gettext, ngettext, pgettext

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
    """ "1:05 PM" in English, "1:05 p. m." in Spanish."""
    meridiem = pgettext("time of day", "AM") if local.hour < 12 else pgettext("time of day", "PM")
    return f"{local.hour % 12 or 12}:{local:%M} {meridiem}"


def _hour(local):
    """The count Spanish needs to say "a la 1:00" but "a las 3:00" (ngettext's plural forms)."""
    return local.hour % 12 or 12


def _names(day):
    """The day's and month's names in the active language, from Django's own catalogs."""
    return {
        "weekday": dateformat.format(day, "l"),
        "weekday_short": dateformat.format(day, "D"),
        "month": dateformat.format(day, "F"),
        "month_short": dateformat.format(day, "M"),
        "day": day.day,
        "year": day.year,
    }


def patient_date(day):
    return gettext("{weekday}, {month} {day}, {year}").format(**_names(day))


def patient_time(moment):
    local = _local(moment)
    return f"{_clock(local)} {local:%Z}".strip()


def patient_datetime(moment):
    local = _local(moment)
    return ngettext("{date} at {time}", "{date} at {time}", _hour(local)).format(
        date=patient_date(local), time=patient_time(local)
    )


def patient_short(moment):
    """For subjects and texts, where space is short: "Wed, Dec 2 at 1:00 PM"."""
    local = _local(moment)
    return ngettext(
        "{weekday_short}, {month_short} {day} at {time}",
        "{weekday_short}, {month_short} {day} at {time}",
        _hour(local),
    ).format(time=_clock(local), **_names(local))
