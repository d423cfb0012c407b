"""Who fits a freed slot, and in what order (SPEC 5).

The waitlist can hold a hundred thousand entries, so it is never loaded whole. The score
has only a few slot-dependent parts (the no-show risk tier and the location bonus), so the
waiting entries split into a handful of groups in which every entry gets the same points
for those parts. Inside a group the order the seed wants (declined reassignment first,
then higher risk, then longest waiting) is exactly the order of the `waitlist_rank`
index, so each group's best few come straight off the index. Merging the heads of the
groups and scoring them in Python gives the same ranking as scoring everyone, at the cost
of a few index probes.
"""

from dataclasses import dataclass, field
from datetime import datetime
from itertools import product

from django.conf import settings
from django.db.models import BigIntegerField, ExpressionWrapper, F, Q
from django.utils import timezone

from clinic.fields import span_mask, weekday_bit, windows_to_mask
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry


@dataclass(frozen=True)
class SlotFacts:
    """What matching needs to know about a slot, in the clinic's local time."""

    provider_id: int
    specialty_id: int
    location_id: int
    start: datetime
    end: datetime
    freed_by_patient_id: int | None = None

    @classmethod
    def of(cls, slot):
        return cls(
            provider_id=slot.provider_id,
            specialty_id=slot.provider.specialty_id,
            location_id=slot.provider.location_id,
            start=slot.start,
            end=slot.end,
            freed_by_patient_id=slot.appointment.patient_id if slot.appointment_id else None,
        )

    @property
    def local_start(self):
        return timezone.localtime(self.start)

    @property
    def weekday_bit(self):
        return weekday_bit(self.local_start.weekday())

    @property
    def time_span_mask(self):
        return span_mask(self.local_start.time(), timezone.localtime(self.end).time())


@dataclass
class Candidate:
    entry: WaitlistEntry
    score: int
    breakdown: dict
    already_booked: bool = False

    @property
    def rank_key(self):
        entry = self.entry
        return (-self.score, not entry.declined_first, -entry.no_show_risk, entry.created_at, entry.pk)


@dataclass
class Rules:
    """The BACKFILL settings that decide who matches, read once per run."""

    config: dict = field(default_factory=lambda: dict(settings.BACKFILL))

    def __getattr__(self, name):
        try:
            return self.config[name]
        except KeyError:
            raise AttributeError(name) from None

    def risk_points(self, risk):
        if risk >= self.HIGH_RISK_THRESHOLD:
            return self.HIGH_RISK_POINTS
        if risk >= self.MEDIUM_RISK_THRESHOLD:
            return self.MEDIUM_RISK_POINTS
        return 0

    def risk_tiers(self):
        """(lowest risk, highest risk exclusive, points) for each tier that may match."""
        floor = self.MIN_NO_SHOW_RISK
        bounds = [(self.HIGH_RISK_THRESHOLD, None, self.HIGH_RISK_POINTS),
                  (self.MEDIUM_RISK_THRESHOLD, self.HIGH_RISK_THRESHOLD, self.MEDIUM_RISK_POINTS),
                  (0.0, self.MEDIUM_RISK_THRESHOLD, 0)]
        tiers = []
        for low, high, points in bounds:
            if high is not None and high <= floor:
                continue
            tiers.append((max(low, floor), high, points))
        return tiers


def score_entry(entry, slot: SlotFacts, rules: Rules):
    """The seed's score, by rule. Works on any entry, eligible or not (the naive baseline uses it)."""
    local_start = slot.local_start
    days_ok = not entry.available_days or local_start.strftime("%a").lower() in entry.available_days
    breakdown = {
        "no_show_risk": rules.risk_points(entry.no_show_risk),
        "specialty": rules.SPECIALTY_POINTS if entry.specialty_id == slot.specialty_id else 0,
        "availability": rules.AVAILABILITY_POINTS if days_ok else 0,
        "location": rules.LOCATION_POINTS if entry.preferred_location_id == slot.location_id else 0,
    }
    if rules.TIME_OF_DAY_POINTS:
        inside = bool(entry.time_windows) and _inside_windows(entry, slot)
        breakdown["time_of_day"] = rules.TIME_OF_DAY_POINTS if inside else 0
    return sum(breakdown.values()), breakdown


def _inside_windows(entry, slot):
    wanted = slot.time_span_mask
    return windows_to_mask(entry.time_windows) & wanted == wanted


def eligible_entries(slot: SlotFacts, rules: Rules):
    """Waiting entries that may be booked into the slot: SPEC 5's hard filters, in SQL."""
    local_day = slot.local_start.date()
    day, span = slot.weekday_bit, slot.time_span_mask
    entries = WaitlistEntry.objects.filter(
        specialty_id=slot.specialty_id,
        status=WaitlistEntry.Status.WAITING,
        patient__email_opt_out=False,
    ).filter(
        Q(earliest_date__isnull=True) | Q(earliest_date__lte=local_day),
        Q(latest_date__isnull=True) | Q(latest_date__gte=local_day),
        Q(preferred_provider__isnull=True) | Q(preferred_provider_id=slot.provider_id),
    ).alias(
        day_hit=ExpressionWrapper(F("available_days").bitand(day), output_field=BigIntegerField()),
        time_hit=ExpressionWrapper(F("time_windows").bitand(span), output_field=BigIntegerField()),
    )
    if slot.freed_by_patient_id:
        entries = entries.exclude(patient_id=slot.freed_by_patient_id)
    if rules.MIN_NO_SHOW_RISK > 0:
        entries = entries.filter(no_show_risk__gte=rules.MIN_NO_SHOW_RISK)
    if rules.REQUIRE_AVAILABILITY:
        # SPEC 5: availability is required, not only scored.
        entries = entries.filter(_available_days(slot), Q(time_windows=0) | Q(time_hit=span))
    return entries


