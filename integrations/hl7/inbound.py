"""Applying a message from the EHR's feed, once, in order, and answering it (docs/hl7.md).

`receive(block, peer)` is the whole of it for one MLLP block: read it, answer a resent
control id from the stored acknowledgement, check everything the message says before
changing anything (an AE changes nothing), make the change through the same actions as the
API and the front desk (`scheduling.actions`, channel `Via.FEED`), so an S15 frees the slot
and the backfill runs exactly as for any cancellation, then store the message with its
acknowledgement and return the acknowledgement only once all of that committed.

The actions commit on their own (each is the outermost transaction), so the message is
stored after them. Should the listener die in between, the sender, unanswered, resends:
applying a message again is a no-op by construction (the appointment already has the EHR's
id and time, is already cancelled or no-show; the patient already reads as PID says), and
that resend is stored and answered. So each control id still changes the schedule once.
"""

import logging
from dataclasses import dataclass

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    transaction,
)
from django.utils import timezone

from audit import context as audit_context
from clinic import events
from clinic.actions import Via
from clinic.exceptions import DomainError
from clinic.models import Location, Patient, Provider, Specialty
from integrations.hl7 import acks, reading
from integrations.hl7.models import Hl7CodeMapping, Hl7Message
from integrations.hl7.reading import Hl7Problem
from scheduling.actions import book_appointment, cancel_appointment, record_no_show
from scheduling.models import Appointment, AppointmentConflict
from waitlist.models import WaitlistEntry

log = logging.getLogger("hl7")

CANCEL_REASON = {"S15": "cancelled in the EHR", "S17": "deleted in the EHR"}
RESCHEDULE_REASON = "rescheduled in the EHR"


def receive_in_worker_thread(block, peer):
    """`receive` for the listener's threads: a connection left broken or too old by an earlier
    message is dropped first, and this thread's is released after (CONN_MAX_AGE, the pool)."""
    close_old_connections()
    try:
        return receive(block, peer)
    finally:
        close_old_connections()


def receive(block, peer="unknown"):
    """The acknowledgement (text) for one MLLP block once its change has committed, or None
    when the database could not be reached: nothing is acknowledged, so the sender resends."""
    text = decode(block)
    try:
        with audit_context.acting(f"HL7 feed ({peer})", audit_context.Channel.FEED):
            return answer(text, peer)
    except (OperationalError, InterfaceError):
        log.exception("hl7.database_unreachable peer=%s", peer)
        return None
    except DatabaseError:  # the database refused to keep it: answered, not kept
        log.exception("hl7.not_kept peer=%s", peer)
        return acks.rejection_of_unreadable(
            Hl7Problem("Backfill could not keep this message.", code=reading.APPLICATION_INTERNAL_ERROR)
        )


def decode(block):
    # MSH-18 may name another character set; UTF-8 is the common case and latin-1 reads any byte.
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    return text.replace("\x00", "\ufffd")  # PostgreSQL keeps no NUL in text


def answer(text, peer):
    try:
        message = reading.parse(text)
    except Hl7Problem as problem:
        ack = acks.rejection_of_unreadable(problem)
        keep(Hl7Message(sender=f"unknown ({peer})", raw=text, ack=ack, outcome="AR", note=problem.text))
        log.info("hl7.rejected peer=%s reason=unreadable", peer)
        return ack
    try:
        header = reading.header(message)
    except Hl7Problem as problem:
        ack = acks.acknowledgement(message, problem.ack_code, problem)
        keep(
            Hl7Message(
                sender=reading.value(message, "MSH", 3) or f"unknown ({peer})",
                message_type=f"{reading.value(message, 'MSH', 9, 1, 1)}^{reading.value(message, 'MSH', 9, 1, 2)}"[:20],
                raw=text,
                ack=ack,
                outcome=problem.ack_code,
                note=problem.text[:500],
            )
        )
        log.info("hl7.rejected peer=%s reason=%s", peer, problem.code)
        return ack
    stored = answered_before(header)
    if stored is not None:
        return stored
    try:
        return apply(message, header, text)
    except IntegrityError:
        # The same control id, sent again on another connection at the same moment: that
        # one committed first, and its answer is this one's.
        stored = answered_before(header)
        if stored is not None:
            return stored
        return failed(message, header, text)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        return failed(message, header, text)


