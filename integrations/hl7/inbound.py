"""Applying a message from the EHR's feed, once, in order, and answering it (docs/hl7.md).

`receive(block, peer)` is the whole of it for one MLLP block: read it, answer a resent
control id from the stored acknowledgement, then, in one transaction (`clinic.actions.
one_unit`), make the change through the same actions as the API and the front desk
(`scheduling.actions`, channel `Via.FEED`: an S15 frees the slot and the backfill runs exactly
as for any cancellation) and keep the message with its acknowledgement. The acknowledgement
goes back only once that committed. A message that cannot be applied (an AE) rolls all of
it back and is kept, with its AE, in a transaction of its own: it changed nothing.

One transaction per message is also what makes a day's feed fast (bench/hl7_feed_rate.py):
each commit waits for the disk. What a connection's messages look up again and again (the
objects the EHR's codes stand for) is kept per connection (`Lookups`).
"""

import logging
import time
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
from clinic import events, prepared
from clinic.actions import Via, one_unit
from clinic.exceptions import DomainError
from clinic.models import Location, Patient, Provider, Specialty
from clinic.times import staff_datetime
from integrations.hl7 import acks, queries, reading
from integrations.hl7.models import Hl7CodeMapping, Hl7Message
from integrations.hl7.reading import Hl7Problem
from scheduling.actions import book_appointment, cancel_appointment, move_appointment, record_no_show
from scheduling.models import Appointment, AppointmentConflict
from waitlist.actions import leave_waitlist
from waitlist.models import WaitlistEntry

log = logging.getLogger("hl7")

CANCEL_REASON = {"S15": "cancelled in the EHR", "S17": "deleted in the EHR"}
RESCHEDULE_REASON = "rescheduled in the EHR"
# How long a connection trusts what it looked up: a code added or changed in the admin
# reaches a connection already open within this time.
LOOKUP_SECONDS = 60


class Lookups:
    """The providers, locations and specialties one connection's messages named, by the EHR's
    code (the code table first, then the external ids), kept LOOKUP_SECONDS. A code not
    found is looked up again each time: the analyst adds it, the EHR resends the message.

    Used by one message at a time (a connection's messages are answered in turn)."""

    def __init__(self):
        self.found = {}
        self.until = 0.0

    def find(self, kind, code):
        now = time.monotonic()
        if now >= self.until:
            self.found, self.until = {}, now + LOOKUP_SECONDS
        if (kind, code) not in self.found:
            target = look_up(kind, code)
            if target is None:
                return None
            self.found[kind, code] = target
        return self.found[kind, code]


MODELS = {
    Hl7CodeMapping.Kind.PROVIDER: (Provider, ["location", "specialty"]),
    Hl7CodeMapping.Kind.LOCATION: (Location, []),
    Hl7CodeMapping.Kind.SPECIALTY: (Specialty, []),
}


def look_up(kind, code):
    model, related = MODELS[kind]
    mapping = (
        Hl7CodeMapping.objects.filter(kind=kind, code=code)
        .select_related(kind, *(f"{kind}__{name}" for name in related))
        .first()
    )
    if mapping is not None:
        return mapping.target
    return model.objects.select_related(*related).filter(external_id=code).first()


def receive_in_worker_thread(block, peer, lookups=None):
    """`receive` for the listener's threads: a connection left broken or too old by an earlier
    message is dropped first, and this thread's is released after (CONN_MAX_AGE, the pool)."""
    close_old_connections()
    try:
        return receive(block, peer, lookups)
    finally:
        close_old_connections()


def receive(block, peer="unknown", lookups=None):
    """The acknowledgement (text) for one MLLP block once its change has committed, or None
    when the database could not be reached: nothing is acknowledged, so the sender resends."""
    text = decode(block)
    try:
        with audit_context.acting(f"HL7 feed ({peer})", audit_context.Channel.FEED):
            return answer(text, peer, lookups or Lookups())
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


def answer(text, peer, lookups):
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
    for _ in range(2):
        stored = answered_before(header)
        if stored is not None:
            return stored
        try:
            return apply(message, header, text, lookups)
        except IntegrityError:
            # Rolled back whole. The same control id, sent again on another connection at
            # the same moment, committed first (its answer is this one's, above); or that
            # other message made this one's patient first: applied again, it finds them.
            continue
        except (OperationalError, InterfaceError):
            raise
        except Exception:
            return failed(message, header, text)
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
    return queries.stored_answer(header.sender, header.control_id)


@dataclass
class Touched:
    """What a message touched and what was done, for its stored record."""

    note: str = ""
    mrn: str = ""
    reference: str = ""
    patient: Patient = None
    appointment: Appointment = None
    merged_mrn: str = ""
    merged_patient: Patient = None