def _available_days(slot):
    return Q(available_days=0) | Q(day_hit=slot.weekday_bit)


def _splits(slot: SlotFacts, rules: Rules):
    """Each slot-dependent rule as alternatives (condition, points) that cover every entry."""
    tiers = []
    for low, high, points in rules.risk_tiers():
        risk = Q(no_show_risk__gte=low) & (Q(no_show_risk__lt=high) if high is not None else Q())
        tiers.append((risk, points))
    yield tiers
    if rules.LOCATION_POINTS:
        here = Q(preferred_location_id=slot.location_id)
        yield [(here, rules.LOCATION_POINTS), (~here, 0)]
    if rules.AVAILABILITY_POINTS:
        if rules.REQUIRE_AVAILABILITY:
            yield [(Q(), rules.AVAILABILITY_POINTS)]
        else:
            yield [(_available_days(slot), rules.AVAILABILITY_POINTS), (~_available_days(slot), 0)]
    if rules.TIME_OF_DAY_POINTS:
        inside = ~Q(time_windows=0) & Q(time_hit=slot.time_span_mask)
        yield [(inside, rules.TIME_OF_DAY_POINTS), (~inside, 0)]


def _groups(slot: SlotFacts, rules: Rules):
    """Conditions under which every entry gets the same points, best first.

    Groups that cannot reach MIN_SCORE are never queried.
    """
    groups = []
    for combination in product(*_splits(slot, rules)):
        points = rules.SPECIALTY_POINTS + sum(points for _, points in combination)
        if points >= rules.MIN_SCORE:
            condition = Q()
            for where, _ in combination:
                condition &= where
            groups.append((points, condition))
    return [condition for _, condition in sorted(groups, key=lambda group: -group[0])]


RANK_ORDER = ("-declined_first", "-no_show_risk", "created_at", "id")


def rank_candidates(slot: SlotFacts, rules: Rules | None = None, pool: int | None = None):
    """The best few eligible entries for the slot, best first, each with its score by rule.

    Entries scoring under MIN_SCORE are left out; candidates whose patient already has an
    appointment overlapping the slot are kept (so the match log shows them) but flagged.
    """
    rules = rules or Rules()
    pool = pool or rules.CANDIDATE_POOL
    base = eligible_entries(slot, rules).select_related("patient").order_by(*RANK_ORDER)
    entries = {}
    for where in _groups(slot, rules):
        for entry in base.filter(where)[:pool]:
            entries[entry.pk] = entry
    candidates = [Candidate(entry, *score_entry(entry, slot, rules)) for entry in entries.values()]
    candidates = sorted((c for c in candidates if c.score >= rules.MIN_SCORE), key=lambda c: c.rank_key)
    _flag_already_booked(candidates, slot)
    return candidates


def _flag_already_booked(candidates, slot):
    if not candidates:
        return
    busy = set(
        Appointment.objects.overlapping(slot.start, slot.end)
        .filter(patient_id__in=[c.entry.patient_id for c in candidates])
        .values_list("patient_id", flat=True)
    )
    for candidate in candidates:
        candidate.already_booked = candidate.entry.patient_id in busy


def rank_by_full_scan(slot: SlotFacts, rules: Rules | None = None):
    """The seed's approach: load every waiting entry and score it in Python.

    Too slow for a real waitlist; kept as the reference `rank_candidates` is checked
    against (tests/test_matching_equivalence.py) and as the benchmark's baseline.
    """
    rules = rules or Rules()
    busy = set(Appointment.objects.overlapping(slot.start, slot.end).values_list("patient_id", flat=True))
    candidates = []
    for entry in WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING).select_related("patient"):
        if not _eligible(entry, slot, rules):
            continue
        score, breakdown = score_entry(entry, slot, rules)
        if score >= rules.MIN_SCORE:
            candidates.append(Candidate(entry, score, breakdown, already_booked=entry.patient_id in busy))
    return sorted(candidates, key=lambda c: c.rank_key)


def _eligible(entry, slot: SlotFacts, rules: Rules):
    """SPEC 5's hard filters, one entry at a time (what `eligible_entries` does in SQL)."""
    day = slot.local_start.date()
    return (
        entry.specialty_id == slot.specialty_id
        and not entry.patient.email_opt_out
        and (entry.earliest_date is None or entry.earliest_date <= day)
        and (entry.latest_date is None or entry.latest_date >= day)
        and entry.preferred_provider_id in (None, slot.provider_id)
        and entry.patient_id != slot.freed_by_patient_id
        and (rules.MIN_NO_SHOW_RISK <= 0 or entry.no_show_risk >= rules.MIN_NO_SHOW_RISK)
        and (not rules.REQUIRE_AVAILABILITY or _available(entry, slot))
    )


def _available(entry, slot: SlotFacts):
    days_ok = not entry.available_days or slot.local_start.strftime("%a").lower() in entry.available_days
    return days_ok and (not entry.time_windows or _inside_windows(entry, slot))
