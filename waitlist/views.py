"""The patient's self-service page (waitlist/self_service.py): GET shows, POST acts."""

from django import forms
from django.shortcuts import render
from django.utils.dates import WEEKDAYS as WEEKDAY_NAMES
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_http_methods

from clinic import actions as clinic_actions
from clinic import languages
from clinic.access import throttled_per_client
from clinic.actions import Via
from clinic.fields import WEEKDAYS
from clinic.models import Patient
from waitlist.actions import change_waitlist_entry, leave_waitlist
from waitlist.models import WaitlistEntry
from waitlist.self_service import BadSelfServiceLink, read_token


class EntryForm(forms.ModelForm):
    # The masked list fields are set on the entry by hand: the model's integer validators
    # would otherwise be run on the lists.
    available_days = WaitlistEntry._meta.get_field("available_days").formfield()
    time_windows = WaitlistEntry._meta.get_field("time_windows").formfield()

    class Meta:
        model = WaitlistEntry
        fields = ["earliest_date", "latest_date", "preferred_location"]
        widgets = {
            "earliest_date": forms.DateInput(attrs={"type": "date"}),
            "latest_date": forms.DateInput(attrs={"type": "date"}),
        }
        labels = {
            "earliest_date": gettext_lazy("From"),
            "latest_date": gettext_lazy("Until"),
            "preferred_location": gettext_lazy("Preferred location"),
        }

    field_order = ["available_days", "time_windows", "earliest_date", "latest_date", "preferred_location"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.update(available_days=self.instance.available_days, time_windows=self.instance.time_windows)
        self.fields["available_days"].label, self.fields["time_windows"].label = (
            gettext("Days you can come"),
            gettext("Times you can come"),
        )
        self.fields["available_days"].help_text = gettext("None ticked means any day.")
        # Django's own day names, in the page's language.
        self.fields["available_days"].choices = [(day, WEEKDAY_NAMES[index]) for index, day in enumerate(WEEKDAYS)]
        self.fields["time_windows"].help_text = gettext('e.g. "08:00-12:00, 16:00-18:30"; empty means any time.')

    def save(self, commit=True):
        self.instance.available_days = self.cleaned_data["available_days"]
        self.instance.time_windows = self.cleaned_data["time_windows"]
        return super().save(commit)


class ContactForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["preferred_channel", "sms_consent", "email_opt_out"]
        labels = {
            "preferred_channel": gettext_lazy("Reach me by"),
            "sms_consent": gettext_lazy("I agree to receive texts about my appointments"),
            "email_opt_out": gettext_lazy("Do not email me"),
        }


def entry_forms(patient, data=None, bound_entry=None):
    entries = patient.waitlist_entries.filter(status=WaitlistEntry.Status.WAITING).select_related("specialty")
    return [
        (entry, EntryForm(data if entry == bound_entry else None, instance=entry, prefix=f"e{entry.pk}"))
        for entry in entries
    ]


@require_http_methods(["GET", "POST"])
@throttled_per_client
def self_service(request, token):
    try:
        patient = read_token(token)
    except BadSelfServiceLink as error:
        return render(request, "patient/bad_link.html", {"message": str(error)}, status=400)
    with languages.for_page(request, patient):
        return _act(request, patient)


def _act(request, patient):
    if request.method == "GET":
        return _page(request, patient)
    action = request.POST.get("action", "")
    if action == "resume":
        clinic_actions.resume_offers(patient, by="patient", channel=Via.PATIENT_LINK)
        return _page(
            request, patient, gettext("Offers are on again: we will tell you when a time that suits you opens up.")
        )
    if action == "contact":
        return _contact(request, patient)
    entry = patient.waitlist_entries.filter(
        pk=_int(request.POST.get("entry")), status=WaitlistEntry.Status.WAITING
    ).first()
    if entry is None or action not in ("save", "leave"):
        return _page(
            request,
            patient,
            gettext("That change could not be made: the entry is no longer on the waitlist."),
            status=400,
        )
    if action == "leave":
        leave_waitlist(entry, by="patient", channel=Via.PATIENT_LINK)
        return _page(request, patient, gettext("You have left the waitlist for {name}.").format(name=entry.specialty))
    return _save_entry(request, patient, entry)


def _save_entry(request, patient, entry):
    forms_ = entry_forms(patient, request.POST, bound_entry=entry)
    form = next(form for listed, form in forms_ if listed == entry)
    if not form.is_valid():
        return _page(request, patient, gettext("Please correct the errors below."), status=400, entries=forms_)
    change_waitlist_entry(form, by="patient", channel=Via.PATIENT_LINK)
    return _page(request, patient, gettext("Saved your choices for {name}.").format(name=entry.specialty))


def _contact(request, patient):
    form = ContactForm(request.POST, instance=patient)
    if not form.is_valid():
        return _page(request, patient, gettext("Please correct the errors below."), status=400, contact=form)
    # The patient's own page: the one place an email opt-out can be taken back.
    clinic_actions.set_contact_preferences(
        patient,
        form.cleaned_data["preferred_channel"],
        form.cleaned_data["sms_consent"] if "sms_consent" in form.changed_data else None,
        email_opt_out=form.cleaned_data["email_opt_out"],
        by="patient",
        channel=Via.PATIENT_LINK,
        source=Patient.ConsentSource.PATIENT,
    )
    return _page(request, patient, gettext("Saved how we reach you."))


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _page(request, patient, message="", status=200, entries=None, contact=None):
    patient.refresh_from_db()
    return render(
        request,
        "patient/self_service.html",
        {
            "patient": patient,
            "message": message,
            "error": status >= 400,
            "entries": entries if entries is not None else entry_forms(patient),
            "contact": contact or ContactForm(instance=patient),
        },
        status=status,
    )
