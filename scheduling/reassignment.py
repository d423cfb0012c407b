"""Provider unavailable: move their patients to colleagues, or to the waitlist (docs/reference.md, Reassignment).

`mark_provider_unavailable` runs the workflow; every entry point (the API's trigger-workflow,
`manage.py provider_unavailable`, the provider admin action) calls it through
`scheduling.actions.mark_provider_unavailable`. It records the absence
first, so cancelling the provider's appointments records no freed slot
(`FreedSlot.record_for` checks `provider.is_unavailable_on`): a slot of a provider who is
away is never backfilled. Then each active appointment in the range goes to the
best-scoring colleague free at that time, as an offer the patient may decline, or, when
nobody scores REASSIGN_MIN_SCORE, the patient goes to the waitlist.

Everything runs in one transaction, one savepoint per appointment: an unexpected failure
leaves nothing half done, and emails and jobs go out only once it is committed.

Accepting and declining the move are `scheduling.actions.accept_move` and `decline_move`.
"""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from clinic import events, times
from clinic.models import OutboundEmail, Provider
from scheduling.messages import queue_email
from scheduling.models import Appointment, AppointmentConflict, ProviderUnavailability, SchedulingError, worth_filling
from waitlist.models import WaitlistEntry

log = logging.getLogger("scheduling")

CANCEL_REASON = "provider_unavailable"
DECLINE_REASON = "declined_reassignment"
UNANSWERED_REASON = "move_not_confirmed"
REASON_MAX_LENGTH = ProviderUnavailability._meta.get_field("reason").max_length

# Lazy: read in the patient's language where the message or page is rendered.
SLOT_FILLED_NEWS = gettext_lazy("Good news! We found another patient for this time slot.")
SLOT_OFFERED_NEWS = gettext_lazy("The time slot has been offered to patients on the waitlist.")


class WorkflowError(SchedulingError):
    """The workflow cannot run as asked (inactive provider, bad dates); shown to the user."""


@dataclass
class WorkflowSummary:
    """What one run did, for the API (as_dict), the command and the admin (notes)."""

    unavailability: ProviderUnavailability
    provider: Provider
    start_date: date
    end_date: date
    reassigned: list = field(default_factory=list)
    waitlisted: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    # (kind, sentence) per appointment, kind being reassigned, waitlisted or skipped.
    notes: list = field(default_factory=list)

    @property
    def affected(self):
        return len(self.reassigned) + len(self.waitlisted) + len(self.skipped)

    def as_dict(self):
        return {
            "unavailability": self.unavailability.pk,
            "provider": self.provider.pk,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "affected": self.affected,
            "reassigned": list(self.reassigned),
            "waitlisted": list(self.waitlisted),
            "skipped": list(self.skipped),
        }

    @property
    def headline(self):
        count = self.affected
        return (
            f"{self.provider.name} is unavailable {_days(self.start_date, self.end_date)}: "
            f"{count} appointment{'' if count == 1 else 's'} affected, "
            f"{len(self.reassigned)} reassigned, {len(self.waitlisted)} waitlisted, {len(self.skipped)} skipped."
        )

    def lines(self):
        return [self.headline, *(sentence for _, sentence in self.notes)]

    def add_reassigned(self, original, offer, match):
        self.reassigned.append(
            {
                "appointment": original.pk,
                "new_appointment": offer.pk,
                "patient": original.patient_id,
                "provider": match.provider.pk,
                "score": match.score,
            }
        )
        elsewhere = (
            f" at {match.provider.location.name}, another location: released unless the patient says yes by "
            f"{times.staff_datetime(match.provider.location.local(offer.answer_by))}"
            if offer.answer_by
            else ""
        )
        self.notes.append(
            (
                "reassigned",
                (
                    f"{_who_and_when(original)}: offered to {match.provider.name} at the same time{elsewhere} "
                    f"({match.score} points: {_points_in_words(match.breakdown)})."
                ),
            )
        )

    def add_waitlisted(self, original, entry, best):
        best_score = best.score if best else None
        self.waitlisted.append(
            {
                "appointment": original.pk,
                "patient": original.patient_id,
                "waitlist_entry": entry.pk,
                "best_score": best_score,
            }
        )
        if best:
            why = (
                f"the best colleague free then, {best.provider.name}, scored {best.score} points of the "
                f"{settings.BACKFILL['REASSIGN_MIN_SCORE']} needed ({_points_in_words(best.breakdown)})"
            )
        else:
            plan = original.patient.insurance_plan
            who_takes = f" who takes {plan.name}" if plan else ""
            why = f"no other {original.provider.specialty.name} provider{who_takes} is free then"
        self.notes.append(("waitlisted", f"{_who_and_when(original)}: cancelled and put on the waitlist; {why}."))

    def add_skipped(self, appointment, reason):
        self.skipped.append({"appointment": appointment.pk, "reason": reason})
        self.notes.append(
            ("skipped", f"{_who_and_when(appointment)}: left as it is, {reason[:1].lower()}{reason[1:]}")
        )