def apply(message, header, text, lookups):
    """The change and the message kept with its AA, in one transaction; or, when the message
    cannot be applied, nothing changed and the message kept with its AE."""
    record = Hl7Message(
        direction=Hl7Message.Direction.IN,
        sender=header.sender,
        message_type=header.message_type,
        control_id=header.control_id,
        sent_at=header.sent_at,
        raw=text,
        outcome=Hl7Message.Outcome.ACCEPTED,
        ack=acks.acknowledgement(message, "AA"),  # made before the transaction: it holds locks
    )
    touched = Touched()
    try:
        with one_unit(), events.written_together():  # the message's events in one statement
            APPLY[header.event](message, header, touched, lookups)
            describe_in(record, touched)
            prepared.insert([record])  # kept with its change, in its transaction
    except Hl7Problem as problem:
        refused(record, message, touched, problem)
    except DomainError as refusal:  # the actions' own refusals: a clash, a visit not yet started
        where = ("AIS", 4) if header.event in ("S12", "S13", "S14") else ("SCH", 2)
        problem = Hl7Problem(str(refusal), code=reading.APPLICATION_INTERNAL_ERROR, where=where)
        refused(record, message, touched, problem)
    log.info(
        "hl7.received sender=%s type=%s control_id=%s outcome=%s appointment=%s",
        header.sender,
        header.message_type,
        header.control_id,
        record.outcome,
        record.appointment_id,
    )
    return record.ack


def describe_in(record, touched):
    record.note = touched.note[:500]
    record.mrn, record.appointment_ref, record.merged_mrn = touched.mrn, touched.reference, touched.merged_mrn
    record.patient = touched.patient or (touched.appointment.patient if touched.appointment else None)
    record.appointment, record.merged_patient = touched.appointment, touched.merged_patient


def refused(record, message, touched, problem):
    """Kept with its AE: the patient and appointment it names, as they are (it changed nothing)."""
    record.outcome, record.note = problem.ack_code, problem.text[:500]
    record.ack = acks.acknowledgement(message, problem.ack_code, problem)
    record.mrn, record.appointment_ref = touched.mrn, touched.reference
    record.patient = Patient.objects.filter(external_id=touched.mrn).first() if touched.mrn else None
    record.appointment = (
        Appointment.objects.filter(external_id=touched.reference).first() if touched.reference else None
    )
    keep(record)


# --- Patients (PID) -------------------------------------------------------------------

FROM_PID = ["first_name", "last_name", "birth_date", "phone", "email", "preferred_language"]


def record_patient(facts, waiting_for=None):
    """The patient of this MRN, as PID says; a patient first seen in the feed is made from it.
    With `waiting_for` (a specialty), `patient.waits` says whether they wait for it (the same query)."""
    patient = queries.patient_locked(facts.mrn, waiting_for)
    if patient is None:
        patient = Patient(external_id=facts.mrn, first_name="", last_name="")
        patient.waits = False
    return as_pid_says(patient, facts)


def as_pid_says(patient, facts):
    """The patient's details from PID, saved when they differ (most messages repeat them)."""
    says = {
        "first_name": facts.given_name or patient.first_name or "(no given name)",
        "last_name": facts.family_name or patient.last_name or "(no family name)",
        "birth_date": facts.birth_date or patient.birth_date,
        "phone": facts.phone or patient.phone,
        "email": facts.email or patient.email,
        "preferred_language": facts.language or patient.preferred_language,
    }
    changed = []
    for name in FROM_PID:
        was = str(getattr(patient, name))
        if str(says[name]) == was:
            continue  # not set again: setting a phone number parses it (phonenumber_field)
        setattr(patient, name, says[name])
        if str(getattr(patient, name)) != was:
            changed.append(name)
    if patient.pk is None:
        patient.save()
    elif changed:
        patient.save(update_fields=changed)
    return patient


def apply_patient(message, header, touched, lookups):
    """ADT A04 (registered) and A08 (updated): the patient as PID says."""
    facts = reading.patient_facts(message)
    touched.mrn = facts.mrn
    touched.patient = record_patient(facts)
    touched.note = f"{touched.patient} registered or updated."


