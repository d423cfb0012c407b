"""The front desk's day schedule (SPEC 8)."""

from datetime import date

from django.shortcuts import render
from django.utils import timezone

from clinic.access import staff_page
from clinic.models import Location
from scheduling.day_schedule import DaySchedule

# The location the front desk last chose, kept for their next visit (issue 13).
LOCATION_KEY = "schedule_location"
ALL_LOCATIONS = "all"


class UnknownLocation(Exception):
    pass


def chosen_location(request, locations):
    """?location=<id> or ?location=all, else the one remembered in the session, else the
    first location: a front desk works at one site, so one site is what it sees."""
    raw = request.GET.get("location", "").strip() or request.session.get(LOCATION_KEY, "")
    by_id = {str(location.pk): location for location in locations}
    if raw == ALL_LOCATIONS or raw in by_id:
        if request.session.get(LOCATION_KEY) != raw:  # unchanged: no session write
            request.session[LOCATION_KEY] = raw
        return by_id.get(raw)
    if "location" in request.GET:
        raise UnknownLocation(f'"{raw}" is not one of the clinic\'s locations.')
    return locations[0] if locations else None


@staff_page("scheduling.view_appointment")
def schedule(request):
    today = timezone.localdate()
    locations = list(Location.objects.order_by("name"))
    raw = request.GET.get("date", "").strip()
    try:
        day = date.fromisoformat(raw) if raw else today
        location = chosen_location(request, locations)
    except ValueError:
        error = f'"{raw}" is not a date; use YYYY-MM-DD, e.g. {today:%Y-%m-%d}.'
        return render(request, "staff/schedule.html", {"error": error, "today": today}, status=400)
    except UnknownLocation as unknown:
        return render(request, "staff/schedule.html", {"error": str(unknown), "today": today}, status=400)
    return render(request, "staff/schedule.html", {
        "schedule": DaySchedule.for_day(day, location), "today": today, "locations": locations,
    })