# What staff read for each of the reassignment score's rules (score_provider's keys).
REASSIGNMENT_RULES_IN_WORDS = {
    "same_location": "same location",
    "preferred_location": "patient's preferred location",
    "seen_before": "has seen the patient before",
    "same_time": "free at the same time",
}


def _points_in_words(breakdown):
    earned = [
        f"{REASSIGNMENT_RULES_IN_WORDS.get(rule, rule)} +{points}" for rule, points in breakdown.items() if points
    ]
    return " · ".join(earned) or "no points"


def _who_and_when(appointment):
    return f"{appointment.patient} ({times.staff_datetime(appointment.provider.location.local(appointment.start))})"


def _days(start_date, end_date):
    if start_date == end_date:
        return f"on {times.staff_date(start_date)}"
    return f"from {times.staff_date(start_date)} to {times.staff_date(end_date)}"


@dataclass(frozen=True)
class ProviderMatch:
    provider: Provider
    score: int
    breakdown: dict


def mark_provider_unavailable(provider, start_date, end_date, reason, by="staff") -> WorkflowSummary:
    """Record the absence, then reassign or waitlist each active appointment in the range.

    Dates are days in the clinic's time zone, both included. Running it again for the same
    range adds no absence and touches only appointments booked since.
    """
    start_date, end_date = _as_date(start_date, "start date"), _as_date(end_date, "end date")
    reason = (reason or "").strip()
    check_request(provider, start_date, end_date, reason)
    with transaction.atomic():
        # Runs for providers of one specialty take turns (rows locked in a stable order):
        # each then sees the other's absence and never offers a colleague who is away too.
        # NO KEY, so booking onto a locked provider elsewhere (FOR KEY SHARE) never waits.
        list(Provider.objects.select_for_update(no_key=True).filter(specialty_id=provider.specialty_id).order_by("pk"))
        unavailability = _record_unavailability(provider, start_date, end_date, reason)
        summary = WorkflowSummary(unavailability, provider, start_date, end_date)
        for appointment in _affected_appointments(provider, start_date, end_date):
            _move(appointment, summary, by)
    log.info(
        "provider.unavailable provider=%s unavailability=%s start=%s end=%s by=%s "
        "affected=%s reassigned=%s waitlisted=%s skipped=%s",
        provider.pk,
        unavailability.pk,
        start_date,
        end_date,
        by,
        summary.affected,
        len(summary.reassigned),
        len(summary.waitlisted),
        len(summary.skipped),
    )
    return summary


def _as_date(value, name):
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise WorkflowError(f"The {name} must be a date in the form YYYY-MM-DD.") from None


def check_request(provider, start_date, end_date, reason):
    if not provider.active:
        raise WorkflowError(f"{provider.name} is inactive; only an active provider's patients can be reassigned.")
    if end_date < start_date:
        raise WorkflowError("The end date must not be before the start date.")
    if end_date < provider.location.today():  # the provider's site's today (docs/reference.md, Time zones)
        raise WorkflowError("The end date has passed; there are no appointments left to reassign.")
    if len(reason) > REASON_MAX_LENGTH:
        raise WorkflowError(f"The reason must be at most {REASON_MAX_LENGTH} characters.")


def _record_unavailability(provider, start_date, end_date, reason):
    """Reuse a recorded absence that already covers the range: a second run adds no row."""
    covering = (
        provider.unavailabilities.filter(start_date__lte=start_date, end_date__gte=end_date)
        .order_by("start_date", "pk")
        .first()
    )
    if covering:
        return covering
    unavailability = ProviderUnavailability.objects.create(
        provider=provider, start_date=start_date, end_date=end_date, reason=reason
    )
    events.record("provider.unavailable", unavailability)
    return unavailability


def _affected_appointments(provider, start_date, end_date):
    # The days are the provider's site's days (docs/reference.md, Time zones).
    zone = provider.location.zone
    first = _local_midnight(start_date, zone)
    after_last = _local_midnight(end_date + timedelta(days=1), zone)
    return list(
        provider.appointments.filter(status__in=Appointment.CANCELLABLE, start__gte=first, start__lt=after_last)
        .select_related("patient", "provider__location")
        .order_by("start", "pk")
    )


def _local_midnight(day, zone):
    return timezone.make_aware(datetime.combine(day, time.min), zone)


def _move(appointment, summary, by):
    if appointment.start <= timezone.now():
        summary.add_skipped(appointment, "it has already started.")
        return
    try:
        with transaction.atomic():  # a refused appointment leaves nothing behind
            matches = rank_replacements(appointment)
            appointment.cancel(CANCEL_REASON, by=by)  # locks the row, refuses if cancelled meanwhile
            offer, match = _book_best_offer(appointment, matches)
            if offer:
                _offer(appointment, offer, match, summary, by)
            else:
                _waitlist(appointment, matches[0] if matches else None, summary, by)
    except SchedulingError as error:
        summary.add_skipped(appointment, str(error))


def answer_by(original, now=None):
    """Until when a move to another location waits for the patient's yes: REASSIGN_ANSWER_HOURS,
    and no later than the lead time before the visit, so a released time can still go to the
    waitlist; half the time left when the visit is nearer than that."""
    now = now or timezone.now()
    rules = settings.BACKFILL
    deadline = min(
        now + timedelta(hours=rules["REASSIGN_ANSWER_HOURS"]),
        original.start - timedelta(minutes=rules["MIN_LEAD_MINUTES"]),
    )
    return deadline if deadline > now else now + (original.start - now) / 2


def _offer(original, offer, match, summary, by):
    queue_email(
        OutboundEmail.Kind.REASSIGNMENT_OFFER, offer, original=original, match=match, elsewhere=offer.waits_for_yes
    )
    summary.add_reassigned(original, offer, match)
    log.info(
        "appointment.reassigned id=%s new=%s patient=%s provider=%s score=%s by=%s",
        original.pk,
        offer.pk,
        original.patient_id,
        match.provider.pk,
        match.score,
        by,
    )


def _waitlist(original, best, summary, by):
    entry = join_waitlist(original, WaitlistEntry.Reason.LOW_MATCH)
    queue_email(OutboundEmail.Kind.WAITLIST_NOTICE, original, entry=entry, best=best, provider_unavailable=True)
    summary.add_waitlisted(original, entry, best)
    log.info(
        "appointment.waitlisted id=%s patient=%s entry=%s best_score=%s by=%s",
        original.pk,
        original.patient_id,
        entry.pk,
        best.score if best else None,
        by,
    )


def rank_replacements(appointment):
    """Other active providers of the specialty free for the whole appointment, best first."""
    original = appointment.provider
    day = original.location.local(appointment.start).date()
    busy = Appointment.objects.overlapping(appointment.start, appointment.end).values("provider_id")
    away = ProviderUnavailability.objects.filter(start_date__lte=day, end_date__gte=day).values("provider_id")
    providers = list(
        Provider.objects.filter(specialty_id=original.specialty_id, active=True)
        # Docs/reference.md, Insurance: only a provider who takes their plan
        .accepting(appointment.patient.insurance_plan_id)
        .exclude(pk=original.pk)
        .exclude(pk__in=busy)
        .exclude(pk__in=away)
        .select_related("location")
    )
    seen = _providers_who_have_seen(appointment.patient_id, providers)
    matches = [ProviderMatch(provider, *score_provider(provider, appointment, seen)) for provider in providers]
    return sorted(matches, key=lambda match: (-match.score, match.provider.pk))


def _providers_who_have_seen(patient_id, providers):
    return set(
        Appointment.objects.filter(patient_id=patient_id, provider__in=providers, start__lt=timezone.now())
        .exclude(status__in=[Appointment.Status.CANCELLED, Appointment.Status.NO_SHOW])
        .values_list("provider_id", flat=True)
    )


def score_provider(provider, appointment, seen):
    """docs/reference.md, Reassignment's reassignment score, by rule (specialty is a filter, not points)."""
    rules = settings.BACKFILL
    breakdown = {
        "same_location": rules["REASSIGN_SAME_LOCATION_POINTS"]
        if provider.location_id == appointment.provider.location_id
        else 0,
        "preferred_location": (
            rules["REASSIGN_PREFERRED_LOCATION_POINTS"]
            if provider.location_id == appointment.patient.preferred_location_id
            else 0
        ),
        "seen_before": rules["REASSIGN_SEEN_BEFORE_POINTS"] if provider.pk in seen else 0,
        # docs/reference.md, Reassignment: only the same time is offered (another time is the waitlist's job), so
        # every provider ranked here earns it.
        "same_time": rules["REASSIGN_SAME_TIME_POINTS"],
    }
    return sum(breakdown.values()), breakdown


