"""The staff pages of the backfill: the front desk's day schedule and the dashboard (docs/reference.md, API)."""

from datetime import UTC, date, datetime, time, timedelta

import pygal
from django import forms
from django.conf import settings
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from pygal.style import Style

from backfill.stats import (
    backfill_stats,
    by_location_and_specialty,
    counting_zone,
    daily_counts,
    days_sooner,
    floor_leaves_out_too_many,
    freed_between,
    offer_funnel,
    waitlist_by_risk,
)
from clinic.access import staff_page
from clinic.api import CLINIC_YEARS, OUTSIDE_CLINIC_YEARS
from clinic.models import Location, Patient, Specialty
from frontdesk.day_schedule import DaySchedule
from scheduling.models import NoShowModel

DASHBOARD_DAYS = 30
MAX_RANGE_DAYS = 366
CHART_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="system-ui, sans-serif",
    colors=("#4a7bb7", "#2f855a", "#e53e3e"),
)


def without_scripts(svg):
    """pygal writes its configuration into a <script> inside the SVG even with js=[]; the
    page's Content Security Policy (script-src 'self') refuses inline scripts, so the
    browser reported a violation on every dashboard. The chart needs no script to draw."""
    for parent in list(svg.iter()):
        for child in list(parent):
            if str(child.tag).rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return svg


def new_chart(kind, *, width, height, style, **options):
    """A pygal chart of the dashboard's: its legend under it, no scripts (see server_drawn)."""
    return kind(
        js=[],
        disable_xml_declaration=True,
        style=style,
        height=height,
        width=width,
        legend_at_bottom=True,
        **options,
    )


def server_drawn(chart, name):
    """The chart as inline SVG that fetches nothing (js=[] keeps pygal from linking its
    tooltip script from a CDN) and runs nothing; a screen reader reads `name`, not pygal's
    default title ("Pygal")."""

    def named(svg):
        svg.set("role", "img")
        svg.set("aria-label", name)
        return svg

    chart.add_xml_filter(without_scripts)
    chart.add_xml_filter(named)
    return mark_safe(chart.render(is_unicode=True))  # noqa: S308 - pygal builds the SVG from numbers and our own labels


# The location the front desk last chose, kept for their next visit.
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
        location = chosen_location(request, locations)
        today = location.today() if location else today  # the site's today (docs/reference.md, Time zones)
        day = date.fromisoformat(raw) if raw else today
    except ValueError:
        error = f'"{raw}" is not a date; use YYYY-MM-DD, e.g. {today:%Y-%m-%d}.'
        return render(request, "staff/schedule.html", {"error": error, "today": today}, status=400)
    except UnknownLocation as unknown:
        return render(request, "staff/schedule.html", {"error": str(unknown), "today": today}, status=400)
    if not in_clinic_years(day):  # the page links the day before and after: year 1 and 9999 have none
        return render(request, "staff/schedule.html", {"error": OUTSIDE_CLINIC_YEARS, "today": today}, status=400)
    schedule = DaySchedule.for_day(day, location, locations, shows_cancelled=request.GET.get("cancelled") == "1")
    return render(
        request,
        "staff/schedule.html",
        {
            "schedule": schedule,
            "today": today,
            "locations": locations,
            "clock_locations": schedule.locations,
            "clock_at": datetime.combine(day, time(12), tzinfo=UTC),
        },
    )


def in_clinic_years(day):
    return CLINIC_YEARS[0] <= day.year <= CLINIC_YEARS[1]


def clinic_day(day):
    """A form's day within the years the clinic keeps (clinic/api.py): the dashboard counts
    30 days back from its last, which before year 1 raised OverflowError."""
    if not in_clinic_years(day):
        raise forms.ValidationError(OUTSIDE_CLINIC_YEARS)


class DashboardFilter(forms.Form):
    """Which slots the dashboard counts: freed between two days, at a location, of a specialty."""

    start_date = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        validators=[clinic_day],
    )
    end_date = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        validators=[clinic_day],
    )
    location = forms.ModelChoiceField(Location.objects.order_by("name"), required=False, empty_label="All locations")
    specialty = forms.ModelChoiceField(
        Specialty.objects.order_by("name"), required=False, empty_label="All specialties"
    )

    def clean(self):
        data = super().clean()
        location = data.get("location")
        last = data.get("end_date") or (location.today() if location else timezone.localdate())
        first = data.get("start_date") or last - timedelta(days=DASHBOARD_DAYS - 1)
        if first > last:
            raise forms.ValidationError("The first day must not be after the last.")
        if (last - first).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(f"Choose at most {MAX_RANGE_DAYS} days.")
        data["start_date"], data["end_date"] = first, last
        return data


