"""The pages behind the links in patients' emails: GET shows, only POST acts (SPEC 7).

Mail scanners open every link, so a GET never changes anything.
"""

from dataclasses import dataclass
from typing import Callable

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from scheduling.links import BadLink, read_token
from scheduling.models import Appointment, SchedulingError


@dataclass(frozen=True)
class PatientAction:
    title: str
    prompt: str
    button: str
    perform: Callable  # appointment -> message shown on the outcome page
    done_status: str  # the appointment's status once this action has happened

    def outcome_of(self, appointment):
        """The message for a link already used, or None if it has not been."""
        if appointment.status == self.done_status:
            return f"{self.title}: already done. Your appointment is {appointment.get_status_display().lower()}."
        return None


def cancel_from_link(appointment):
    appointment.cancel("patient cancelled from email link", by="patient")
    return "Your appointment is cancelled. Thank you for letting us know; we will offer the time to another patient."


PATIENT_ACTIONS = {
    "cancel": PatientAction(
        title="Cancel your appointment",
        prompt="Can't make it? Cancel this appointment so another patient can have the time.",
        button="Cancel my appointment",
        perform=cancel_from_link,
        done_status=Appointment.Status.CANCELLED,
    ),
}


@require_http_methods(["GET", "POST"])
def patient_action(request, action, token):
    try:
        appointment = read_token(token, action)
        patient_action = PATIENT_ACTIONS[action]
    except (BadLink, KeyError) as error:
        message = str(error) if isinstance(error, BadLink) else "This link is not one we sent."
        return render(request, "patient/bad_link.html", {"message": message}, status=400)
    context = {"appointment": appointment, "action": patient_action}
    already = patient_action.outcome_of(appointment)
    if already:
        return render(request, "patient/outcome.html", {**context, "message": already})
    if request.method == "GET":
        return render(request, "patient/confirm.html", context)
    try:
        message = patient_action.perform(appointment)
    except SchedulingError as error:
        return render(request, "patient/outcome.html", {**context, "message": str(error), "refused": True}, status=409)
    appointment.refresh_from_db()
    return render(request, "patient/outcome.html", {**context, "message": message})