def _book_best_offer(original, matches):
    """Book the patient with the best provider scoring enough; (None, None) if nobody can."""
    for match in matches:
        if match.score < settings.BACKFILL["REASSIGN_MIN_SCORE"]:
            break
        try:
            offer = Appointment.book(
                patient=original.patient,
                provider=match.provider,
                start=original.start,
                end=original.end,
                source=Appointment.Source.REASSIGNMENT,
                status=Appointment.Status.OFFERED,
                replaces=original,
                answer_by=None if match.provider.location_id == original.provider.location_id else answer_by(original),
            )
        except AppointmentConflict:
            # Taken since we ranked (another reassignment at the same time, a concurrent
            # booking; the exclusion constraint has the last word): try the next one.
            continue
        return offer, match
    return None, None


def join_waitlist(appointment, reason):
    """Put the appointment's patient on the waitlist for its specialty, keeping an entry they
    already have (one waiting entry per patient and specialty)."""
    specialty_id = appointment.provider.specialty_id
    waiting = WaitlistEntry.objects.select_for_update(no_key=True).filter(
        patient_id=appointment.patient_id, specialty_id=specialty_id, status=WaitlistEntry.Status.WAITING
    )
    entry = waiting.first()
    if entry is None:
        entry = WaitlistEntry.defaults_from_patient(
            appointment.patient, specialty_id=specialty_id, reason=reason, original_appointment=appointment
        )
        try:
            with transaction.atomic():
                entry.save()
        except IntegrityError:  # added by someone else a moment ago: keep theirs
            entry = waiting.get()
    if reason == WaitlistEntry.Reason.DECLINED_REASSIGNMENT and entry.reason != reason:
        # docs/reference.md, Rules: a patient who declined a reassignment gets first chance on ties.
        entry.reason = reason
        entry.save(update_fields=["reason"])
    return entry


def decline_offer(appointment, by="patient"):
    """Inside the caller's transaction (scheduling.actions.decline_move): the offer is
    cancelled, which frees the slot for the waitlist (trigger 2), and the patient joins the
    waitlist first in line. Returns their entry."""
    current = Appointment.objects.select_for_update(no_key=True).get(pk=appointment.pk)
    if current.status != Appointment.Status.OFFERED:
        raise SchedulingError(
            gettext("This appointment is {status}; only an offer can be declined.").format(
                status=current.get_status_display().lower()
            )
        )
    appointment.cancel(DECLINE_REASON, by=by)
    entry = join_waitlist(appointment, WaitlistEntry.Reason.DECLINED_REASSIGNMENT)
    log.info("appointment.declined id=%s patient=%s entry=%s", appointment.pk, appointment.patient_id, entry.pk)
    return entry


def release_unanswered(appointment, by="sweep", now=None):
    """Inside the caller's transaction (scheduling.actions.release_unanswered_move): a move to
    another location the patient did not say yes to in time is cancelled (its slot goes to the
    waitlist), and they join the waitlist first in line, as after a decline. Raises
    SchedulingError when it was answered meanwhile or is not yet due."""
    now = now or timezone.now()
    current = Appointment.objects.select_for_update(no_key=True).get(pk=appointment.pk)
    if not (current.waits_for_yes and current.answer_by <= now):
        raise SchedulingError("This move was answered, or may still be.")
    appointment.cancel(UNANSWERED_REASON, by=by)
    entry = join_waitlist(appointment, WaitlistEntry.Reason.DECLINED_REASSIGNMENT)
    log.info("appointment.move_released id=%s patient=%s entry=%s", appointment.pk, appointment.patient_id, entry.pk)
    return entry


def send_decline_confirmation(appointment_id):
    appointment = Appointment.objects.select_related("patient", "provider__location", "provider__specialty").get(
        pk=appointment_id
    )
    queue_email(OutboundEmail.Kind.DECLINE_CONFIRMATION, appointment, slot_news=slot_news(appointment))


def slot_news(appointment):
    """What became of the slot a declined offer freed, in the patient's words.

    Read after the decline committed; the backfill job may not have run yet, and the
    decline never waits for it.
    """
    # In the schedule's own terms (the waitlist's slot records sit in the layer above):
    # someone else now holds that time, or the time is still worth filling.
    taken = (
        Appointment.objects.active()
        .filter(provider_id=appointment.provider_id, start=appointment.start)
        .exclude(pk=appointment.pk)
    )
    if taken.exists():
        return SLOT_FILLED_NEWS
    return SLOT_OFFERED_NEWS if worth_filling(appointment.provider, appointment.start) else ""
