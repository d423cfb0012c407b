"""Messages, patients' texts and feed messages are kept MESSAGE_RETENTION_DAYS, then deleted
by the nightly schedule (`message-retention-nightly`). The audit trail has its own retention
(audit.retention)."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from clinic.models import InboundText, OutboundEmail
from integrations.hl7.models import Hl7Message

log = logging.getLogger("clinic")


def purge_old_messages(now=None):
    cutoff = (now or timezone.now()) - timedelta(days=settings.MESSAGE_RETENTION_DAYS)
    counts = {
        "messages": OutboundEmail.objects.filter(created_at__lt=cutoff).delete()[0],
        "texts": InboundText.objects.filter(received_at__lt=cutoff).delete()[0],
        "feed": Hl7Message.objects.filter(received_at__lt=cutoff).delete()[0],
    }
    log.info("retention.purged before=%s %s", cutoff.isoformat(), " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts
