"""A patient's reply to a text (`POST /sms/twilio/inbound/`): one keyword, read against
the latest open question sent to that number, acted on through the same verbs the links
and staff use (offers.accept_offer, reassignment.decline_offer, Appointment.cancel...).

Twilio retries a webhook that timed out: a MessageSid seen before is answered with the
reply it got then and changes nothing.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from backfill import offers
from backfill.models import FreedSlot, SlotOffer
from clinic.models import InboundText, OutboundEmail, Patient
from scheduling import reassignment
from scheduling.models import Appointment, SchedulingError

log = logging.getLogger("backfill")

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


def handle_reply(message_sid, from_number, body):
    """What the reply did and the text that answers it (an Answer). Handled once per MessageSid."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                inbound = InboundText.objects.create(
                    message_sid=message_sid, from_number=from_number, body=body[:1600]
                )
        except IntegrityError:  # Twilio's retry, or the same request twice at once: answered already
            earlier = InboundText.objects.get(message_sid=message_sid)
            return Answer("repeat", earlier.reply)
        patients = list(Patient.objects.filter(phone=from_number))
        answer = _act(keyword(body), patients, from_number)
        inbound.patient = patients[0] if len(patients) == 1 else None
        inbound.outcome, inbound.reply = answer.outcome, answer.reply.replace("{phone}", settings.CLINIC_PHONE)
        inbound.save(update_fields=["patient", "outcome", "reply"])
    log.info("sms.reply sid=%s patients=%s outcome=%s", message_sid, [p.pk for p in patients], answer.outcome)
    return Answer(inbound.outcome, inbound.reply)


def keyword(body):
    words = body.strip().upper().split()
    return words[0].strip(".!?,") if words else ""


def _act(word, patients, number):
    if word in STOP:
        return _set_consent(patients, False, STOPPED)
    if word in START:
        return _set_consent(patients, True, STARTED)
    if word in HELP:
        return Answer("help", HELP_REPLY)
    if not patients:
        return Answer("unknown_number", NOT_KNOWN)
    if word in YES or word in NO:
        return _answer_offer(patients, accept=word in YES)
    if word in CANCEL:
        return _cancel_last(patients, number)
    return Answer("not_understood", UNKNOWN)


def _set_consent(patients, consent, reply):
    for patient in patients:
        patient.set_sms_consent(consent, Patient.ConsentSource.SMS)
    return Answer("opted_in" if consent else "opted_out", reply)


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


def _answer_offer(patients, accept):
    questions = open_questions(patients)
    if not questions:
        return Answer("nothing_open", NOTHING_OPEN)
    if len(questions) > 1:
        return Answer("ambiguous", TWO_OPEN)
    question = questions[0]
    try:
        if isinstance(question, SlotOffer):
            return _answer_slot_offer(question, accept)
        return _answer_reassignment(question, accept)
    except (offers.OfferError, SchedulingError) as refusal:
        return Answer("refused", f"Backfill Clinic: {refusal}")


def _answer_slot_offer(offer, accept):
    if not accept:
        offers.decline_offer(offer)
        return Answer("declined", "Backfill Clinic: you passed on this time. You stay on our waitlist.")
    appointment = offers.accept_offer(offer)
    return Answer(
        "accepted",
        f"Backfill Clinic: it's yours. You're booked {_when(appointment)} with "
        f"{appointment.provider.name}. Reply CANCEL if you can't come.",
    )


def _answer_reassignment(appointment, accept):
    if not accept:
        reassignment.decline_offer(appointment, by="patient")
        return Answer(
            "declined", "Backfill Clinic: you declined the new time, so it is cancelled. You're first on our waitlist."
        )
    reassignment.accept_offer(appointment)
    return Answer(
        "accepted",
        f"Backfill Clinic: thank you, you're confirmed {_when(appointment)} with {appointment.provider.name}.",
    )


def _cancel_last(patients, number):
    """Cancel the visit the last text to this number was about, if it is still to come."""
    last = (
        OutboundEmail.objects.filter(channel=OutboundEmail.Channel.SMS, recipient=number)
        .order_by("-created_at", "-id")
        .select_related("appointment__provider")
        .first()
    )
    appointment = last.appointment if last else None
    active = (Appointment.Status.SCHEDULED, Appointment.Status.CONFIRMED, Appointment.Status.OFFERED)
    if appointment is None or appointment.status not in active or appointment.start <= timezone.now():
        return Answer("nothing_to_cancel", NOTHING_TO_CANCEL)
    appointment.cancel("patient cancelled by text reply", by="patient")
    return Answer(
        "cancelled",
        f"Backfill Clinic: your visit {_when(appointment)} with {appointment.provider.name} "
        "is cancelled. Thank you for telling us.",
    )


def _when(appointment):
    return (
        f"{appointment.provider.location.local(appointment.start):%a %-d %b, %-I:%M %p}"  # the site's clock (SPEC 14)
    )
