"""Contact rules for offers (BACKFILL settings): no offers in QUIET_HOURS, at most
MAX_OFFERS_PER_WEEK per patient, and a pause after PAUSE_AFTER_DECLINES offers in a row
went by. Booking confirmations are not offers: they go at once, whatever the hour.
"""

import logging
import zoneinfo
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import Count

from backfill.models import MatchLog, SlotOffer
from clinic.models import Patient

log = logging.getLogger("backfill")

LET_GO = (SlotOffer.Status.DECLINED, SlotOffer.Status.EXPIRED)


def rules():
    return settings.BACKFILL


def slot_zone(slot):
    """The slot's location's time zone (docs/reference.md, Time zones), else the clinic's TIME_ZONE."""
    name = getattr(slot.provider.location, "time_zone", "") or settings.TIME_ZONE
    return zoneinfo.ZoneInfo(name)


def quiet_hours():
    """(start, end) times of day, or None when QUIET_HOURS is empty."""
    spec = (rules().get("QUIET_HOURS") or "").strip()
    if not spec:
        return None
    start, end = (time.fromisoformat(part.strip()) for part in spec.split("-"))
    return start, end


def quiet_until(now, zone):
    """When the quiet hours around `now` end (an aware datetime), or None outside them."""
    hours = quiet_hours()
    if hours is None:
        return None
    start, end = hours
    local = now.astimezone(zone)
    clock = local.time()
    overnight = start > end
    inside = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not inside:
        return None
    day = local.date() + timedelta(days=1) if overnight and clock >= start else local.date()
    return datetime.combine(day, end, tzinfo=zone)


def held_back(patient_ids, now):
    """{patient id: MatchLog outcome} for those the weekly cap or a pause keeps from an offer."""
    held = {
        pk: MatchLog.Outcome.OFFERS_PAUSED
        for pk in Patient.objects.filter(pk__in=patient_ids, offers_paused_at__isnull=False).values_list(
            "pk", flat=True
        )
    }
    cap = rules().get("MAX_OFFERS_PER_WEEK", 0)
    if cap:
        counts = (
            SlotOffer.objects.filter(patient_id__in=patient_ids, sent_at__gt=now - timedelta(days=7))
            .values("patient_id")
            .annotate(n=Count("pk"))
            .filter(n__gte=cap)
        )
        for row in counts:
            held.setdefault(row["patient_id"], MatchLog.Outcome.WEEKLY_OFFER_LIMIT)
    return held


def note_offer_let_go(patient_id, now):
    """After a declined or expired offer: pause the patient once PAUSE_AFTER_DECLINES went by
    in a row since offers were last resumed."""
    limit = rules().get("PAUSE_AFTER_DECLINES", 0)
    if not limit:
        return False
    patient = Patient.objects.get(pk=patient_id)
    if patient.offers_paused_at:
        return False
    answered = SlotOffer.objects.filter(patient_id=patient_id).exclude(status=SlotOffer.Status.PENDING)
    if patient.offers_resumed_at:
        answered = answered.filter(sent_at__gte=patient.offers_resumed_at)
    latest = list(answered.order_by("-sent_at", "-id").values_list("status", flat=True)[:limit])
    if len(latest) < limit or any(status not in LET_GO for status in latest):
        return False
    patient.pause_offers(now)
    log.info("patient.offers_paused patient=%s after=%s", patient_id, limit)
    return True
