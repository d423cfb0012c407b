"""Signed links in slot offer emails (offer mode, docs/reference.md, Rules and 7).

A token names one offer, its patient and one action and is salted per action, so a decline token
cannot be replayed as an accept. It is valid until the offer expires. One-time use is
enforced by the offer's status, not the token: a used link keeps showing its outcome,
even once the offer's time is up.
"""

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from backfill.models import SlotOffer
from scheduling.links import BadLink, sign, unsign

ACTIONS = ("accept", "decline")
PURPOSE = "backfill.offer"


def make_token(offer, action):
    assert action in ACTIONS, action
    return sign({"o": offer.pk, "p": offer.patient_id, "e": int(offer.expires_at.timestamp())}, PURPOSE, action)


def link_for(offer, action):
    return settings.SITE_URL + reverse(
        "slot-offer-action", kwargs={"action": action, "token": make_token(offer, action)}
    )


def offer_links(offer):
    return {action: link_for(offer, action) for action in ACTIONS}


def read_token(token, action):
    """The offer a token names, or BadLink with a message for the patient."""
    payload = unsign(token, PURPOSE, action, ACTIONS)
    offer = (
        SlotOffer.objects.select_related("patient", "slot__provider__location", "slot__provider__specialty")
        .filter(pk=payload.get("o"))
        .first()
    )
    if offer is None or (offer.patient_id, int(offer.expires_at.timestamp())) != (payload.get("p"), payload.get("e")):
        raise BadLink(gettext("This link no longer matches an offer. Please contact the clinic."))
    answered = offer.status in (SlotOffer.Status.ACCEPTED, SlotOffer.Status.DECLINED)
    if not answered and timezone.now() >= offer.expires_at:
        raise BadLink(gettext("This offer has expired: its time to answer is up. You stay on our waitlist."))
    return offer
