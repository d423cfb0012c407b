"""The front desk's day schedule (SPEC 8)."""

from datetime import date

from django.shortcuts import render
from django.utils import timezone

from clinic.access import staff_page
from scheduling.day_schedule import DaySchedule


@staff_page("scheduling.view_appointment")
def schedule(request):
    raw = request.GET.get("date", "").strip()
    try:
        day = date.fromisoformat(raw) if raw else timezone.localdate()
    except ValueError:
        error = f'"{raw}" is not a date; use YYYY-MM-DD, e.g. {timezone.localdate():%Y-%m-%d}.'
        return render(request, "staff/schedule.html", {"error": error, "today": timezone.localdate()}, status=400)
    return render(request, "staff/schedule.html", {"schedule": DaySchedule.for_day(day), "today": timezone.localdate()})
