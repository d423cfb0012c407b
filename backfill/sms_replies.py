"""What a patient's reply to a text says (`POST /sms/twilio/inbound/`): one keyword, read
against the latest open question sent to that number, and the texts that answer it. Only
reads: `backfill.actions.receive_text` acts on it through the same actions the links and
staff use.
"""

import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from backfill.models import FreedSlot, SlotOffer
from clinic import languages, times
from clinic.models import OutboundEmail
from scheduling.models import Appointment

# Keywords, in every language the clinic writes (docs/reference.md, Texts), compared without
# accents or case: "sí", "Si" and "SÍ" are all SI.
YES = {"YES", "Y", "SI"}
NO = {"NO", "N"}
CANCEL = {"CANCEL", "CANCELAR", "ANULAR"}
# The carriers' own opt-out and opt-in words (CTIA) and their Spanish; CANCEL is ours: it cancels a visit.
STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT", "PARAR", "ALTO", "BAJA"}
START = {"START", "UNSTOP", "COMENZAR", "INICIAR", "ALTA"}
HELP = {"HELP", "INFO", "AYUDA"}
# Words only one language uses: a reply to them is in that language when the patient has
# chosen none (an unknown number, or no preferred language).
LANGUAGE_OF_WORD = {
    **dict.fromkeys(["YES", "Y", "CANCEL", "STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "START", "HELP"], "en"),
    **dict.fromkeys(["SI", "CANCELAR", "ANULAR", "PARAR", "ALTO", "BAJA", "COMENZAR", "INICIAR", "AYUDA"], "es"),
}

# The replies, lazy: each is read in the language `reply_language` chose. "{phone}" is the clinic's.
UNKNOWN = gettext_lazy(
    "Backfill Clinic: sorry, we didn't understand. Reply YES or NO to an offer, CANCEL to cancel your visit, "
    "HELP for help, STOP to end texts."
)
NOTHING_OPEN = gettext_lazy(
    "Backfill Clinic: there is no offer waiting for your answer right now. Questions? Call {phone}."
)
TWO_OPEN = gettext_lazy(
    "Backfill Clinic: you have more than one offer open, so we can't tell which you mean. "
    "Please use the link in the text you're answering, or call {phone}."
)
NOTHING_TO_CANCEL = gettext_lazy(
    "Backfill Clinic: we found no upcoming visit to cancel from your last text. Questions? Call {phone}."
)
NOT_KNOWN = gettext_lazy("Backfill Clinic: we don't have this number on file. Please call {phone}.")
STOPPED = gettext_lazy("Backfill Clinic: you won't get any more texts from us. Reply START to get them again.")
STARTED = gettext_lazy("Backfill Clinic: texts are on again. Reply STOP to end them, HELP for help.")
HELP_REPLY = gettext_lazy(
    "Backfill Clinic: for help call {phone}. Reply YES/NO to an offer, CANCEL to cancel a visit, STOP to end texts."
)


@dataclass
class Answer:
    outcome: str
    reply: str


def keyword(body):
    """The first word, in capitals and without accents: "¡Sí!" is "SI"."""
    words = body.strip().split()
    if not words:
        return ""
    bare = unicodedata.normalize("NFKD", words[0]).encode("ascii", "ignore").decode()
    return bare.upper().strip(".!?,")


def reply_language(word, patients):
    """The language of the reply: the patient's chosen one, else the word's, else the clinic's."""
    chosen = {languages.supported(patient.preferred_language) for patient in patients} - {""}
    if len(chosen) == 1:
        return chosen.pop()
    return LANGUAGE_OF_WORD.get(word) or languages.default()


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
    if settings.SMS_NAME_PROVIDER:
        return gettext("at {place} with {name}").format(
            place=appointment.provider.location.name, name=appointment.provider.name
        )
    return gettext("at {place}").format(place=appointment.provider.location.name)


def when(appointment):
    # The site's clock (docs/reference.md, Time zones), written as every text writes times
    return times.patient_short(appointment.provider.location.local(appointment.start))
