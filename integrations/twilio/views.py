"""Twilio's two webhooks, signed with X-Twilio-Signature (docs/reference.md, Texts): the
delivery status of a text the clinic sent, and a patient's reply, whose work is
`backfill.actions.receive_text`."""

from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.twiml.messaging_response import MessagingResponse

from backfill.actions import receive_text
from clinic import sms
from clinic.models import OutboundEmail

# Twilio's MessageStatus values that say how a text ended; the rest (queued, sending,
# sent) change nothing the clinic reads.
TEXT_STATUSES = {
    "delivered": OutboundEmail.Status.DELIVERED,
    "undelivered": OutboundEmail.Status.BOUNCED,
    "failed": OutboundEmail.Status.FAILED,
}


@csrf_exempt  # Twilio signs the request; X-Twilio-Signature is checked instead.
@require_POST
def status(request):
    if not sms.signature_is_valid(request):
        return HttpResponseForbidden("Bad signature.")
    status = TEXT_STATUSES.get(request.POST.get("MessageStatus", ""))
    sid = request.POST.get("MessageSid", "")
    if status and sid:
        OutboundEmail.objects.filter(channel=OutboundEmail.Channel.SMS, esp_message_id=sid).update(
            status=status, last_event_id=status, last_error=request.POST.get("ErrorCode", "")
        )
    return HttpResponse(status=204)


@csrf_exempt  # Twilio signs the request; X-Twilio-Signature is checked instead.
@require_POST
def inbound(request):
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
