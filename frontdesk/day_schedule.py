"""One clinic day as the front desk sees it: a column per provider of one location (or of
every location, grouped), with the day's appointments, the freed slots still open, and who is
away (docs/reference.md, API).

Everything comes from a handful of queries whatever the size of the day, so the page stays
fast on a full clinic day.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Q

from backfill.explained_waitlist import waitlist_panel
from backfill.models import FreedSlot
from clinic.models import Location, Provider, day_bounds, on_their_clocks
from clinic.times import staff_time
from frontdesk.templatetags.backfill_words import cancel_reason_words
from scheduling.models import Appointment, ProviderUnavailability
from waitlist.models import WaitlistEntry

# The grid covers at least these hours, and stretches to fit anything booked outside them.
FIRST_HOUR, LAST_HOUR = 7, 19
PIXELS_PER_MINUTE = 1.4
WAITLIST_PANEL_SIZE = 50
# What an unfilled freed slot's status means to the front desk.
OPEN_SLOT_LABELS = {
    FreedSlot.Status.OPEN: "Open slot · finding a patient",
    FreedSlot.Status.NO_MATCH: "Open slot · no waitlist match",
    FreedSlot.Status.FAILED: "Open slot · backfill failed",
    FreedSlot.Status.EXPIRED: "Open slot · too late to fill",
}


@dataclass
class ScheduleItem:
    """An appointment, or a freed slot nobody fills yet, placed on the day's grid."""

    start: datetime  # on its location's clock
    end: datetime
    appointment: Appointment | None = None
    slot: FreedSlot | None = None
    lane: int = 0
    top: float = 0
    height: float = 0

    @property
    def is_open_slot(self):
        return self.slot is not None

    @property
    def css_class(self):
        if self.slot is not None:
            return f"open-slot slot-{self.slot.status}"
        appointment = self.appointment
        # Booked by hand from the waitlist: marked as the backfill's bookings are.
        by_hand = appointment.source != Appointment.Source.BACKFILL and getattr(appointment, "filled_slot", None)
        return f"status-{appointment.status} source-{appointment.source}" + (" from-waitlist" if by_hand else "")

    @property
    def note(self):
        """The card's tooltip: why a slot was freed or an appointment cancelled, how fast a slot was filled."""
        if self.slot is not None:
            return f"Freed {staff_time(self.slot.freed_at)}" + (f": {self.slot.reason}" if self.slot.reason else "")
        appointment = self.appointment
        if appointment.status == Appointment.Status.CANCELLED:
            return f"{appointment.patient}: cancelled" + (
                f" ({cancel_reason_words(appointment.cancel_reason)})" if appointment.cancel_reason else ""
            )
        filled = getattr(appointment, "filled_slot", None)
        if filled is not None and filled.fill_ms is not None:
            return f"{appointment.patient}: {self.label}, filled {filled.fill_ms} ms after the cancellation"
        return f"{appointment.patient}: {self.label}"

    @property
    def label(self):
        """What the front desk needs to know at a glance, in their words."""
        if self.slot is not None:
            return OPEN_SLOT_LABELS.get(self.slot.status, f"Open slot · {self.slot.get_status_display()}")
        appointment = self.appointment
        if appointment.waits_for_yes:
            return "Offered · awaiting answer · other location: released without a yes"
        if appointment.status == Appointment.Status.OFFERED:
            return "Offered · awaiting answer · kept unless declined"
        if appointment.status == Appointment.Status.CANCELLED:
            return "Cancelled"
        filled = getattr(appointment, "filled_slot", None)
        if filled is not None:
            how = "booked by hand" if filled.status == FreedSlot.Status.MANUAL else "backfilled"
            return f"From waitlist · {how}"
        return f"{appointment.get_status_display()} · {appointment.get_source_display()}"


@dataclass
class ProviderColumn:
    provider: Provider
    away: ProviderUnavailability | None = None
    items: list = field(default_factory=list)
    lanes: int = 1

    def place(self, grid_start, pixels_per_minute):
        """Position items on the grid (its hours are each location's wall clock, `grid_start`
        naive); overlapping ones share the width side by side."""
        lane_ends = []
        for item in sorted(self.items, key=lambda i: (i.start, i.end)):
            item.lane = next((lane for lane, end in enumerate(lane_ends) if end <= item.start), len(lane_ends))
            if item.lane == len(lane_ends):
                lane_ends.append(item.end)
            lane_ends[item.lane] = item.end
            item.top = (_wall(item.start) - grid_start).total_seconds() / 60 * pixels_per_minute
            item.height = max(18, (_wall(item.end) - _wall(item.start)).total_seconds() / 60 * pixels_per_minute - 2)
        self.items.sort(key=lambda i: (i.start, i.lane))
        self.lanes = max(1, len(lane_ends))

    @property
    def lane_width(self):
        return 100 / self.lanes


@dataclass
class LocationGroup:
    location: object
    columns: list


