"""How well the schedule is kept full: the numbers behind the dashboard, the API's stats
and `backfill_report`."""

from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from backfill.models import FreedSlot

FILLED = (FreedSlot.Status.BACKFILLED, FreedSlot.Status.MANUAL)


def day_bounds(first: date, last: date):
    start = timezone.make_aware(datetime.combine(first, time.min))
    end = timezone.make_aware(datetime.combine(last + timedelta(days=1), time.min))
    return start, end


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def backfill_stats(first: date, last: date):
    """Slots freed between the two dates (inclusive, clinic time), and what became of them."""
    start, end = day_bounds(first, last)
    slots = FreedSlot.objects.filter(freed_at__gte=start, freed_at__lt=end)
    by_status = dict(slots.values_list("status").annotate(n=Count("id")).order_by())
    freed = sum(by_status.values())
    backfilled = by_status.get(FreedSlot.Status.BACKFILLED, 0)
    filled = backfilled + by_status.get(FreedSlot.Status.MANUAL, 0)
    fill_ms = sorted(slots.filter(status=FreedSlot.Status.BACKFILLED, fill_ms__isnull=False).values_list("fill_ms", flat=True))
    median, p95 = percentile(fill_ms, 0.5), percentile(fill_ms, 0.95)
    return {
        "start_date": first,
        "end_date": last,
        "freed": freed,
        "backfilled": backfilled,
        "filled_by_hand": by_status.get(FreedSlot.Status.MANUAL, 0),
        "no_match": by_status.get(FreedSlot.Status.NO_MATCH, 0),
        "open": by_status.get(FreedSlot.Status.OPEN, 0),
        "failed": by_status.get(FreedSlot.Status.FAILED, 0),
        "expired": by_status.get(FreedSlot.Status.EXPIRED, 0),
        "fill_rate": round(filled / freed, 4) if freed else 0.0,
        "median_time_to_fill_seconds": median / 1000 if median is not None else None,
        "p95_time_to_fill_seconds": p95 / 1000 if p95 is not None else None,
        "revenue_recovered": filled * settings.BACKFILL["SLOT_VALUE"],
        "slot_value": settings.BACKFILL["SLOT_VALUE"],
    }


def daily_counts(first: date, last: date):
    """Per day: freed, backfilled (auto or by hand) and no-match slots, for the chart."""
    start, end = day_bounds(first, last)
    rows = (
        FreedSlot.objects.filter(freed_at__gte=start, freed_at__lt=end)
        .annotate(day=TruncDate("freed_at", tzinfo=timezone.get_current_timezone()))
        .values_list("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    days = {first + timedelta(days=i): {"freed": 0, "backfilled": 0, "no_match": 0} for i in range((last - first).days + 1)}
    for day, status, count in rows:
        counts = days.setdefault(day, {"freed": 0, "backfilled": 0, "no_match": 0})
        counts["freed"] += count
        if status in FILLED:
            counts["backfilled"] += count
        elif status == FreedSlot.Status.NO_MATCH:
            counts["no_match"] += count
    return [{"date": day, **counts} for day, counts in sorted(days.items())]
