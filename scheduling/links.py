"""Signed links in patients' emails (docs/reference.md, Messages).

A token names one appointment, its patient and one action, and is salted per action, so a
cancel token cannot be replayed as a decline. It is valid until the appointment starts, and
only while the appointment keeps the patient and the time it was sent for: after staff give
the appointment to someone else or move it, the old link gets the 400 page (docs/reference.md,
Production). One-time use is enforced by the appointment's state, not the token: a used
link shows the outcome again.
"""

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from waitlist import self_service

ACTIONS = ("cancel", "accept", "decline")


class BadLink(Exception):
    pass


def sign(payload, purpose, action):
    return signing.dumps(payload, salt=f"{purpose}.{action}", compress=True)


def unsign(token, purpose, action, actions):
    """The payload of a token signed for this purpose and action, or BadLink."""
    if action not in actions:
        raise BadLink(gettext("This link is not one we sent."))
    try:
        return signing.loads(token, salt=f"{purpose}.{action}")
    except signing.BadSignature:
        raise BadLink(gettext("This link is not valid. It may have been altered or copied incompletely.")) from None


PURPOSE = "scheduling.appointment"


def make_token(appointment, action):
    assert action in ACTIONS, action
    return sign(
        {"a": appointment.pk, "p": appointment.patient_id, "s": int(appointment.start.timestamp())}, PURPOSE, action
    )


def link_for(appointment, action):
    path = reverse("patient-action", kwargs={"action": action, "token": make_token(appointment, action)})
    return settings.SITE_URL + path


def patient_links(appointment):
    """The links a message about this appointment may offer, by action; "manage" is the
    patient's own page."""
    from scheduling.models import Appointment

    links = {"manage": self_service.link_for(appointment.patient)}
    if appointment.status == Appointment.Status.OFFERED:
        links.update({action: link_for(appointment, action) for action in ("accept", "decline")})
    elif appointment.status in (Appointment.Status.SCHEDULED, Appointment.Status.CONFIRMED):
        links["cancel"] = link_for(appointment, "cancel")
    return links


def read_token(token, action):
    """The appointment a token names, or BadLink with a message for the patient."""
    from scheduling.models import Appointment

    payload = unsign(token, PURPOSE, action, ACTIONS)
    appointment = (
        Appointment.objects.select_related("patient", "provider__location", "provider__specialty")
        .filter(pk=payload.get("a"))
        .first()
    )
    if appointment is None or (appointment.patient_id, int(appointment.start.timestamp())) != (
        payload.get("p"),
        payload.get("s"),
    ):
        raise BadLink(gettext("This link no longer matches an appointment. Please contact the clinic."))
    if timezone.now() >= appointment.start:
        raise BadLink(gettext("This link has expired: the appointment time has passed."))
    return appointment
