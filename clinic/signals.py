"""anymail's delivery tracking updates the stored message (docs/reference.md, Messages). The receiver stays fast."""

from anymail.signals import tracking
from django.dispatch import receiver

from clinic.models import OutboundEmail

TRACKED = {
    "delivered": OutboundEmail.Status.DELIVERED,
    "bounced": OutboundEmail.Status.BOUNCED,
    "rejected": OutboundEmail.Status.BOUNCED,
    "failed": OutboundEmail.Status.FAILED,
}


@receiver(tracking)
def delivery_status_changed(sender, event, esp_name, **kwargs):
    status = TRACKED.get(event.event_type)
    if status is None or not event.message_id:
        return
    # The ESP retries webhooks: an event already applied changes nothing.
    OutboundEmail.objects.filter(esp_message_id=event.message_id).exclude(last_event_id=event.event_id or "-").update(
        status=status, last_event_id=event.event_id or ""
    )
