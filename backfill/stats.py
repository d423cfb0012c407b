"""How well the schedule is kept full: the numbers behind the dashboard, the API's stats
and `backfill_report`."""

from dataclasses import dataclass
from datetime import date, timedelta
from statistics import median

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from backfill.models import FreedSlot, SlotOffer
from backfill.rules import Rules, risk_bands
from clinic import risk_scale
from clinic.models import day_bounds
from waitlist.models import WaitlistEntry

FILLED = (FreedSlot.Status.BACKFILLED, FreedSlot.Status.MANUAL)


def counting_zone(location=None):
    """The clock the days are counted on: the location's (docs/reference.md, Time zones), or with every location
    the clinic's TIME_ZONE, so a day is one span of time and each slot is counted once."""
    return location.zone if location is not None else timezone.get_default_timezone()


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def freed_between(first: date, last: date, location=None, specialty=None):
    """Slots freed between the two dates (inclusive, on the location's clock, else the
    clinic's), at one location and of one specialty when given: what every figure below counts."""
    start, end = day_bounds(first, last, counting_zone(location))
    slots = FreedSlot.objects.filter(freed_at__gte=start, freed_at__lt=end)
    if location is not None:
        slots = slots.filter(provider__location=location)
    if specialty is not None:
        slots = slots.filter(provider__specialty=specialty)
    return slots


def backfill_stats(first: date, last: date, location=None, specialty=None):
    """Slots freed between the two dates (inclusive, as `freed_between` counts), and what became of them."""
    slots = freed_between(first, last, location, specialty)
    by_status = dict(slots.values_list("status").annotate(n=Count("id")).order_by())
    freed = sum(by_status.values())
    backfilled = by_status.get(FreedSlot.Status.BACKFILLED, 0)
    filled = backfilled + by_status.get(FreedSlot.Status.MANUAL, 0)
    fill_ms = sorted(
        slots.filter(status=FreedSlot.Status.BACKFILLED, fill_ms__isnull=False).values_list("fill_ms", flat=True)
    )
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


def daily_counts(first: date, last: date, location=None, specialty=None):
    """Per day: freed, backfilled (auto or by hand) and no-match slots, for the chart."""
    rows = (
        freed_between(first, last, location, specialty)
        .annotate(day=TruncDate("freed_at", tzinfo=counting_zone(location)))
        .values_list("day", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    days = {
        first + timedelta(days=i): {"freed": 0, "backfilled": 0, "no_match": 0} for i in range((last - first).days + 1)
    }
    for day, status, count in rows:
        counts = days.setdefault(day, {"freed": 0, "backfilled": 0, "no_match": 0})
        counts["freed"] += count
        if status in FILLED:
            counts["backfilled"] += count
        elif status == FreedSlot.Status.NO_MATCH:
            counts["no_match"] += count
    return [{"date": day, **counts} for day, counts in sorted(days.items())]


def by_location_and_specialty(slots):
    """Freed and filled slots, and the fill rate, per location and specialty."""
    rows = {}
    counted = slots.values_list("provider__location__name", "provider__specialty__name", "status").annotate(
        n=Count("id")
    )
    for location, specialty, status, count in counted.order_by():
        row = rows.setdefault(
            (location, specialty), {"location": location, "specialty": specialty, "freed": 0, "filled": 0}
        )
        row["freed"] += count
        row["filled"] += count if status in FILLED else 0
    for row in rows.values():
        row["fill_rate"] = round(row["filled"] / row["freed"], 4)
    return [rows[key] for key in sorted(rows)]


def days_sooner(slots):
    """How much sooner backfilled patients were seen than the appointment they already held
    (the one their waitlist entry came from, when it was later): the median in days, and
    how many patients that is. Epic's Fast Pass reports a median of 14 days."""
    pairs = WaitlistEntry.objects.filter(
        booked_appointment__filled_slot__in=slots.filter(status__in=FILLED),
        original_appointment__isnull=False,
    ).values_list("booked_appointment__start", "original_appointment__start")
    days = [(later - booked).total_seconds() / 86400 for booked, later in pairs if later > booked]
    return {"median_days": round(median(days), 1) if days else None, "patients": len(days)}


def offer_funnel(slots):
    """Offer mode: offers of these slots sent, and how each ended."""
    by_status = dict(SlotOffer.objects.filter(slot__in=slots).values_list("status").annotate(n=Count("id")).order_by())
    sent = sum(by_status.values())
    accepted = by_status.get(SlotOffer.Status.ACCEPTED, 0)
    return {
        "sent": sent,
        "accepted": accepted,
        "declined": by_status.get(SlotOffer.Status.DECLINED, 0),
        "expired": by_status.get(SlotOffer.Status.EXPIRED, 0),
        "withdrawn": by_status.get(SlotOffer.Status.WITHDRAWN, 0),
        "pending": by_status.get(SlotOffer.Status.PENDING, 0),
        "acceptance_rate": round(accepted / sent, 4) if sent else 0.0,
    }


@dataclass
class RiskBand:
    """Waiting entries in one of the no-show risk rule's tiers, or under its floor."""

    points: int | None  # None: under the floor, never booked by the backfill
    typed: str  # the band for typed risks, "0.60–0.80"
    learned: str  # the band for learned ones, "between this clinic's median and 80th percentile"
    waiting: int = 0


def risk_band_words(low, high, config):
    """(typed, learned) words for ranking risks from `low` up to `high` (None: no top)."""
    if high is None:
        typed = f"{low:.2f} or more"
        learned = risk_scale.standing_words(risk_scale.standing_of_ranking_risk(low, config), config)
    elif low <= 0:
        typed = f"under {high:.2f}"
        learned = risk_scale.standing_words(risk_scale.standing_of_ranking_risk(high, config) - 1e-9, config)
    else:
        typed = f"{low:.2f}–{high:.2f}"
        words = [
            risk_scale.quantile_words(risk_scale.standing_of_ranking_risk(bound, config)) for bound in (low, high)
        ]
        learned = f"between this clinic's {words[0]} and {words[1]}"
    return typed, learned


def waitlist_by_risk(specialty=None, rules: Rules | None = None):
    """How the waiting list spreads over the no-show risk rule's tiers (backfill/rules.py), and
    how many its floor leaves out: one pass over the waiting entries' ranking risks."""
    rules = rules or Rules()
    bands, conditions = [], []
    for low, high, points in risk_bands(rules):
        bands.append(RiskBand(points, *risk_band_words(low, high, rules.config)))
        conditions.append(Q(ranking_risk__gte=low) & (Q() if high is None else Q(ranking_risk__lt=high)))
    floor = float(rules.MIN_NO_SHOW_RISK)
    if floor > 0:
        bands.append(RiskBand(None, *risk_band_words(0.0, floor, rules.config)))
        conditions.append(Q(ranking_risk__lt=floor))
    waiting = WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING)
    if specialty is not None:
        waiting = waiting.filter(specialty=specialty)
    counts = waiting.aggregate(**{f"band{i}": Count("pk", filter=condition) for i, condition in enumerate(conditions)})
    for index, band in enumerate(bands):
        band.waiting = counts[f"band{index}"]
    return bands


def floor_leaves_out_too_many(bands):
    """More than half of the waiting list under the floor: the backfill can book few of them."""
    total = sum(band.waiting for band in bands)
    left_out = sum(band.waiting for band in bands if band.points is None)
    return total > 0 and left_out * 2 > total
