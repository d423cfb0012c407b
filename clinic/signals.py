"""anymail's delivery tracking updates the stored message (docs/reference.md, Messages); a django-q2 worker that
finished a job stamps the watchdog's heartbeat. Receivers stay fast."""

from anymail.signals import tracking
from django.dispatch import receiver
from django_q.signals import post_execute_in_worker

from clinic import watchdog
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


@receiver(post_execute_in_worker)
def job_finished(sender, task, **kwargs):
    """A django-q2 worker finished a job: the watchdog's heartbeat (clinic/watchdog.py)."""
    watchdog.job_finished(task)
