"""Pages patients reach from a message, without logging in: a text's short link and the
one-click unsubscribe (RFC 8058). Twilio's callbacks are in integrations/twilio/views.py."""

from django import forms
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from phonenumber_field.formfields import PhoneNumberField

from clinic import languages
from clinic.access import throttled_per_client
from clinic.actions import Via, opt_out_of_email, switch_to_texts
from clinic.email import read_unsubscribe_token
from clinic.models import ShortLink


@require_GET
@throttled_per_client
def short_link(request, code):
    link = get_object_or_404(ShortLink, code=code)
    return redirect(link.url)


class TextsInsteadForm(forms.Form):
    phone = PhoneNumberField(label=gettext_lazy("Mobile number"))
    consent = forms.BooleanField(label=gettext_lazy("I agree to receive texts about my appointments"))


@csrf_exempt  # RFC 8058: the mail provider POSTs without cookies; the signed token is the proof.
@require_http_methods(["GET", "POST"])
@throttled_per_client
def unsubscribe(request, token):
    """Says what unsubscribing changes (docs/reference.md, Reachable) and offers texts instead.
    A POST without `texts` is the one-click unsubscribe (a mail client's own button sends only
    List-Unsubscribe=One-Click)."""
    patient = read_unsubscribe_token(token)
    if patient is None:
        message = gettext("This link is not valid. It may have been altered or copied incompletely.")
        return render(request, "patient/bad_link.html", {"message": message}, status=400)
    with languages.for_page(request, patient):
        if request.method == "GET":
            return _unsubscribe_page(request, patient)
        if request.POST.get("action") != "texts":
            opt_out_of_email(patient, by="patient", channel=Via.PATIENT_LINK)
            return _unsubscribe_page(request, patient)
        form = TextsInsteadForm(request.POST)
        if not form.is_valid():
            return _unsubscribe_page(request, patient, form, status=400)
        switch_to_texts(patient, form.cleaned_data["phone"], by="patient", channel=Via.PATIENT_LINK)
        return _unsubscribe_page(request, patient)


def _unsubscribe_page(request, patient, form=None, status=200):
    patient.refresh_from_db()
    context = {
        "patient": patient,
        "done": patient.email_opt_out,
        "texts": patient.can_text,
        "form": form or TextsInsteadForm(initial={"phone": patient.phone or None}),
    }
    return render(request, "patient/unsubscribed.html", context, status=status)