def apply_merge(message, header, touched, lookups):
    """ADT A40: the patient of MRG-1 is merged into the patient of PID-3."""
    prior_mrn = reading.value(message, "MRG", 1, 1, 1)[:100]
    if not prior_mrn:
        raise Hl7Problem(
            "MRG-1 (the merged patient's MRN) is empty.", code=reading.REQUIRED_FIELD_MISSING, where=("MRG", 1)
        )
    facts = reading.patient_facts(message)
    touched.mrn, touched.merged_mrn = facts.mrn, prior_mrn
    prior = Patient.objects.select_for_update().filter(external_id=prior_mrn).first()
    survivor = Patient.objects.select_for_update().filter(external_id=facts.mrn).first()
    if prior is not None and survivor is None:  # only the MRN changes
        prior.external_id = facts.mrn
        prior.save(update_fields=["external_id"])
    touched.patient = record_patient(facts)
    if prior is None or survivor is None or prior == survivor:
        touched.note = f"{touched.patient} has MRN {facts.mrn}; no other patient has MRN {prior_mrn}."
        return
    touched.merged_patient = prior
    moved = move_history(prior, touched.patient, by=header.sender)
    touched.note = f"{prior} (MRN {prior_mrn}) merged into {touched.patient} (MRN {facts.mrn}): {moved}."


def move_history(prior, survivor, *, by):
    """The merged patient's appointments, waitlist entries and messages become the survivor's;
    the merged record stays, without its MRN, so nothing that pointed to it is lost. Other
    systems hear it as one `patient.merged` event (docs/reference.md, Events). Returns what moved, in words."""
    appointments = list(Appointment.objects.filter(patient=prior).select_related("provider__location"))
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
    removed = 0
    for entry in prior.waitlist_entries.filter(status=WaitlistEntry.Status.WAITING, specialty_id__in=waiting_for):
        # The survivor already waits for that specialty: the same action as any other leaving.
        removed += leave_waitlist(entry, by=by, channel=Via.FEED)
    # Waiting entries keep copies of their patient's risk and plan for ranking (waitlist/models.py).
    entries_moved = prior.waitlist_entries.update(
        patient=survivor, ranking_risk=survivor.ranking_risk, insurance_plan_id=survivor.insurance_plan_id
    )
    prior.messages.update(patient=survivor)
    events.record("patient.merged", survivor, merged_patient=prior)  # the merged one still with its MRN
    prior.external_id = None
    prior.save(update_fields=["external_id"])
    return "; ".join(
        [
            f"{len(appointments)} appointment(s) moved"
            + "".join(f", {describe(appointment)}" for appointment in appointments[:5]),
            f"{entries_moved} waitlist entries moved ({removed} of them removed: the survivor waited already)",
        ]
    )


# --- Appointments (SIU) ---------------------------------------------------------------


def apply_schedule(message, header, touched, lookups):
    """SIU: the appointment the EHR names in SCH, as the message says, unless a newer message
    about it was applied already (MSH-7)."""
    facts = reading.patient_facts(message)
    booking = reading.booking(message)
    touched.mrn, touched.reference = facts.mrn, booking.reference
    existing = queries.named_appointment(booking.reference)
    newest = existing.newest_applied if existing is not None else None
    if header.sent_at and newest and newest > header.sent_at:
        touched.note = "Older (MSH-7) than a message already applied to this appointment: nothing changed."
        touched.appointment = existing
        return
    VERBS[header.event](facts, booking, existing, header, touched, lookups)


@dataclass
class Placement:
    provider: Provider
    specialty: Specialty
    start: object
    end: object


def placement(booking, existing, lookups):
    """Where and when the message puts the appointment, every code and time checked."""
    if booking.provider_code:
        provider = mapped(lookups, Hl7CodeMapping.Kind.PROVIDER, booking.provider_code, ("AIP", 3))
    elif existing is not None:
        provider = existing.provider
    else:
        raise Hl7Problem("AIP-3 is empty.", code=reading.REQUIRED_FIELD_MISSING, where=("AIP", 3))
    location = provider.location
    if booking.location_code:
        location = mapped(lookups, Hl7CodeMapping.Kind.LOCATION, booking.location_code, ("AIL", 3))
    specialty = provider.specialty
    if booking.specialty_code:
        specialty = mapped(lookups, Hl7CodeMapping.Kind.SPECIALTY, booking.specialty_code, ("AIS", 3))
    start, end = times(booking, location, existing)
    return Placement(provider, specialty, start, end)


def mapped(lookups, kind, code, where):
    found = lookups.find(kind, code)
    if found is None:
        raise Hl7Problem(
            f"{where[0]}-{where[1]} {code!r} is no {kind} Backfill knows: add it to the HL7 codes.",
            code=reading.TABLE_VALUE_NOT_FOUND,
            where=where,
        )
    return found


