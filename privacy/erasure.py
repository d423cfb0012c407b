"""Erasing a patient who leaves: what identifies them is replaced, what counts stays.

Their future appointments are cancelled and their waiting entries removed through the same
actions the front desk uses (so each freed slot goes to the waitlist as usual), without a
message. Then, in one transaction, the patient's names, addresses, phone, external id and
consents are replaced by placeholders, and the copies of them in messages, texts and feed
messages are blanked. Kept for the statistics: the appointments (times, providers, statuses),
the waitlist history, the risk, the plan and the dates.

The audit trail records the erasure with the columns that changed but not their values
(audit.context's `conceal`); what the trail recorded before stays until its retention ends.
"""

import logging

from django.db import transaction
from django.utils import timezone

from audit import context as audit_context
from clinic.actions import actor
from clinic.models import InboundText, OutboundEmail, Patient
from integrations.hl7.models import Hl7Message
from scheduling.actions import cancel_appointment
from scheduling.models import Appointment, SchedulingError
from waitlist.actions import leave_waitlist
from waitlist.models import WaitlistEntry

log = logging.getLogger("clinic")

ERASED = "(erased)"
REASON = "patient's data erased at their request"
UPCOMING = [Appointment.Status.SCHEDULED, Appointment.Status.OFFERED, Appointment.Status.CONFIRMED]


def erase_patient(patient, *, by, channel):
    """Returns how many appointments were cancelled and waitlist entries removed."""
    cancelled = removed = 0
    upcoming = Appointment.objects.filter(
        patient=patient, status__in=UPCOMING, start__gt=timezone.now()
    ).select_related("provider__location")
    for appointment in upcoming:
        try:
            cancel_appointment(appointment, by=by, channel=channel, reason=REASON, notify=False)
            cancelled += 1
        except SchedulingError:  # taken or cancelled meanwhile: nothing of theirs to free
            continue
    for entry in WaitlistEntry.objects.filter(patient=patient, status=WaitlistEntry.Status.WAITING):
        removed += leave_waitlist(entry, by=by, channel=channel)
    with audit_context.concealing(), transaction.atomic(durable=True):
        _replace_identifying_fields(Patient.objects.select_for_update().get(pk=patient.pk))
        OutboundEmail.objects.filter(patient=patient).update(
            recipient=ERASED, subject="", text_body=ERASED, html_body="", last_error=""
        )
        InboundText.objects.filter(patient=patient).update(from_number=ERASED, body=ERASED, reply="")
        Hl7Message.objects.filter(patient=patient).update(raw=ERASED, ack="", mrn="", note="")
    log.info(
        "patient.erased patient=%s cancelled=%s removed=%s by=%s channel=%s",
        patient.pk,
        cancelled,
        removed,
        actor(by),
        channel,
    )
    patient.refresh_from_db()
    return cancelled, removed


def _replace_identifying_fields(patient):
    patient.first_name = "Erased"
    patient.last_name = f"patient {patient.pk}"
    patient.email = f"erased-{patient.pk}@erased.invalid"
    patient.phone = ""
    patient.external_id = None
    patient.birth_date = None
    patient.preferred_language = ""
    patient.email_opt_out = True
    patient.sms_consent = False
    patient.sms_consent_at = timezone.now()
    patient.sms_consent_source = Patient.ConsentSource.STAFF
    patient.preferred_channel = Patient.Channel.EMAIL
    patient.save()
