"""What the feed reads for every message, prepared on PostgreSQL (clinic/prepared.py).

A day's feed reads the same four things for each message: its stored answer (a resent
control id), the appointment the EHR names with the newest message applied to it, the
patient of the MRN (locked) and whether they wait for the specialty, and any appointment
the new time clashes with. Through the ORM, compiling these cost the listener more CPU
than everything PostgreSQL did for the message (bench/profile_hl7.py); here each one's SQL
is built once and runs prepared. The ORM's version stays beside each (SQLite, DEBUG's query
log, `prepared.reference()`), and tests/test_hl7_inbound.py reads both ways.
"""

import functools

from django.db import connection
from django.db.models import Exists, OuterRef, Q, Subquery

from clinic import prepared
from clinic.models import Patient
from integrations.hl7.models import Hl7Message
from scheduling.models import LOCKED_WITH, Appointment
from waitlist.models import WaitlistEntry


def _table(model):
    return connection.ops.quote_name(model._meta.db_table)


def stored_answer(sender, control_id):
    """The acknowledgement kept for this sender's control id, if it came before."""
    if not prepared.in_use():
        return (
            Hl7Message.objects.filter(direction=Hl7Message.Direction.IN, sender=sender, control_id=control_id)
            .values_list("ack", flat=True)
            .first()
        )
    rows = prepared.fetch(_stored_answer_sql(), [Hl7Message.Direction.IN.value, sender, control_id])
    return rows[0][0] if rows else None


@functools.cache
def _stored_answer_sql():
    # One row at most: the constraint hl7_inbound_once_per_control_id.
    return f"SELECT ack FROM {_table(Hl7Message)} WHERE direction = %s AND sender = %s AND control_id = %s LIMIT 1"


def named_appointment(reference):
    """The appointment that has the EHR's id, with its provider, site, specialty and patient,
    and the MSH-7 of the newest message applied to it (`newest_applied`), in one query."""
    if not prepared.in_use():
        newest = (
            Hl7Message.objects.filter(
                direction=Hl7Message.Direction.IN,
                appointment_ref=reference,
                outcome=Hl7Message.Outcome.ACCEPTED,
                sent_at__isnull=False,
            )
            .order_by("-sent_at")
            .values("sent_at")[:1]
        )
        return (
            Appointment.objects.select_related(*LOCKED_WITH)
            .annotate(newest_applied=Subquery(newest))
            .filter(external_id=reference)
            .first()
        )
    params = [Hl7Message.Direction.IN.value, reference, Hl7Message.Outcome.ACCEPTED.value, reference]
    rows = prepared.fetch(_named_appointment_sql(), params)
    if not rows:
        return None
    appointment = _appointment_with_provider().read(rows[0][1:])
    appointment.newest_applied = rows[0][0]
    return appointment


@functools.cache
def _appointment_with_provider():
    return prepared.Joined(Appointment, LOCKED_WITH)


@functools.cache
def _named_appointment_sql():
    # The newest applied is read off the index hl7_message_by_appointment (appointment_ref, sent_at).
    newest = (
        f"SELECT sent_at FROM {_table(Hl7Message)} WHERE direction = %s AND appointment_ref = %s "
        "AND outcome = %s AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT 1"
    )
    select = _appointment_with_provider().select.removeprefix("SELECT ")
    return f"SELECT ({newest}), {select} WHERE t0.external_id = %s LIMIT 1"


def patient_locked(mrn, waiting_for=None):
    """The patient of this MRN, locked, or None. With `waiting_for` (a specialty),
    `patient.waits` says whether they wait for it (the same query)."""
    if not prepared.in_use():
        found = Patient.objects.select_for_update().filter(external_id=mrn)
        if waiting_for is not None:
            found = found.annotate(
                waits=Exists(
                    WaitlistEntry.objects.filter(
                        patient=OuterRef("pk"), specialty=waiting_for, status=WaitlistEntry.Status.WAITING
                    )
                )
            )
        return found.first()
    specialty = waiting_for.pk if waiting_for is not None else None
    rows = prepared.fetch(_patient_sql(), [specialty, WaitlistEntry.Status.WAITING.value, mrn])
    if not rows:
        return None
    patient = _patient().read(rows[0][1:])
    if waiting_for is not None:
        patient.waits = rows[0][0]
    return patient


@functools.cache
def _patient():
    return prepared.Joined(Patient, ())


@functools.cache
def _patient_sql():
    waiting = (
        f"SELECT 1 FROM {_table(WaitlistEntry)} w WHERE w.patient_id = t0.id AND w.specialty_id = %s AND w.status = %s"
    )
    select = _patient().select.removeprefix("SELECT ")
    return f"SELECT EXISTS ({waiting}), {select} WHERE t0.external_id = %s LIMIT 1 FOR UPDATE OF t0"


def clash(provider, patient, start, end, existing=None):
    """The active appointment the provider or the patient (if saved) already has between
    start and end, `existing` aside, first by start; or None."""
    if not prepared.in_use():
        others = Appointment.objects.overlapping(start, end).filter(
            Q(provider=provider) | Q(patient=patient) if patient.pk else Q(provider=provider)
        )
        if existing is not None:
            others = others.exclude(pk=existing.pk)
        return others.first()
    # No patient id matches -1, no appointment id 0: one statement for every case.
    params = [
        start,
        end,
        provider.pk,
        patient.pk or -1,
        existing.pk if existing is not None else 0,
    ]
    rows = prepared.fetch(_clash_sql(), params)
    return _appointment_with_provider().read(rows[0]) if rows else None


@functools.cache
def _clash_sql():
    # Appointment.objects.overlapping's condition, as scheduling.models.ActiveDuring writes it
    # for the overlap constraints' GiST indexes; ordered as Appointment.Meta.ordering.
    cancelled = Appointment.Status.CANCELLED.value
    return (
        f"{_appointment_with_provider().select} WHERE t0.status <> '{cancelled}' "
        "AND tstzrange(t0.start, t0.\"end\", '[)') && tstzrange(%s, %s, '[)') "
        "AND (t0.provider_id = %s OR t0.patient_id = %s) AND t0.id <> %s "
        "ORDER BY t0.start, t0.provider_id LIMIT 1"
    )
