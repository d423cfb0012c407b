"""The pages behind the links in patients' emails: GET shows, only POST acts (docs/reference.md, Messages).

Mail scanners open every link, so a GET never changes anything.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_http_methods

from clinic import languages
from clinic.access import throttled_per_client
from clinic.actions import Via
from scheduling import actions, reassignment
from scheduling.links import BadLink, read_token
from scheduling.models import Appointment, SchedulingError


@dataclass(frozen=True)
class PatientAction:
    title: str
    prompt: str
    button: str
    perform: Callable  # appointment -> message shown on the outcome page
    done_status: str  # the appointment's status once this action has happened
    # When the done status can also come about another way (a declined offer and one the
    # clinic withdrew are both cancelled): the cancel reason this action leaves.
    done_reason: str = ""
    recap: Callable | None = None  # appointment -> what happened, for a link used again
    refusal: Callable | None = None  # appointment -> why this link can no longer act, or None

    def outcome_of(self, appointment):
        """The message for a link already used, or None if it has not been."""
        if appointment.status != self.done_status:
            return None
        if self.done_reason and appointment.cancel_reason != self.done_reason:
            return None
        if self.recap:
            return self.recap(appointment)
        return gettext("{title}: already done. Your appointment is {status}.").format(
            title=self.title, status=appointment.get_status_display().lower()
        )

    def refusal_of(self, appointment):
        """Why the link can no longer be used (e.g. the other choice was made), or None."""
        return self.refusal(appointment) if self.refusal else None


def cancel_from_link(appointment):
    actions.cancel_appointment(appointment, by="patient", channel=Via.PATIENT_LINK, reason=actions.PATIENT_LINK_REASON)
    return gettext(
        "Your appointment is cancelled. Thank you for letting us know; we will offer the time to another patient."
    )


ACCEPTED = gettext_lazy("Thank you: your appointment is confirmed. We have emailed you the details.")
DECLINED = gettext_lazy(
    "You declined the new appointment, so it is cancelled. You are first in line on our waitlist: "
    "we will email you as soon as a time that suits you opens up."
)


def accept_from_link(appointment):
    actions.accept_move(appointment, by="patient", channel=Via.PATIENT_LINK)
    return str(ACCEPTED)


def released_unanswered():
    return gettext(
        "We did not hear from you in time, so we released this time. You are first in line on our waitlist: "
        "we will tell you as soon as a time that suits you opens up."
    )


def accept_refusal(appointment):
    if appointment.status != Appointment.Status.CANCELLED:
        return None
    if appointment.cancel_reason == reassignment.UNANSWERED_REASON:
        return released_unanswered()
    if appointment.cancel_reason == reassignment.DECLINE_REASON:
        return gettext(
            "You declined this appointment, so it can no longer be accepted. "
            "You are on our waitlist; we will email you when a time opens up."
        )
    return gettext("This appointment has been cancelled, so it can no longer be accepted. Please contact the clinic.")


def decline_from_link(appointment):
    actions.decline_move(appointment, by="patient", channel=Via.PATIENT_LINK)
    return declined_recap(appointment)


def declined_recap(appointment):
    # The slot's fate is read after the decline committed: the backfill may have filled it.
    return f"{DECLINED} {reassignment.slot_news(appointment)}".strip()


def decline_refusal(appointment):
    if appointment.status == Appointment.Status.CONFIRMED:
        return gettext(
            "You accepted this appointment, so it can no longer be declined. "
            "If you can't come, use the cancel link in your confirmation email or contact the clinic."
        )
    if (
        appointment.status == Appointment.Status.CANCELLED
        and appointment.cancel_reason == reassignment.UNANSWERED_REASON
    ):
        return released_unanswered()
    if appointment.status == Appointment.Status.CANCELLED and appointment.cancel_reason != reassignment.DECLINE_REASON:
        return gettext(
            "This appointment has been cancelled, so there is nothing to decline. Please contact the clinic."
        )
    return None


PATIENT_ACTIONS = {
    "cancel": PatientAction(
        title=gettext_lazy("Cancel your appointment"),
        prompt=gettext_lazy("Can't make it? Cancel this appointment so another patient can have the time."),
        button=gettext_lazy("Cancel my appointment"),
        perform=cancel_from_link,
        done_status=Appointment.Status.CANCELLED,
    ),
    "accept": PatientAction(
        title=gettext_lazy("Accept your new appointment"),
        prompt=gettext_lazy(
            "your provider is unavailable, so we have moved your appointment to the provider below "
            "at the same time. Accept to confirm it."
        ),
        button=gettext_lazy("Accept this appointment"),
        perform=accept_from_link,
        done_status=Appointment.Status.CONFIRMED,
        refusal=accept_refusal,
    ),
    "decline": PatientAction(
        title=gettext_lazy("Decline your new appointment"),
        prompt=gettext_lazy(
            "your provider is unavailable, so we have moved your appointment to the provider below "
            "at the same time. Prefer not to? Decline it and you go first in line on our waitlist "
            "for the next time that suits you."
        ),
        button=gettext_lazy("Decline this appointment"),
        perform=decline_from_link,
        done_status=Appointment.Status.CANCELLED,
        done_reason=reassignment.DECLINE_REASON,
        recap=declined_recap,
        refusal=decline_refusal,
    ),
}


@require_http_methods(["GET", "POST"])
@throttled_per_client
def patient_action(request, action, token):
    try:
        appointment = read_token(token, action)
        patient_action = PATIENT_ACTIONS[action]
    except (BadLink, KeyError) as error:
        message = str(error) if isinstance(error, BadLink) else gettext("This link is not one we sent.")
        return render(request, "patient/bad_link.html", {"message": message}, status=400)
    # The times on the site's clock (docs/reference.md, Time zones), the words in the patient's language
    with timezone.override(appointment.provider.location.zone), languages.for_page(request, appointment.patient):
        return _answer(request, appointment, patient_action)


def _answer(request, appointment, patient_action):
    context = {"appointment": appointment, "action": patient_action}
    already = patient_action.outcome_of(appointment)
    if already:
        return render(request, "patient/outcome.html", {**context, "message": already})
    refusal = patient_action.refusal_of(appointment)
    if refusal:
        return render(request, "patient/outcome.html", {**context, "message": refusal, "refused": True}, status=409)
    if request.method == "GET":
        return render(request, "patient/confirm.html", context)
    try:
        message = patient_action.perform(appointment)
    except SchedulingError as error:
        return render(request, "patient/outcome.html", {**context, "message": str(error), "refused": True}, status=409)
    appointment.refresh_from_db()
    return render(request, "patient/outcome.html", {**context, "message": message})