@dataclass
class DaySchedule:
    day: date
    groups: list
    hours: list
    grid_height: float
    waitlist: object  # backfill.explained_waitlist.WaitlistPanel
    waiting_count: int
    counts: dict
    location: object = None  # None: every location
    locations: list = field(default_factory=list)  # whose clocks the page shows
    shows_cancelled: bool = False

    @property
    def previous_day(self):
        return self.day - timedelta(days=1)

    @property
    def next_day(self):
        return self.day + timedelta(days=1)

    @property
    def kept_choices(self):
        """What the page's links to other days and locations carry over of the current view."""
        return "&cancelled=1" if self.shows_cancelled else ""

    @property
    def provider_count(self):
        return sum(len(group.columns) for group in self.groups)

    @classmethod
    def for_day(cls, day, location=None, locations=None, shows_cancelled=False):
        """The day at one location, or at all of them when `location` is None: each location's
        own calendar day, midnight to midnight on its clock (docs/reference.md, Time zones). `locations`: all of
        them, when the caller has them already. `shows_cancelled`: the day's cancelled
        appointments too, beside what took their place."""
        locations = [location] if location else locations if locations is not None else list(Location.objects.all())
        at_location = Q(provider__location=location) if location else Q()
        appointments, open_slots = _appointments_and_open_slots(day, location, locations)
        cancelled = _cancelled(day, location, locations) if shows_cancelled else []
        away = {
            absence.provider_id: absence
            for absence in ProviderUnavailability.objects.filter(at_location, start_date__lte=day, end_date__gte=day)
        }
        items = [ScheduleItem(*_on_its_clock(a), appointment=a) for a in appointments + cancelled]
        items += [ScheduleItem(*_on_its_clock(s), slot=s) for s in open_slots]
        columns = _columns(items, away, location)
        grid_start, grid_end = _grid_bounds(day, items)
        for column in columns:
            column.place(grid_start, PIXELS_PER_MINUTE)
        waiting = WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING)
        return cls(
            day=day,
            groups=_by_location(columns),
            hours=_hour_marks(grid_start, grid_end),
            grid_height=(grid_end - grid_start).total_seconds() / 60 * PIXELS_PER_MINUTE,
            # The backfill's own rules: nobody it never books is listed first.
            waitlist=waitlist_panel(WAITLIST_PANEL_SIZE),
            waiting_count=waiting.count(),
            counts={**_counts(appointments, open_slots), "cancelled": len(cancelled)},
            location=location,
            locations=locations,
            shows_cancelled=shows_cancelled,
        )


def _on_the_day(day, location, locations):
    """What overlaps the day at the location, or at each location on its own clock."""

    def during(zone):
        start, end = day_bounds(day, day, zone)
        return Q(start__lt=end, end__gt=start)

    if location is not None:
        return Q(provider__location=location) & during(location.zone)
    return on_their_clocks("provider__location", during, [site.zone for site in locations])


def _appointments_and_open_slots(day, location, locations):
    on_the_day = _on_the_day(day, location, locations)
    appointments = list(
        Appointment.objects.active().filter(on_the_day).select_related("patient", "provider__location", "filled_slot")
    )
    # docs/reference.md, API: a cancelled slot nobody fills yet stays visible as open, with its status.
    open_slots = list(
        FreedSlot.objects.filter(on_the_day)
        .select_related("provider__location")
        .exclude(status__in=(FreedSlot.Status.BACKFILLED, FreedSlot.Status.MANUAL))
    )
    return appointments, open_slots


def _cancelled(day, location, locations):
    return list(
        Appointment.objects.filter(_on_the_day(day, location, locations), status=Appointment.Status.CANCELLED)
        .select_related("patient", "provider__location")
        .order_by("start", "pk")
    )


def _on_its_clock(booking):
    location = booking.provider.location
    return location.local(booking.start), location.local(booking.end)


def _wall(moment):
    """The time on the wall clock where it happens: the grid's hours are each site's."""
    return moment.replace(tzinfo=None)


def _provider_of(item):
    return item.appointment.provider_id if item.appointment else item.slot.provider_id


def _columns(items, away, location):
    """Every active provider, plus any inactive one who still has something that day."""
    provider_ids = {_provider_of(item) for item in items} | set(away)
    providers = (
        Provider.objects.filter(Q(active=True) | Q(pk__in=provider_ids))
        .filter(**({"location": location} if location else {}))
        .select_related("location", "specialty")
        .order_by("location__name", "specialty__name", "name")
    )
    columns = {provider.pk: ProviderColumn(provider, away=away.get(provider.pk)) for provider in providers}
    for item in items:
        columns[_provider_of(item)].items.append(item)
    return list(columns.values())


def _by_location(columns):
    groups = []
    for column in columns:
        if not groups or groups[-1].location != column.provider.location:
            groups.append(LocationGroup(column.provider.location, []))
        groups[-1].columns.append(column)
    return groups


def _grid_bounds(day, items):
    first = datetime.combine(day, time(FIRST_HOUR))
    last = datetime.combine(day, time(LAST_HOUR))
    if items:
        earliest = min(_wall(item.start) for item in items)
        latest = max(_wall(item.end) for item in items)
        first = min(first, earliest.replace(minute=0, second=0, microsecond=0))
        last = max(last, latest)
    midnight = datetime.combine(day, time.min)
    # An appointment running past midnight still ends the grid on this day.
    return max(first, midnight), min(last, midnight + timedelta(days=1))


def _hour_marks(grid_start, grid_end):
    marks, mark = [], grid_start
    while mark < grid_end:
        marks.append({"label": staff_time(mark), "top": (mark - grid_start).total_seconds() / 60 * PIXELS_PER_MINUTE})
        mark += timedelta(hours=1)
    return marks


def _counts(appointments, open_slots):
    return {
        "booked": len(appointments),
        "backfilled": sum(getattr(a, "filled_slot", None) is not None for a in appointments),
        "offered": sum(a.status == Appointment.Status.OFFERED for a in appointments),
        "open": len(open_slots),
    }
