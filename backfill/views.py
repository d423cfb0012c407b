"""The staff pages of the backfill: the front desk's day schedule and the dashboard (SPEC 8)."""

from datetime import date, timedelta

import pygal
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from pygal.style import Style

from backfill.day_schedule import DaySchedule
from backfill.stats import backfill_stats, daily_counts
from clinic.access import staff_page
from clinic.models import Patient
from scheduling.models import NoShowModel

DASHBOARD_DAYS = 30
CHART_STYLE = Style(
    background="transparent", plot_background="transparent", font_family="system-ui, sans-serif",
    colors=("#4a7bb7", "#2f855a", "#e53e3e"),
)


@staff_page("scheduling.view_appointment")
def schedule(request):
    raw = request.GET.get("date", "").strip()
    try:
        day = date.fromisoformat(raw) if raw else timezone.localdate()
    except ValueError:
        error = f'"{raw}" is not a date; use YYYY-MM-DD, e.g. {timezone.localdate():%Y-%m-%d}.'
        return render(request, "staff/schedule.html", {"error": error, "today": timezone.localdate()}, status=400)
    return render(request, "staff/schedule.html", {"schedule": DaySchedule.for_day(day), "today": timezone.localdate()})


@staff_page("backfill.view_dashboard")
def dashboard(request):
    last = timezone.localdate()
    first = last - timedelta(days=DASHBOARD_DAYS - 1)
    stats = backfill_stats(first, last)
    return render(request, "staff/dashboard.html", {
        "stats": stats,
        "fill_rate_percent": round(stats["fill_rate"] * 100, 1),
        "median_time_to_fill": as_duration(stats["median_time_to_fill_seconds"]),
        "p95_time_to_fill": as_duration(stats["p95_time_to_fill_seconds"]),
        "chart": freed_slots_chart(daily_counts(first, last)),
        "no_show": no_show_model_panel(),
    })


def no_show_model_panel():
    """The no-show model in use (SPEC 15): how well it did on visits it never saw, or why none is used."""
    model = NoShowModel.objects.in_use()
    if model is None:
        return {"model": None, "why": NoShowModel.objects.why_none_in_use()}
    return {
        "model": model,
        "patients_set": Patient.objects.risk_set_by_model().count(),
        "calibration_error": model.metrics["calibration_error"],
        "chart": calibration_chart(model.metrics["calibration"]),
    }


def calibration_chart(deciles):
    """Predicted risk against the no-show rate observed, per tenth of the held-out visits."""
    chart = pygal.XY(
        js=[], disable_xml_declaration=True, style=CHART_STYLE, height=420, width=960, legend_at_bottom=True,
        truncate_legend=-1, x_title="Predicted no-show risk", y_title="Observed no-show rate", range=(0, 1),
        xrange=(0, 1), dots_size=5,
    )
    chart.add("Held-out visits, by tenth of predicted risk", [(d["predicted"], d["observed"]) for d in deciles])
    chart.add("Perfectly calibrated", [(0, 0), (1, 1)], show_dots=False, stroke_style={"dasharray": "4, 4"})
    return mark_safe(chart.render(is_unicode=True))  # noqa: S308 - pygal builds the SVG from numbers and our own labels


def freed_slots_chart(days):
    """Freed vs backfilled vs no-match per day, as inline SVG.

    js=[] keeps pygal from linking its tooltip script from a CDN: the page fetches nothing
    from outside the clinic's server.
    """
    chart = pygal.Bar(
        js=[], disable_xml_declaration=True, style=CHART_STYLE, height=320, width=960,
        x_label_rotation=-45, show_minor_x_labels=False, legend_at_bottom=True, print_zeroes=False,
        title=None, y_title="Slots", min_scale=1, order_min=0,
    )
    chart.x_labels = [f"{day['date']:%b %d}" for day in days]
    chart.x_labels_major = chart.x_labels[::7]
    for series, label in (("freed", "Freed"), ("backfilled", "Backfilled"), ("no_match", "No match")):
        chart.add(label, [day[series] for day in days])
    return mark_safe(chart.render(is_unicode=True))  # noqa: S308 - pygal builds the SVG from numbers and our own labels


def as_duration(seconds):
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
