"""What a person or another system can do to the schedule, one function each (the
conventions are clinic/actions.py's): cancel, book by hand, move to another time or
provider, record a no-show, mark a provider unavailable, accept or decline a move.

Each opens the outermost business transaction (`action_transaction`, durable: nothing wraps
it, so once it returns it has committed; or part of an entry point's `one_unit`, as the HL7
feed applies a message), changes the appointment through its model's verbs, which lock
and re-check, and says here whom it tells. A cancellation's freed slot is backfill's
business: `Appointment.cancel` runs the hook backfill registered (scheduling.models.
when_cancelled), and its job is enqueued once this transaction commits.
"""

import logging

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from clinic.actions import PATIENT_DOORS, Via, action_transaction, actor
from clinic.models import OutboundEmail
from clinic.times import staff_datetime
from scheduling import reassignment
from scheduling.messages import queue_email
from scheduling.models import Appointment, SchedulingError

log = logging.getLogger("scheduling")

PATIENT_LINK_REASON = "patient cancelled from email link"
TEXT_REPLY_REASON = "patient cancelled by text reply"
# How an appointment booked by hand came in, by door (the no-show model reads it).
SOURCE_OF = {Via.API: Appointment.Source.API, Via.FEED: Appointment.Source.HL7}


def cancel_appointment(appointment, *, by, channel, reason, notify=True, moved_earlier_to=None):
    """Cancel the appointment; its slot goes to the waitlist if still worth filling.

    With `notify`, the patient is told: a confirmation when they cancelled it themselves
    (their link, a text), otherwise that the clinic cancelled it and why, or, given
    `moved_earlier_to` (the earlier appointment a chain backfill booked them into), that this
    later one is released because they now come earlier. Opted-out patients get nothing.
    Raises CannotCancel when it is no longer cancellable.
    """
    with action_transaction():
        appointment.cancel(reason, by=actor(by))  # lock, re-check, event, the freed slot (its hook)
        if notify:
            patient_did = channel in PATIENT_DOORS
            kind = OutboundEmail.Kind.CANCEL_CONFIRMATION if patient_did else OutboundEmail.Kind.CLINIC_CANCELLATION
            queue_email(kind, appointment, **_moved_earlier(moved_earlier_to))
    log.info("action.cancel_appointment id=%s by=%s channel=%s notify=%s", appointment.pk, actor(by), channel, notify)
    return appointment


def _moved_earlier(earlier):
    """The earlier visit, in the words and on the clock of its own site, for the message."""
    if earlier is None:
        return {}
    return {"earlier": earlier, "earlier_start": earlier.provider.location.local(earlier.start)}


def record_no_show(appointment, *, by, channel):
    """The patient did not come (staff, the feed). Only once the appointment has started."""
    with action_transaction():
        appointment.mark_no_show()
    log.info("action.record_no_show id=%s by=%s channel=%s", appointment.pk, actor(by), channel)
    return appointment


def book_appointment(*, patient, provider, start, end, by, channel, external_id=None, replaces=None, precheck=True):
    """Book a patient by hand (the admin, the API, the feed); raises AppointmentConflict if either
    is busy then. Not durable: the admin's add form saves inside its own transaction.

    `replaces`: the appointment this one moves (move_appointment). `precheck=False` leaves the
    look-ahead for a clash to the database's own constraint (Appointment.book), for a caller
    that books many and rarely clashes: the feed."""
    with action_transaction(durable=False):
        appointment = Appointment.book(
            patient=patient,
            provider=provider,
            start=start,
            end=end,
            source=SOURCE_OF.get(channel, Appointment.Source.STAFF),
            external_id=external_id,
            replaces=replaces,
            precheck=precheck,
        )
    log.info("action.book_appointment id=%s by=%s channel=%s", appointment.pk, actor(by), channel)
    return appointment


