"""Pages patients reach from a message, without logging in: a text's short link, the
one-click unsubscribe (RFC 8058), and Twilio's delivery callbacks for texts."""

from django.http import HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clinic import sms
from clinic.access import throttled_per_client
from clinic.actions import Via, opt_out_of_email
from clinic.email import read_unsubscribe_token
from clinic.models import OutboundEmail, ShortLink

# Twilio's MessageStatus values that say how a text ended; the rest (queued, sending,
# sent) change nothing the clinic reads.
TEXT_STATUSES = {
    "delivered": OutboundEmail.Status.DELIVERED,
    "undelivered": OutboundEmail.Status.BOUNCED,
    "failed": OutboundEmail.Status.FAILED,
}


@require_GET
@throttled_per_client
def short_link(request, code):
    link = get_object_or_404(ShortLink, code=code)
    return redirect(link.url)


@csrf_exempt  # RFC 8058: the mail provider POSTs without cookies; the signed token is the proof.
@require_http_methods(["GET", "POST"])
@throttled_per_client
def unsubscribe(request, token):
    patient = read_unsubscribe_token(token)
    if patient is None:
        message = "This link is not valid. It may have been altered or copied incompletely."
        return render(request, "patient/bad_link.html", {"message": message}, status=400)
    if request.method == "POST":
        opt_out_of_email(patient, by="patient", channel=Via.PATIENT_LINK)
        return render(request, "patient/unsubscribed.html", {"patient": patient, "done": True})
    return render(request, "patient/unsubscribed.html", {"patient": patient, "done": patient.email_opt_out})


@csrf_exempt  # Twilio signs the request; X-Twilio-Signature is checked instead.
@require_POST
def twilio_status(request):
    if not sms.signature_is_valid(request):
        return HttpResponseForbidden("Bad signature.")
    status = TEXT_STATUSES.get(request.POST.get("MessageStatus", ""))
    sid = request.POST.get("MessageSid", "")
    if status and sid:
        OutboundEmail.objects.filter(channel=OutboundEmail.Channel.SMS, esp_message_id=sid).update(
            status=status, last_event_id=status, last_error=request.POST.get("ErrorCode", "")
        )
    return HttpResponse(status=204)