def failed(message, header, text):
    """A fault of Backfill's own: logged with its traceback and answered AE, so the sender
    does not resend it forever; the message is kept for the admin."""
    log.exception("hl7.failed sender=%s control_id=%s", header.sender, header.control_id)
    problem = Hl7Problem(
        "Backfill could not apply this message; the clinic's administrator has been told.",
        code=reading.APPLICATION_INTERNAL_ERROR,
    )
    ack = acks.acknowledgement(message, "AE", problem)
    keep(
        Hl7Message(
            sender=header.sender,
            message_type=header.message_type,
            control_id=header.control_id,
            sent_at=header.sent_at,
            raw=text,
            ack=ack,
            outcome="AE",
            note=problem.text,
        )
    )
    return ack


def keep(record):
    with transaction.atomic():
        record.direction = Hl7Message.Direction.IN
        record.save()


def answered_before(header):
    return (
        Hl7Message.objects.filter(
            direction=Hl7Message.Direction.IN, sender=header.sender, control_id=header.control_id
        )
        .values_list("ack", flat=True)
        .first()
    )


@dataclass
class Touched:
    """What a message touched and what was done, for its stored record."""

    note: str = ""
    mrn: str = ""
    reference: str = ""
    patient: Patient = None
    appointment: Appointment = None


def apply(message, header, text):
    record = Hl7Message(
        direction=Hl7Message.Direction.IN,
        sender=header.sender,
        message_type=header.message_type,
        control_id=header.control_id,
        sent_at=header.sent_at,
        raw=text,
    )
    touched = Touched()
    try:
        APPLY[header.event](message, header, touched)
        record.outcome, problem = Hl7Message.Outcome.ACCEPTED, None
    except Hl7Problem as found:
        record.outcome, problem = found.ack_code, found
    except DomainError as refused:  # the actions' own refusals: a clash, a visit not yet started
        problem = Hl7Problem(str(refused), code=reading.APPLICATION_INTERNAL_ERROR, where=where_refused(header))
        record.outcome = problem.ack_code
    with transaction.atomic(durable=True):
        record.note = (problem.text if problem else touched.note)[:500]
        record.mrn, record.appointment_ref = touched.mrn, touched.reference
        record.patient, record.appointment = what_it_touched(touched, problem)
        record.ack = acks.acknowledgement(message, record.outcome, problem)
        record.save()
    log.info(
        "hl7.received sender=%s type=%s control_id=%s outcome=%s appointment=%s",
        header.sender,
        header.message_type,
        header.control_id,
        record.outcome,
        record.appointment_id,
    )
    return record.ack


def what_it_touched(touched, problem):
    """The patient and appointment the message is about, as they are now (an AE may have
    changed nothing, or, after the actions' own refusals, part of it)."""
    if problem is None and touched.appointment is not None:
        return touched.patient or touched.appointment.patient, touched.appointment
    patient = Patient.objects.filter(external_id=touched.mrn).first() if touched.mrn else None
    appointment = Appointment.objects.filter(external_id=touched.reference).first() if touched.reference else None
    return patient, appointment


def where_refused(header):
    return ("AIS", 4) if header.event in ("S12", "S13", "S14") else ("SCH", 2)


# --- Patients (PID) -------------------------------------------------------------------


def patient_from(message, touched, segment="PID"):
    facts = reading.patient_facts(message, segment)
    touched.mrn = facts.mrn
    touched.patient = record_patient(facts)
    return touched.patient


def record_patient(facts):
    """The patient of this MRN, as PID says; a patient first seen in the feed is made from it."""
    try:
        with transaction.atomic(durable=True):
            return update_or_create_patient(facts)
    except IntegrityError:  # made by another message a moment ago: update that one
        with transaction.atomic(durable=True):
            return update_or_create_patient(facts)


FROM_PID = ["first_name", "last_name", "birth_date", "phone", "email", "preferred_language"]