def place(facts, booking, existing, header, touched, lookups):
    """S12, S13, S14: the appointment is booked, moved or left as it is."""
    where = placement(booking, existing, lookups)
    active = existing is not None and existing.is_active
    if active and existing.patient.external_id != facts.mrn:
        raise Hl7Problem(
            f"Appointment {booking.reference} is another patient's than PID-3 says.",
            code=reading.UNKNOWN_KEY,
            where=("PID", 3),
        )
    patient = touched.patient = record_patient(facts, waiting_for=where.specialty)
    if active and (existing.provider_id, existing.start, existing.end) == (where.provider.pk, where.start, where.end):
        touched.note = "No change to the appointment's time or provider."
        appointment = existing
    elif active:
        appointment = move(existing, where, booking, header)
        touched.note = f"Moved to {describe(appointment)}."
    else:
        appointment = book(patient, where, booking, existing, header)
        touched.note = f"Booked with {describe(appointment)}."
    touched.appointment = appointment
    if patient.waits:
        take_off_waitlist(patient, where.specialty, appointment)


def clash(patient, where, existing=None):
    """The appointment the provider or the patient already has then, if any (one query; the
    booking then leaves the check to the database, which has the last word on a race)."""
    return queries.clash(where.provider, patient, where.start, where.end, existing)


def book(patient, where, booking, existing, header):
    found = clash(patient, where)
    if found is not None and (found.patient_id, found.provider_id, found.start, found.end) == (
        patient.pk,
        where.provider.pk,
        where.start,
        where.end,
    ):
        # Already booked here (by Backfill, which told the EHR): the EHR's id is adopted,
        # nothing is booked twice.
        if existing is not None and existing.pk != found.pk:
            Appointment.objects.filter(pk=existing.pk).update(external_id=None)
        Appointment.objects.filter(pk=found.pk).update(external_id=booking.reference)
        found.external_id = booking.reference
        return found
    if found is not None:
        raise AppointmentConflict(
            f"The {'provider' if found.provider_id == where.provider.pk else 'patient'} already has an appointment "
            "at that time."
        )
    if existing is not None:  # the EHR books its id again after a cancellation
        Appointment.objects.filter(pk=existing.pk).update(external_id=None)
    return book_appointment(
        patient=patient,
        provider=where.provider,
        start=where.start,
        end=where.end,
        by=header.sender,
        channel=Via.FEED,
        external_id=booking.reference,
        precheck=False,
    )


def move(existing, where, booking, header):
    """The same move as the admin's (scheduling.actions.move_appointment): the old time is
    freed for the waitlist; the patient hears from the EHR, not twice."""
    found = clash(existing.patient, where, existing)
    if found is not None:
        raise AppointmentConflict(
            f"The {'provider' if found.provider_id == where.provider.pk else 'patient'} already has an appointment "
            "at that time."
        )
    return move_appointment(
        existing,
        provider=where.provider,
        start=where.start,
        end=where.end,
        by=header.sender,
        channel=Via.FEED,
        reason=RESCHEDULE_REASON,
        external_id=booking.reference,
        notify=False,
        precheck=False,
    )


def take_off_waitlist(patient, specialty, appointment):
    """The patient booked by the EHR no longer waits for that specialty: the backfill books
    nobody twice."""
    waiting = WaitlistEntry.objects.select_for_update().filter(
        patient=patient, specialty=specialty, status=WaitlistEntry.Status.WAITING
    )
    for entry in waiting:
        entry.status = WaitlistEntry.Status.BOOKED
        entry.booked_appointment = appointment
        entry.save(update_fields=["status", "booked_appointment"])
        events.record("waitlist_entry.booked", entry, appointment=appointment)


def patient_of(existing, facts):
    """The patient PID names, as PID says: the appointment's own when it is theirs (no query)."""
    if existing.patient.external_id == facts.mrn:
        return as_pid_says(existing.patient, facts)
    return record_patient(facts)


def cancel(facts, booking, existing, header, touched, lookups):
    """S15 and S17: cancelled exactly as the API and the front desk cancel."""
    found = touched.appointment = required(existing, booking)
    touched.patient = patient_of(found, facts)
    if found.status == Appointment.Status.CANCELLED:
        touched.note = "Already cancelled: nothing changed."
        return
    reason = booking.reason or CANCEL_REASON[header.event]
    cancel_appointment(found, by=header.sender, channel=Via.FEED, reason=reason)
    touched.note = f"Cancelled ({reason})."


def no_show(facts, booking, existing, header, touched, lookups):
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
    return f"{appointment.provider.name}, {staff_datetime(appointment.provider.location.local(appointment.start))}"


APPLY = {
    "A04": apply_patient,
    "A08": apply_patient,
    "A40": apply_merge,
    **dict.fromkeys(["S12", "S13", "S14", "S15", "S17", "S26"], apply_schedule),
}
VERBS = {"S12": place, "S13": place, "S14": place, "S15": cancel, "S17": cancel, "S26": no_show}