@staff_page("backfill.view_dashboard")
def dashboard(request):
    form = DashboardFilter(request.GET)
    if not form.is_valid():
        return render(request, "staff/dashboard.html", {"form": form}, status=400)
    first, last = form.cleaned_data["start_date"], form.cleaned_data["end_date"]
    where = {"location": form.cleaned_data["location"], "specialty": form.cleaned_data["specialty"]}
    stats = backfill_stats(first, last, **where)
    slots = freed_between(first, last, **where)
    funnel = offer_funnel(slots)
    risk_bands = waitlist_by_risk(where["specialty"])
    days = daily_counts(first, last, **where)
    return render(
        request,
        "staff/dashboard.html",
        {
            "form": form,
            "stats": stats,
            "days_on": counting_zone(where["location"]).key,
            "clock_locations": [where["location"]] if where["location"] else (),
            "by_site": by_location_and_specialty(slots),
            "sooner": days_sooner(slots),
            "funnel": funnel if settings.BACKFILL["OFFER_MODE"] or funnel["sent"] else None,
            "funnel_acceptance_percent": round(funnel["acceptance_rate"] * 100, 1),
            "fill_rate_percent": round(stats["fill_rate"] * 100, 1),
            "median_time_to_fill": as_duration(stats["median_time_to_fill_seconds"]),
            "p95_time_to_fill": as_duration(stats["p95_time_to_fill_seconds"]),
            "outcomes": slot_outcomes(stats),
            "chart": freed_slots_chart(days),
            "phone_chart": freed_slots_chart(days, **PHONE_CHART),
            "no_show": no_show_model_panel(),
            "risk_bands": risk_bands,
            "floor_leaves_out_too_many": floor_leaves_out_too_many(risk_bands),
        },
    )


def slot_outcomes(stats):
    """(what became of a freed slot, how many, what it means), in the words the front desk reads."""
    config = settings.BACKFILL
    return [
        ("Backfilled", stats["backfilled"], "booked from the waitlist by the backfill itself"),
        ("Booked by hand", stats["filled_by_hand"], "staff chose the patient, on the appointment page or the admin"),
        ("No match", stats["no_match"], "nobody waiting fitted the slot; staff may still book someone by hand"),
        ("Still open", stats["open"], "the backfill is still at work on it (a run or an offer under way)"),
        ("Failed", stats["failed"], f"its runs failed {config['MAX_ATTEMPTS']} times; retry it on its page"),
        (
            "Expired",
            stats["expired"],
            f"still unfilled {config['MIN_LEAD_MINUTES']} minutes before it began: too late to offer to anyone",
        ),
    ]


def no_show_model_panel():
    """The no-show model in use (docs/reference.md, No-show model): how well it did on visits it never saw,
    or why none is used."""
    model = NoShowModel.objects.in_use()
    if model is None:
        return {"model": None, "why": NoShowModel.objects.why_none_in_use()}
    return {
        "model": model,
        "patients_set": Patient.objects.risk_set_by_model().count(),
        "calibration_error": model.metrics["calibration_error"],
        "chart": calibration_chart(model.metrics["calibration"]),
        "phone_chart": calibration_chart(model.metrics["calibration"], width=420, height=420, style=PHONE_STYLE),
    }


def calibration_chart(deciles, width=960, height=420, style=CHART_STYLE):
    """Predicted risk against the no-show rate observed, per tenth of the held-out visits."""
    chart = new_chart(
        pygal.XY,
        style=style,
        height=height,
        width=width,
        truncate_legend=-1,
        x_title="Predicted no-show risk",
        y_title="Observed no-show rate",
        range=(0, 1),
        xrange=(0, 1),
        dots_size=5,
    )
    chart.add("Held-out visits, by tenth of predicted risk", [(d["predicted"], d["observed"]) for d in deciles])
    chart.add("Perfectly calibrated", [(0, 0), (1, 1)], show_dots=False, stroke_style={"dasharray": "4, 4"})
    return server_drawn(chart, "Predicted no-show risk against the no-show rate observed")


# A phone's chart: drawn for its narrow screen, with fewer day labels, rather than the
# desktop's shrunk to unreadable text (the page shows one or the other, static/css/staff.css).
PHONE_STYLE = Style(
    **{name: getattr(CHART_STYLE, name) for name in ("background", "plot_background", "font_family", "colors")},
    label_font_size=14,
    major_label_font_size=14,
    legend_font_size=16,
    title_font_size=16,
)
PHONE_CHART = {"width": 420, "height": 380, "day_labels": 3, "style": PHONE_STYLE}


def freed_slots_chart(days, width=960, height=320, day_labels=6, style=CHART_STYLE):
    """Freed vs backfilled vs no-match per day, as inline SVG."""
    chart = new_chart(
        pygal.Bar,
        style=style,
        height=height,
        width=width,
        x_label_rotation=-45,
        show_minor_x_labels=False,
        print_zeroes=False,
        title=None,
        y_title="Slots",
        min_scale=1,
        order_min=0,
    )
    chart.x_labels = [f"{day['date']:%b %d}" for day in days]
    chart.x_labels_major = chart.x_labels[:: max(1, len(days) // (day_labels - 1))]
    for series, label in (("freed", "Freed"), ("backfilled", "Backfilled"), ("no_match", "No match")):
        chart.add(label, [day[series] for day in days])
    return server_drawn(chart, "Freed, backfilled and no-match slots per day")


def as_duration(seconds):
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