def update_or_create_patient(facts):
    patient = Patient.objects.select_for_update().filter(external_id=facts.mrn).first()
    if patient is None:
        patient = Patient(external_id=facts.mrn, first_name="", last_name="")
    before = [str(getattr(patient, name)) for name in FROM_PID]
    patient.first_name = facts.given_name or patient.first_name or "(no given name)"
    patient.last_name = facts.family_name or patient.last_name or "(no family name)"
    patient.birth_date = facts.birth_date or patient.birth_date
    patient.phone = facts.phone or patient.phone
    patient.email = facts.email or patient.email
    patient.preferred_language = facts.language or patient.preferred_language
    if patient.pk is None or before != [str(getattr(patient, name)) for name in FROM_PID]:
        patient.save()  # most messages repeat what the patient already reads as: no write then
    return patient


def apply_patient(message, header, touched):
    """ADT A04 (registered) and A08 (updated): the patient as PID says."""
    patient = patient_from(message, touched)
    touched.note = f"{patient} registered or updated."


def apply_merge(message, header, touched):
    """ADT A40: the patient of MRG-1 is merged into the patient of PID-3."""
    prior_mrn = reading.value(message, "MRG", 1, 1, 1)
    if not prior_mrn:
        raise Hl7Problem(
            "MRG-1 (the merged patient's MRN) is empty.", code=reading.REQUIRED_FIELD_MISSING, where=("MRG", 1)
        )
    facts = reading.patient_facts(message)
    touched.mrn = facts.mrn
    with transaction.atomic(durable=True):
        prior = Patient.objects.select_for_update().filter(external_id=prior_mrn).first()
        survivor = Patient.objects.select_for_update().filter(external_id=facts.mrn).first()
        if prior is not None and survivor is None:  # only the MRN changes
            prior.external_id = facts.mrn
            prior.save(update_fields=["external_id"])
        touched.patient = update_or_create_patient(facts)
        if prior is None or survivor is None or prior == survivor:
            touched.note = f"{touched.patient} has MRN {facts.mrn}; no other patient has MRN {prior_mrn}."
            return
        move_history(prior, touched.patient)
    touched.note = f"{prior} (MRN {prior_mrn}) merged into {touched.patient}."


def move_history(prior, survivor):
    """The merged patient's appointments, waitlist entries and messages become the survivor's;
    the merged record stays, without its MRN, so nothing that pointed to it is lost."""
    try:
        with transaction.atomic():
            Appointment.objects.filter(patient=prior).update(patient=survivor, updated_at=timezone.now())
    except IntegrityError as clash:
        raise Hl7Problem(
            "The two patients have appointments at the same time: cancel one, then merge.",
            code=reading.APPLICATION_INTERNAL_ERROR,
            where=("MRG", 1),
        ) from clash
    waiting_for = set(
        survivor.waitlist_entries.filter(status=WaitlistEntry.Status.WAITING).values_list("specialty_id", flat=True)
    )
    for entry in prior.waitlist_entries.filter(status=WaitlistEntry.Status.WAITING):
        if entry.specialty_id in waiting_for:
            entry.remove()
    prior.waitlist_entries.exclude(status=WaitlistEntry.Status.WAITING, specialty_id__in=waiting_for).update(
        patient=survivor
    )
    prior.messages.update(patient=survivor)
    prior.external_id = None
    prior.save(update_fields=["external_id"])


# --- Appointments (SIU) ---------------------------------------------------------------


def apply_schedule(message, header, touched):
    """SIU: the appointment the EHR names in SCH, as the message says, unless a newer message
    about it was applied already (MSH-7)."""
    facts = reading.patient_facts(message)
    booking = reading.booking(message)
    touched.mrn, touched.reference = facts.mrn, booking.reference
    if header.sent_at and newer_applied(booking.reference, header.sent_at):
        touched.note = "Older (MSH-7) than a message already applied to this appointment: nothing changed."
        return
    existing = (
        Appointment.objects.select_related("provider__location", "patient")
        .filter(external_id=booking.reference)
        .first()
    )
    VERBS[header.event](message, booking, existing, header, touched)


def newer_applied(reference, sent_at):
    return Hl7Message.objects.filter(
        direction=Hl7Message.Direction.IN,
        appointment_ref=reference,
        outcome=Hl7Message.Outcome.ACCEPTED,
        sent_at__gt=sent_at,
    ).exists()


@dataclass
class Placement:
    provider: Provider
    specialty: Specialty
    start: object
    end: object


