"""The pages behind the links in slot offer emails: GET shows, only POST acts (docs/reference.md, Messages).

The same shape as scheduling/patient_views.py: mail scanners open every link, so a GET
never changes anything; a used link shows its outcome again.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from backfill import actions, offers
from backfill.models import SlotOffer
from backfill.offer_links import read_token
from clinic import languages
from clinic.access import throttled_per_client
from clinic.actions import Via
from scheduling.links import BadLink

ACCEPTED = gettext_lazy(
    "Thank you: the time is yours and your appointment is booked. We have emailed you the details."
)
DECLINED = gettext_lazy(
    "You declined this time. You stay on our waitlist: we will email you when another time that suits you opens up."
)


@dataclass(frozen=True)
class OfferAction:
    title: str
    prompt: str
    button: str
    perform: Callable  # offer -> None; raises offers.OfferError
    done_status: str  # the offer's status once this action has happened
    done_message: str
    ruled_out_by: str  # the other answer, which makes this one impossible
    ruled_out_message: str

    def refusal_of(self, offer):
        """Why the link can no longer be used, or None."""
        if offer.status == self.ruled_out_by:
            return self.ruled_out_message
        return offers.closed_reason(offer)


OFFER_ACTIONS = {
    "accept": OfferAction(
        title=gettext_lazy("Accept this appointment time"),
        prompt=gettext_lazy(
            "a time has opened up and we are offering it to a few patients on our waitlist. "
            "The first to accept gets it."
        ),
        button=gettext_lazy("Accept this time"),
        perform=partial(actions.accept_slot_offer, by="patient", channel=Via.PATIENT_LINK),
        done_status=SlotOffer.Status.ACCEPTED,
        done_message=ACCEPTED,
        ruled_out_by=SlotOffer.Status.DECLINED,
        ruled_out_message=offers.ALREADY_DECLINED,
    ),
    "decline": OfferAction(
        title=gettext_lazy("Decline this appointment time"),
        prompt=gettext_lazy(
            "a time has opened up and we offered it to you. Can't make it? Decline it and you stay on our waitlist."
        ),
        button=gettext_lazy("Decline this time"),
        perform=partial(actions.decline_slot_offer, by="patient", channel=Via.PATIENT_LINK),
        done_status=SlotOffer.Status.DECLINED,
        done_message=DECLINED,
        ruled_out_by=SlotOffer.Status.ACCEPTED,
        ruled_out_message=offers.ALREADY_ACCEPTED,
    ),
}


@require_http_methods(["GET", "POST"])
@throttled_per_client
def offer_action(request, action, token):
    try:
        offer = read_token(token, action)
    except BadLink as error:
        return render(request, "patient/bad_link.html", {"message": str(error)}, status=400)
    # The times on the site's clock (docs/reference.md, Time zones), the words in the patient's language
    with timezone.override(offer.slot.provider.location.zone), languages.for_page(request, offer.patient):
        return _answer(request, offer, OFFER_ACTIONS[action])


def _answer(request, offer, offer_action):
    context = {"offer": offer, "slot": offer.slot, "action": offer_action}
    if offer.status == offer_action.done_status:
        return render(request, "patient/slot_offer_outcome.html", {**context, "message": offer_action.done_message})
    refusal = offer_action.refusal_of(offer)
    if refusal:
        return render(
            request, "patient/slot_offer_outcome.html", {**context, "message": refusal, "refused": True}, status=409
        )
    if request.method == "GET":
        return render(request, "patient/slot_offer_confirm.html", context)
    try:
        offer_action.perform(offer)
    except offers.OfferError as error:
        offer.refresh_from_db()
        return render(
            request, "patient/slot_offer_outcome.html", {**context, "message": str(error), "refused": True}, status=409
        )
    offer.refresh_from_db()
    return render(request, "patient/slot_offer_outcome.html", {**context, "message": offer_action.done_message})
