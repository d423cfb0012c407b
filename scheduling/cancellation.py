"""Cancellations and what the patient is told (issue 12).

The clinic cancelling (the admin's Cancel action, the API) tells the patient why; a patient
cancelling from their link gets a confirmation. Both go through `Appointment.cancel`, so
the freed slot is recorded and backfilled the same way; the message is stored in the same
transaction and sent once it commits (clinic/email.py). Opted-out patients get nothing.
The reassignment workflow tells its patients itself (the offer, or the waitlist notice).
"""

from django.db import transaction

from clinic.models import OutboundEmail
from scheduling.messages import queue_email

PATIENT_LINK_REASON = "patient cancelled from email link"


def cancel_for_the_clinic(appointment, reason, by):
    """Staff or an integrator cancel: the patient is emailed that the clinic cancelled, and why."""
    with transaction.atomic():
        appointment.cancel(reason, by=by)
        queue_email(OutboundEmail.Kind.CLINIC_CANCELLATION, appointment)
    return appointment


def cancel_for_the_patient(appointment):
    """The patient cancels from the link in their email: they get a confirmation."""
    with transaction.atomic():
        appointment.cancel(PATIENT_LINK_REASON, by="patient")
        queue_email(OutboundEmail.Kind.CANCEL_CONFIRMATION, appointment)
    return appointment