def placement(booking, existing):
    """Where and when the message puts the appointment, every code and time checked."""
    provider = mapped(Provider, Hl7CodeMapping.Kind.PROVIDER, booking.provider_code, ("AIP", 3), existing)
    location = (
        mapped(Location, Hl7CodeMapping.Kind.LOCATION, booking.location_code, ("AIL", 3), None, provider.location)
        if booking.location_code
        else provider.location
    )
    specialty = (
        mapped(Specialty, Hl7CodeMapping.Kind.SPECIALTY, booking.specialty_code, ("AIS", 3), None, provider.specialty)
        if booking.specialty_code
        else provider.specialty
    )
    start, end = times(booking, location, existing)
    return Placement(provider, specialty, start, end)


def place(message, booking, existing, header, touched):
    """S12, S13, S14: the appointment is booked, moved or left as it is."""
    where = placement(booking, existing)
    facts = reading.patient_facts(message)
    if existing is not None and existing.is_active and existing.patient.external_id != facts.mrn:
        raise Hl7Problem(
            f"Appointment {booking.reference} is another patient's than PID-3 says.",
            code=reading.UNKNOWN_KEY,
            where=("PID", 3),
        )
    unchanged = (
        existing is not None
        and existing.is_active
        and (existing.provider_id, existing.start, existing.end) == (where.provider.pk, where.start, where.end)
    )
    if not unchanged:
        refuse_a_clash(existing, facts.mrn, where)
    patient = patient_from(message, touched)
    if unchanged:
        touched.note = "No change to the appointment's time or provider."
        appointment = existing
    elif existing is not None and existing.is_active:
        appointment = move(existing, where, booking, header)
        touched.note = f"Moved to {describe(appointment)}."
    else:
        appointment = book(patient, where, booking, existing, header)
        touched.note = f"Booked with {describe(appointment)}."
    touched.appointment = appointment
    take_off_waitlist(patient, where.specialty, appointment)


def refuse_a_clash(existing, mrn, where):
    """An AE before anything changes when the provider or the patient is busy then (the
    actions would refuse it too, after the patient's details were written)."""
    patient = Patient.objects.filter(external_id=mrn).first()
    others = Appointment.objects.overlapping(where.start, where.end)
    if existing is not None:
        others = others.exclude(pk=existing.pk)
    if patient is not None:  # the same visit booked already (by Backfill) is adopted, not a clash
        others = others.exclude(patient=patient, provider=where.provider, start=where.start, end=where.end)
    if others.filter(provider=where.provider).exists():
        raise AppointmentConflict("The provider already has an appointment at that time.")
    if patient is not None and others.filter(patient=patient).exists():
        raise AppointmentConflict("The patient already has an appointment at that time.")


def book(patient, where, booking, existing, header):
    if existing is not None:  # the EHR books its id again after a cancellation
        Appointment.objects.filter(pk=existing.pk).update(external_id=None)
    same = patient.appointments.active().filter(provider=where.provider, start=where.start, end=where.end).first()
    if same is not None:
        # Already booked here (by Backfill, which told the EHR): the EHR's id is adopted,
        # nothing is booked twice.
        Appointment.objects.filter(pk=same.pk).update(external_id=booking.reference)
        same.external_id = booking.reference
        return same
    return book_appointment(
        patient=patient,
        provider=where.provider,
        start=where.start,
        end=where.end,
        by=header.sender,
        channel=Via.FEED,
        external_id=booking.reference,
    )


def move(existing, where, booking, header):
    """Moving is cancel-and-book, as everywhere (scheduling/api.py): the old time is freed
    for the waitlist; the patient hears from the EHR, not twice."""
    cancel_appointment(existing, by=header.sender, channel=Via.FEED, reason=RESCHEDULE_REASON, notify=False)
    Appointment.objects.filter(pk=existing.pk).update(external_id=None)
    moved = book_appointment(
        patient=existing.patient,
        provider=where.provider,
        start=where.start,
        end=where.end,
        by=header.sender,
        channel=Via.FEED,
        external_id=booking.reference,
    )
    Appointment.objects.filter(pk=moved.pk).update(replaces=existing)
    return moved


