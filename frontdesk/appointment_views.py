"""The appointment page the day schedule's cards open, and its three actions.

Plain forms: each action is a POST that calls the verb and comes back to the page, or
shows the page again with the error (400 for bad input, 409 when the state forbids it).
Cancelling and booking by hand ask first: the first POST shows the page with what will
happen (for a hand booking, the rules the patient fails) and a confirm button, which posts
again with `confirm`.
"""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from audit.trail import record_view, record_views
from backfill import actions as backfill_actions
from backfill.booking import BackfillError
from backfill.hand_booking import judge_choice
from backfill.models import FreedSlot
from clinic.access import reads_message_content, staff_page
from clinic.actions import Via
from frontdesk.appointment_history import AppointmentHistory
from scheduling import actions as scheduling_actions
from scheduling.models import Appointment, SchedulingError
from waitlist.models import WaitlistEntry

BACKFILL_RUNNING = "The backfill is booking this slot right now; see whom it chose before booking by hand."


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=200, strip=True, error_messages={"required": "Say why it is cancelled."})


class BookByHandForm(forms.Form):
    entry = forms.ModelChoiceField(
        queryset=WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING),
        error_messages={
            "required": "Choose a waitlisted patient.",
            "invalid_choice": "That patient is no longer waiting.",
        },
    )


def _page(request, appointment_id, status=200, **forms_):
    history = AppointmentHistory.of(appointment_id)
    appointment = history.appointment
    record_view("appointment", appointment.pk, appointment.patient_id)
    for story in (history.freed, history.filled):
        if story is not None:
            record_views("waitlist entry", [(item.entry.pk, item.entry.patient_id) for item in story.explanations])
    site = appointment.provider.location  # every time on the page is on the site's clock, and the footer says whose
    context = {
        "history": history,
        "appointment": appointment,
        "cancel_form": CancelForm(),
        "site": site,
        "site_day": site.local(appointment.start).date(),
        "clock_locations": [site],
        "clock_at": appointment.start,
        # A message's subject is for staff who read messages (an integrator sees its kind).
        "shows_content": reads_message_content(request.user),
        **forms_,
    }
    return render(request, "staff/appointment.html", context, status=status)


@staff_page("scheduling.view_appointment")
def appointment_detail(request, pk):
    return _page(request, pk)


@require_POST
@staff_page("scheduling.change_appointment")
def cancel_appointment(request, pk):
    appointment = get_object_or_404(Appointment, pk=pk)
    form = CancelForm(request.POST)
    if not form.is_valid():
        return _page(request, pk, status=400, cancel_form=form)
    if "confirm" not in request.POST and appointment.status in Appointment.CANCELLABLE:
        return _page(request, pk, cancel_form=form, confirm_cancel=form.cleaned_data["reason"])
    try:
        scheduling_actions.cancel_appointment(
            appointment, by=request.user, channel=Via.STAFF_PAGE, reason=form.cleaned_data["reason"]
        )
    except SchedulingError as error:
        return _page(request, pk, status=409, action_error=str(error))
    messages.success(request, "Cancelled. The freed slot, if still bookable, goes to the waitlist now.")
    return redirect("appointment-detail", pk=pk)


@require_POST
@staff_page("backfill.change_freedslot")
def retry_backfill(request, pk):
    slot = get_object_or_404(FreedSlot, appointment_id=pk)
    try:
        backfill_actions.retry_backfill(slot, by=request.user, channel=Via.STAFF_PAGE)
    except BackfillError as error:
        return _page(request, pk, status=409, action_error=str(error))
    messages.success(request, "Backfill queued again for this slot.")
    return redirect("appointment-detail", pk=pk)


@require_POST
@staff_page("backfill.change_freedslot")
def book_by_hand(request, pk):
    slot = get_object_or_404(FreedSlot.objects.select_related("provider__location", "appointment"), appointment_id=pk)
    form = BookByHandForm(request.POST)
    if not form.is_valid():
        return _page(request, pk, status=400, book_form=form)
    history = AppointmentHistory.of(pk)
    if history.backfill_running:
        return _page(request, pk, status=409, action_error=BACKFILL_RUNNING)
    if "confirm" not in request.POST and slot.is_fillable:
        return _page(request, pk, book_form=form, confirm_booking=judge_choice(slot, form.cleaned_data["entry"]))
    try:
        booked = backfill_actions.book_by_hand(
            slot, form.cleaned_data["entry"], by=request.user, channel=Via.STAFF_PAGE
        )
    except BackfillError as error:
        return _page(request, pk, status=409, action_error=str(error))
    messages.success(request, f"{booked.patient} is booked into this slot by hand.")
    return redirect("appointment-detail", pk=booked.pk)
