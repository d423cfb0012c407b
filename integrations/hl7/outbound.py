"""Backfill's own changes to the EHR as SIU over MLLP, on the webhooks' road (docs/hl7.md, "Outbound").

Once events commit (clinic.events.after_commit), one sending job is asked for per burst on
the webhooks' queue. It looks at the events each active endpoint has not seen, keeps an
outbound HL7Message for each that Backfill itself caused (a backfill booking S12, a move to
a colleague S13, a patient's own cancellation S15; never what came from the EHR's feed),
then sends each endpoint's due messages over one MLLP connection, one at a time, in order
per appointment. A dropped connection, no answer or an AE/AR is retried with backoff for
HL7_RETRY_HOURS, then given up; the sweep-like schedule `hl7-housekeeping` asks for the job
when a retry is due and purges messages past HL7_RETENTION_DAYS.
"""

import asyncio
import logging
from datetime import timedelta

import hl7
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from hl7.mllp import open_hl7_connection

from clinic import addresses
from clinic.models import Event
from clinic.queue import enqueue_unless_pending, started
from integrations.hl7.models import Hl7Endpoint, Hl7Message
from integrations.hl7.reading import value
from scheduling.models import Appointment

log = logging.getLogger("hl7")

JOB = "send-hl7"
# An event is looked at again until it is this old: one committed after a later one (its
# id taken first) is not skipped.
SETTLE_SECONDS = 60
SCAN = 500
CLAIM_SECONDS = 120
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600
ACCEPTED = ("AA", "CA")
PATIENT = "patient"  # who cancelled, when a patient did (their link or a text: scheduling.actions)


def request_sending():
    """After events commit: one sending job per burst, if any endpoint listens."""
    if Hl7Endpoint.any_active():
        request_sending_now()


def request_sending_now():
    enqueue_unless_pending(
        JOB, "integrations.hl7.outbound.send", expires_after=60, queue=settings.WEBHOOK_QUEUE, group="hl7"
    )


def send():
    """The job: keep what is new for each endpoint, then send what is due."""
    started(JOB)
    sent = 0
    for endpoint in Hl7Endpoint.objects.filter(active=True):
        fan_out(endpoint)
        sent += send_for(endpoint.pk)
    return sent


# --- Which events become which messages ------------------------------------------------


def siu_event(event, appointment):
    """The SIU trigger for an event Backfill itself caused, or None."""
    if event.type == "waitlist_entry.booked" and appointment.source == Appointment.Source.BACKFILL:
        return "S12"
    if event.type == "appointment.created" and appointment.source == Appointment.Source.REASSIGNMENT:
        return "S13"
    if event.type == "appointment.cancelled" and appointment.cancelled_by == PATIENT:
        return "S15"
    return None


def appointment_id(event):
    data = event.payload.get("appointment") or {}
    return data.get("id")


def fan_out(endpoint, now=None):
    """An outbound message for each new event this endpoint takes."""
    now = now or timezone.now()
    events = list(
        Event.objects.filter(
            pk__gt=endpoint.seen_through,
            type__in=["waitlist_entry.booked", "appointment.created", "appointment.cancelled"],
            occurred_at__gte=endpoint.created_at,
        ).order_by("pk")[:SCAN]
    )
    ids = {appointment_id(event) for event in events} - {None}
    appointments = Appointment.objects.select_related("patient", "provider__location", "provider__specialty").in_bulk(
        ids
    )
    messages = []
    for event in events:
        appointment = appointments.get(appointment_id(event))
        trigger = appointment and siu_event(event, appointment)
        if trigger and endpoint.takes(trigger):
            messages.append(compose(endpoint, event, appointment, trigger, now))
    settled = [event.pk for event in events if event.occurred_at <= now - timedelta(seconds=SETTLE_SECONDS)]
    with transaction.atomic():
        Hl7Message.objects.bulk_create(messages, ignore_conflicts=True)
        if settled:
            Hl7Endpoint.objects.filter(pk=endpoint.pk, seen_through__lt=max(settled)).update(seen_through=max(settled))


# --- The message ------------------------------------------------------------------------


def compose(endpoint, event, appointment, trigger, now):
    control_id = f"BF{event.pk}E{endpoint.pk}"
    return Hl7Message(
        direction=Hl7Message.Direction.OUT,
        sender=str(endpoint)[:200],
        endpoint=endpoint,
        event=event,
        message_type=f"SIU^{trigger}",
        control_id=control_id,
        sent_at=now,
        raw=siu(endpoint, appointment, trigger, control_id, now),
        outcome=Hl7Message.Outcome.PENDING,
        mrn=appointment.patient.external_id or "",
        appointment_ref=ehr_id(appointment) or "",
        patient=appointment.patient,
        appointment=appointment,
        next_attempt_at=now,
    )