def take_off_waitlist(patient, specialty, appointment):
    """The patient booked by the EHR no longer waits for that specialty: the backfill books
    nobody twice."""
    waits = WaitlistEntry.objects.filter(patient=patient, specialty=specialty, status=WaitlistEntry.Status.WAITING)
    if not waits.exists():
        return
    with transaction.atomic(durable=True):
        waiting = WaitlistEntry.objects.select_for_update().filter(
            patient=patient, specialty=specialty, status=WaitlistEntry.Status.WAITING
        )
        for entry in waiting:
            entry.status = WaitlistEntry.Status.BOOKED
            entry.booked_appointment = appointment
            entry.save(update_fields=["status", "booked_appointment"])
            events.record("waitlist_entry.booked", entry, appointment=appointment)


def cancel(message, booking, existing, header, touched):
    """S15 and S17: cancelled exactly as the API and the front desk cancel."""
    found = touched.appointment = required(existing, booking)
    patient_from(message, touched)
    if found.status == Appointment.Status.CANCELLED:
        touched.note = "Already cancelled: nothing changed."
        return
    reason = booking.reason or CANCEL_REASON[header.event]
    cancel_appointment(found, by=header.sender, channel=Via.FEED, reason=reason)
    touched.note = f"Cancelled ({reason})."


def no_show(message, booking, existing, header, touched):
    """S26: the patient did not come."""
    found = touched.appointment = required(existing, booking)
    if found.status == Appointment.Status.NO_SHOW:
        touched.note = "Already marked no-show: nothing changed."
        return
    record_no_show(found, by=header.sender, channel=Via.FEED)
    touched.note = "Marked no-show."


def required(existing, booking):
    if existing is None:
        raise Hl7Problem(f"No appointment has the id {booking.reference}.", code=reading.UNKNOWN_KEY, where=("SCH", 2))
    return existing


def mapped(model, kind, code, where, existing, likely=None):
    """The object the EHR's code stands for: the code table first, then our external ids.
    `likely` (the provider's own location or specialty) answers without a query when the
    code is its external id, as in most messages."""
    if not code:
        if existing is not None and model is Provider:
            return existing.provider
        raise Hl7Problem(f"{where[0]}-{where[1]} is empty.", code=reading.REQUIRED_FIELD_MISSING, where=where)
    if likely is not None and likely.external_id == code and not code_table_has(kind):
        return likely
    mapping = Hl7CodeMapping.objects.filter(kind=kind, code=code).select_related(kind).first()
    if mapping is not None:
        return mapping.target
    related = ["location", "specialty"] if model is Provider else []
    found = model.objects.select_related(*related).filter(external_id=code).first()
    if found is None:
        raise Hl7Problem(
            f"{where[0]}-{where[1]} {code!r} is no {kind} Backfill knows: add it to the HL7 codes.",
            code=reading.TABLE_VALUE_NOT_FOUND,
            where=where,
        )
    return found


def code_table_has(kind):
    return Hl7CodeMapping.objects.filter(kind=kind).exists()


def times(booking, location, existing):
    start = reading.moment(booking.start_text, booking.start_where, location.zone)
    if start is None:
        raise Hl7Problem(
            "AIS-4 and SCH-11 (the start) are both empty.", code=reading.REQUIRED_FIELD_MISSING, where=("AIS", 4)
        )
    start += booking.offset
    if booking.duration is not None:
        return start, start + booking.duration
    end = reading.moment(booking.end_text, ("SCH", 11), location.zone)
    if end is not None and end > start:
        return start, end
    if existing is not None:
        return start, start + (existing.end - existing.start)
    raise Hl7Problem(
        "AIS-7 and SCH-9 (the duration) are both empty.", code=reading.REQUIRED_FIELD_MISSING, where=("AIS", 7)
    )


def describe(appointment):
    return f"{appointment.provider.name}, {appointment.provider.location.local(appointment.start):%a %d %b %Y %H:%M}"


APPLY = {
    "A04": apply_patient,
    "A08": apply_patient,
    "A40": apply_merge,
    **dict.fromkeys(["S12", "S13", "S14", "S15", "S17", "S26"], apply_schedule),
}
VERBS = {"S12": place, "S13": place, "S14": place, "S15": cancel, "S17": cancel, "S26": no_show}
