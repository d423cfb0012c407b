"""The sweep: each app's housekeeping, run by a django-q2 schedule every 30 s and by
`manage.py backfill_sweep` (docs/operations.md). Each part claims its rows before it acts, so
two sweeps at once do each thing once, and no part holds a lock across a network call."""

import logging

from django.utils import timezone

from backfill import tasks as backfill
from clinic import webhooks
from clinic.email import resend_stuck_emails
from clinic.idempotency import forget_old_keys
from scheduling.actions import release_unanswered_moves
from waitlist.actions import expire_past_entries

log = logging.getLogger("ops")

# The schedules' function (ops/migrations/0001_the_sweep_is_ops.py); /readyz reads their next runs.
SWEEP_FUNC = "ops.sweep.sweep"


def sweep(now=None):
    """Re-enqueue slots whose job was lost or whose retry is due, expire past slots and
    entries, resend stuck messages, release moves the patient left unanswered, retry
    webhooks, delete old delivered webhooks, forget old idempotency keys.

    Returns counts for the command and the log.
    """
    now = now or timezone.now()
    slots = backfill.housekeeping(now)
    result = {
        "expired_slots": slots["expired_slots"],
        "requeued_slots": slots["requeued_slots"],
        "expired_entries": expire_past_entries(now),
        "requeued_emails": resend_stuck_emails(now),
        "chain_releases": slots["chain_releases"],
        "released_moves": release_unanswered_moves(now),
        "webhook_jobs": webhooks.retries_due(now),
        "pruned_webhook_deliveries": webhooks.prune_delivered(now),
        "forgotten_idempotency_keys": forget_old_keys(now),
    }
    if any(result.values()):
        log.info("[SWEEP] %s", result)
    return result


def recover_lost_jobs():
    """WATCHDOG_RECOVERY_JOB: a cluster's process died (ops/watchdog.py), so the jobs it had
    taken are handed to new ones now rather than after LOST_JOB_SECONDS."""
    now = timezone.now()
    backfill.hurry_lost_jobs(now)
    return sweep(now)