def move_appointment(
    appointment, *, provider, start, end, by, channel, reason=None, external_id=None, notify=True, precheck=True
):
    """Move an appointment to another time or provider: cancel-and-book in one transaction.

    The appointment is cancelled as any other (locked, re-checked, its event, its time handed
    to the waitlist by the hook backfill registered) and a new one is booked in its place
    (`replaces`; the other system's id, or `external_id`, goes with it). With `notify` the
    patient is told the new time; an EHR's reschedule is told by the EHR. Raises CannotCancel
    when the appointment is no longer active and AppointmentConflict when the patient or the
    provider is busy then; either way nothing is changed. `precheck=False` is for a caller
    that has just looked for a clash itself (the feed).

    Not durable: the admin's change form saves inside its own transaction."""
    with action_transaction(durable=False):
        was = appointment.provider.location.local(appointment.start)
        carried_id = external_id or appointment.external_id
        when = f"{staff_datetime(provider.location.local(start))} with {provider.name}"
        appointment.cancel(reason or f"moved to {when}", by=actor(by))
        if appointment.external_id:  # an id names one appointment: the one that takes place
            Appointment.objects.filter(pk=appointment.pk).update(external_id=None)
            appointment.external_id = None
        moved = book_appointment(
            patient=appointment.patient,
            provider=provider,
            start=start,
            end=end,
            by=by,
            channel=channel,
            external_id=carried_id,
            replaces=appointment,
            precheck=precheck,
        )
        if notify:
            queue_email(OutboundEmail.Kind.APPOINTMENT_MOVED, moved, moved_from=was)
    log.info(
        "action.move_appointment id=%s new=%s by=%s channel=%s notify=%s",
        appointment.pk,
        moved.pk,
        actor(by),
        channel,
        notify,
    )
    return moved


def mark_provider_unavailable(provider, start_date, end_date, reason, *, by, channel):
    """Record the provider's absence and move each of their patients in the range to a
    colleague (an offer they may decline) or to the waitlist; each is emailed which
    (scheduling/reassignment.py). Returns the WorkflowSummary.

    Not durable: the admin's add form for an absence saves inside its own transaction."""
    with action_transaction(durable=False):
        summary = reassignment.mark_provider_unavailable(provider, start_date, end_date, reason, by=actor(by))
    log.info("action.mark_provider_unavailable provider=%s by=%s channel=%s", provider.pk, actor(by), channel)
    return summary


def accept_move(appointment, *, by, channel):
    """The patient keeps the appointment the workflow moved them to, and is emailed its details."""
    with transaction.atomic(durable=True):
        if appointment.status != Appointment.Status.OFFERED:
            raise SchedulingError(
                gettext("This appointment is {status}; only an offer can be accepted.").format(
                    status=appointment.get_status_display().lower()
                )
            )
        appointment.confirm()  # a conditional update: of an accept and a decline at once, one wins
        queue_email(OutboundEmail.Kind.ACCEPT_CONFIRMATION, appointment)
    log.info(
        "action.accept_move id=%s patient=%s by=%s channel=%s", appointment.pk, appointment.patient_id, by, channel
    )
    return appointment


def decline_move(appointment, *, by, channel):
    """The patient turns the move down: the new appointment is cancelled (its slot goes to
    the waitlist) and they join the waitlist first in line. Their confirmation is written
    once this commits, so it can say whether the slot already went to someone else."""
    with transaction.atomic(durable=True):
        entry = reassignment.decline_offer(appointment, by=actor(by))
        # A function, not a partial: robust on_commit names a failing callback by __qualname__.
        appointment_id = appointment.pk
        transaction.on_commit(lambda: reassignment.send_decline_confirmation(appointment_id), robust=True)
    log.info("action.decline_move id=%s entry=%s by=%s channel=%s", appointment.pk, entry.pk, actor(by), channel)
    return entry


def release_unanswered_move(appointment, *, by, channel):
    """A move to another location not accepted by its answer_by: cancelled (its slot goes to
    the waitlist), the patient first in line on the waitlist and told. Raises SchedulingError
    when the patient answered meanwhile."""
    with transaction.atomic(durable=True):
        entry = reassignment.release_unanswered(appointment, by=actor(by))
        queue_email(OutboundEmail.Kind.WAITLIST_NOTICE, appointment, entry=entry, move_unanswered=True)
    log.info("action.release_unanswered_move id=%s entry=%s by=%s channel=%s", appointment.pk, entry.pk, by, channel)
    return entry


def release_unanswered_moves(now=None):
    """For the sweep: every move to another location whose answer_by has passed unanswered.
    Each is re-checked under its lock, so a yes that arrived meanwhile wins. Returns how many."""
    now = now or timezone.now()
    due = Appointment.objects.filter(status=Appointment.Status.OFFERED, answer_by__lte=now).select_related(
        "patient", "provider__location", "provider__specialty"
    )
    released = 0
    for appointment in due[:200]:
        try:
            release_unanswered_move(appointment, by="sweep", channel=Via.BACKFILL)
        except SchedulingError:
            continue
        released += 1
    return released
