"""How long the trail is kept (AUDIT_RETENTION_DAYS, six years by default), and the nightly
prune that is the only way an entry leaves it."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from audit.database import deleting_before
from audit.models import AuditEvent

log = logging.getLogger("audit")


def prune_audit_trail(now=None):
    cutoff = (now or timezone.now()) - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    with deleting_before(cutoff):
        deleted, _ = AuditEvent.objects.filter(at__lt=cutoff).delete()
    if deleted:
        log.info("audit.pruned count=%s before=%s", deleted, cutoff.isoformat())
    return deleted
