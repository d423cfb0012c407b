"""Hand-offs only: each receiver enqueues a job once the change commits and returns; none
writes a row. (A cancellation's freed slot is recorded by the hook backfill registers with
`scheduling.models.when_cancelled` in its ready(), which `Appointment.cancel` runs.)"""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from backfill.tasks import enqueue_entry_search
from waitlist.models import WaitlistEntry


@receiver(post_save, sender=WaitlistEntry, dispatch_uid="backfill.waitlist_entry_created")
def waitlist_entry_created(sender, instance, created, **kwargs):
    # Trigger 3: a new waiting entry looks for open slots, once the entry is committed.
    if created and instance.status == WaitlistEntry.Status.WAITING:
        entry_id = instance.pk
        transaction.on_commit(lambda: enqueue_entry_search(entry_id), robust=True)