def ehr_id(appointment):
    """The EHR's id of the appointment, or of the one it replaces (a move)."""
    if appointment.external_id:
        return appointment.external_id
    replaced = appointment.replaces
    return replaced.external_id if replaced is not None else None


def stamp(moment, zone):
    return moment.astimezone(zone).strftime("%Y%m%d%H%M%S%z")


def siu(endpoint, appointment, trigger, control_id, now):
    """The SIU message for `appointment`, built with python-hl7 (values escaped by it)."""
    location, provider, patient = appointment.provider.location, appointment.provider, appointment.patient
    minutes = str(int((appointment.end - appointment.start).total_seconds() // 60))
    start, end = stamp(appointment.start, location.zone), stamp(appointment.end, location.zone)
    message = hl7.parse("MSH|^~\\&|")
    segments = {
        "MSH": {
            3: endpoint.sending_application,
            4: endpoint.sending_facility,
            5: endpoint.receiving_application,
            6: endpoint.receiving_facility,
            7: stamp(now, timezone.get_default_timezone()),
            (9, 1): "SIU",
            (9, 2): trigger,
            (9, 3): "SIU_S12",
            10: control_id,
            11: "P",
            12: "2.5.1",
        },
        "SCH": {
            (1, 1): str(appointment.pk),
            (1, 2): "BACKFILL",
            (2, 1): ehr_id(appointment) or "",
            (6, 1): appointment.cancel_reason if trigger == "S15" else {"S12": "BACKFILL", "S13": "MOVED"}[trigger],
            9: minutes,
            10: "MIN",
            (11, 3): minutes,
            (11, 4): start,
            (11, 5): end,
            25: "Cancelled" if trigger == "S15" else "Booked",
        },
        "PID": {
            1: "1",
            (3, 1): patient.external_id or f"BF{patient.pk}",
            (3, 4): "" if patient.external_id else "BACKFILL",
            (3, 5): "MR" if patient.external_id else "PI",
            (5, 1): patient.last_name,
            (5, 2): patient.first_name,
            7: patient.birth_date.strftime("%Y%m%d") if patient.birth_date else "",
            (13, 1): str(patient.phone or ""),
            15: patient.preferred_language,
        },
        "RGS": {1: "1", 2: "A"},
        "AIS": {
            1: "1",
            2: "A",
            (3, 1): provider.specialty.external_id or "",
            (3, 2): provider.specialty.name,
            4: start,
            7: minutes,
            8: "MIN",
        },
        "AIL": {1: "1", 2: "A", (3, 1): location.external_id or "", (3, 9): location.name},
        "AIP": {1: "1", 2: "A", (3, 1): provider.external_id or "", (3, 2): provider.name},
    }
    for name, fields in segments.items():
        segment = message.segment("MSH") if name == "MSH" else message.create_segment([message.create_field([name])])
        for where, text in fields.items():
            field, component = where if isinstance(where, tuple) else (where, None)
            if component is None:
                segment.assign_field(message.escape(text), field)
            else:
                segment.assign_field(message.escape(text), field, 1, component)
        if name != "MSH":
            message.append(segment)
    return str(message)


# --- Sending ----------------------------------------------------------------------------


def claim(endpoint_id, now):
    return (
        Hl7Endpoint.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now), pk=endpoint_id, active=True
        ).update(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        == 1
    )


def send_for(endpoint_id):
    """Send the endpoint's due messages in order; the number the EHR accepted."""
    if not claim(endpoint_id, timezone.now()):
        return 0  # another sender has it
    try:
        endpoint = Hl7Endpoint.objects.get(pk=endpoint_id)
        due = next_due(endpoint)
        return send_over_one_connection(endpoint, due) if due else 0
    finally:
        Hl7Endpoint.objects.filter(pk=endpoint_id).update(claimed_until=None)


def next_due(endpoint, scan=200):
    """Pending messages due now, oldest first, none about an appointment whose earlier message
    still waits for its retry (it goes first)."""
    pending = Hl7Message.objects.filter(
        endpoint=endpoint, direction=Hl7Message.Direction.OUT, outcome=Hl7Message.Outcome.PENDING
    ).order_by("id")[:scan]
    blocked, due, now = set(), [], timezone.now()
    for message in pending:
        if message.appointment_id in blocked:
            continue
        if message.next_attempt_at is None or message.next_attempt_at <= now:
            due.append(message)
        else:
            blocked.add(message.appointment_id)
    return due


class Connection:
    """One MLLP connection to an endpoint, driven from this (synchronous) thread: python-hl7's
    asyncio client on a private event loop, so that every database write stays on the job's
    own thread and connection."""

    def __init__(self, endpoint):
        # Resolved and checked once, connected to exactly those addresses (clinic/addresses.py).
        found = addresses.checked_addresses(endpoint.host, endpoint.port, allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
        sock = addresses.connect(found, settings.HL7_TIMEOUT_SECONDS)
        self.loop = asyncio.new_event_loop()
        try:
            self.reader, self.writer = self.loop.run_until_complete(open_hl7_connection(sock=sock))
        except BaseException:
            sock.close()
            self.loop.close()
            raise

    def exchange(self, text):
        """Send one message; its acknowledgement's text."""
        return self.loop.run_until_complete(self._exchange(text))

    async def _exchange(self, text):
        self.writer.writeblock(text.encode("utf-8"))
        await self.writer.drain()
        block = await asyncio.wait_for(self.reader.readblock(), settings.HL7_TIMEOUT_SECONDS)
        return block.decode("utf-8", "replace")

    def close(self):
        self.writer.close()
        self.loop.run_until_complete(asyncio.sleep(0))  # let the transport close
        self.loop.close()


def send_over_one_connection(endpoint, due):
    try:
        connection = Connection(endpoint)
    except (OSError, ValueError) as failure:
        record_failed(due[0], "", f"{type(failure).__name__}: {failure}")
        return 0
    accepted, failed_appointments = 0, set()
    try:
        for message in due:
            if message.appointment_id in failed_appointments:
                continue  # in order: an appointment's later message waits for the earlier one
            try:
                ack = connection.exchange(message.raw)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as failure:
                record_failed(message, "", f"{type(failure).__name__}: {failure}")
                break  # the connection is gone: the rest wait for the next run
            if ack_code(ack) in ACCEPTED:
                record_accepted(message, ack)
                accepted += 1
            else:
                failed_appointments.add(message.appointment_id)
                record_failed(message, ack, f"The EHR answered {ack_code(ack) or 'no MSA'}.")
    finally:
        connection.close()
    return accepted


def ack_code(ack):
    try:
        return value(hl7.parse(ack.replace("\n", "\r")), "MSA", 1)
    except Exception:  # noqa: BLE001 - whatever the EHR answered, it is not an acceptance
        return ""


def record_accepted(message, ack):
    Hl7Message.objects.filter(pk=message.pk).update(
        outcome=Hl7Message.Outcome.ACCEPTED, ack=ack, attempts=message.attempts + 1, note="", next_attempt_at=None
    )
    log.info(
        "hl7.sent endpoint=%s control_id=%s appointment=%s",
        message.endpoint_id,
        message.control_id,
        message.appointment_id,
    )


def record_failed(message, ack, error):
    now = timezone.now()
    attempts = message.attempts + 1
    given_up = now - message.received_at >= timedelta(hours=settings.HL7_RETRY_HOURS)
    backoff = min(FIRST_RETRY_SECONDS * 2 ** (attempts - 1), MAX_RETRY_SECONDS)
    Hl7Message.objects.filter(pk=message.pk).update(
        outcome=Hl7Message.Outcome.FAILED if given_up else Hl7Message.Outcome.PENDING,
        ack=ack,
        note=error[:500],
        attempts=attempts,
        next_attempt_at=None if given_up else now + timedelta(seconds=backoff),
    )
    log.info(
        "hl7.send_failed endpoint=%s control_id=%s attempt=%s error=%s",
        message.endpoint_id,
        message.control_id,
        attempts,
        error[:100],
    )


def resend(messages):
    """Given-up messages go out again, as if new (an integrator or manager asked)."""
    count = messages.filter(direction=Hl7Message.Direction.OUT, outcome=Hl7Message.Outcome.FAILED).update(
        outcome=Hl7Message.Outcome.PENDING, next_attempt_at=timezone.now(), received_at=timezone.now()
    )
    if count:
        transaction.on_commit(request_sending_now, robust=True)
    return count


def housekeeping(now=None):
    """Every minute (the hl7-housekeeping schedule): ask for the job when a retry is due or
    events may wait, and forget messages past HL7_RETENTION_DAYS."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.HL7_RETENTION_DAYS)
    purged, _ = Hl7Message.objects.filter(received_at__lt=cutoff).exclude(outcome=Hl7Message.Outcome.PENDING).delete()
    if Hl7Endpoint.objects.filter(active=True).exists():
        request_sending_now()
    return purged
