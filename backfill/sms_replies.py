"""What a patient's reply to a text says (`POST /sms/twilio/inbound/`): one keyword, read
against the latest open question sent to that number, and the texts that answer it. Only
reads: `backfill.actions.receive_text` acts on it through the same actions the links and
staff use.
"""

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from backfill.models import FreedSlot, SlotOffer
from clinic.models import OutboundEmail
from scheduling.models import Appointment

YES = {"YES", "Y"}
NO = {"NO", "N"}
CANCEL = {"CANCEL"}
# The carriers' own opt-out and opt-in words (CTIA); CANCEL is ours: it cancels a visit.
STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT"}
START = {"START", "UNSTOP"}
HELP = {"HELP", "INFO"}

UNKNOWN = (
    "Backfill Clinic: sorry, we didn't understand. Reply YES or NO to an offer, CANCEL to cancel your visit, "
    "HELP for help, STOP to end texts."
)
NOTHING_OPEN = "Backfill Clinic: there is no offer waiting for your answer right now. Questions? Call {phone}."
TWO_OPEN = (
    "Backfill Clinic: you have more than one offer open, so we can't tell which you mean. "
    "Please use the link in the text you're answering, or call {phone}."
)
NOTHING_TO_CANCEL = (
    "Backfill Clinic: we found no upcoming visit to cancel from your last text. Questions? Call {phone}."
)
NOT_KNOWN = "Backfill Clinic: we don't have this number on file. Please call {phone}."
STOPPED = "Backfill Clinic: you won't get any more texts from us. Reply START to get them again."
STARTED = "Backfill Clinic: texts are on again. Reply STOP to end them, HELP for help."
HELP_REPLY = (
    "Backfill Clinic: for help call {phone}. Reply YES/NO to an offer, CANCEL to cancel a visit, STOP to end texts."
)


@dataclass
class Answer:
    outcome: str
    reply: str


def keyword(body):
    words = body.strip().upper().split()
    return words[0].strip(".!?,") if words else ""


def open_questions(patients, now=None):
    """The offers these patients can still answer: slot offers and reassignment offers."""
    now = now or timezone.now()
    ids = [patient.pk for patient in patients]
    slot_offers = list(
        SlotOffer.objects.filter(
            patient_id__in=ids, status=SlotOffer.Status.PENDING, expires_at__gt=now, slot__status=FreedSlot.Status.OPEN
        ).select_related("slot__provider")
    )
    moved = list(Appointment.objects.filter(patient_id__in=ids, status=Appointment.Status.OFFERED, start__gt=now))
    return slot_offers + moved


def last_texted_visit(number):
    """The visit the last text to this number was about, if it is still to come and cancellable."""
    last = (
        OutboundEmail.objects.filter(channel=OutboundEmail.Channel.SMS, recipient=number)
        .order_by("-created_at", "-id")
        .select_related("appointment__provider")
        .first()
    )
    appointment = last.appointment if last else None
    if appointment is None or appointment.status not in Appointment.CANCELLABLE or appointment.start <= timezone.now():
        return None
    return appointment


def where_and_who(appointment):
    """ "at Downtown", and " with Dr. Lee" only where SMS_NAME_PROVIDER says (templates/sms/)."""
    named = f" with {appointment.provider.name}" if settings.SMS_NAME_PROVIDER else ""
    return f"at {appointment.provider.location.name}{named}"


def when(appointment):
    return (
        # The site's clock (docs/reference.md, Time zones)
        f"{appointment.provider.location.local(appointment.start):%a %-d %b, %-I:%M %p}"
    )
