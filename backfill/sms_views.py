"""Twilio's webhook for patients' replies to texts; the work is backfill.actions.receive_text."""

from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from backfill.actions import receive_text
from clinic import sms


@csrf_exempt  # Twilio signs the request; X-Twilio-Signature is checked instead.
@require_POST
def twilio_inbound(request):
    if not sms.signature_is_valid(request):
        return HttpResponseForbidden("Bad signature.")
    sid = request.POST.get("MessageSid", "")
    if not sid:
        return HttpResponse(status=400)
    answer = receive_text(sid, request.POST.get("From", ""), request.POST.get("Body", ""))
    twiml = MessagingResponse()
    if answer.reply:
        twiml.message(answer.reply)
    return HttpResponse(str(twiml), content_type="text/xml")
