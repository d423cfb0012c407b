"""Hand-offs only: each receiver passes the event to the domain and returns."""

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from backfill.models import FreedSlot
from backfill.tasks import enqueue_entry_search
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry


@receiver(post_save, sender=Appointment, dispatch_uid="backfill.appointment_cancelled")
def appointment_cancelled(sender, instance, created, **kwargs):
    # Trigger 1: only the transition to cancelled, not every save of a cancelled row.
    if instance.just_cancelled:
        FreedSlot.record_for(instance)


@receiver(post_save, sender=WaitlistEntry, dispatch_uid="backfill.waitlist_entry_created")
def waitlist_entry_created(sender, instance, created, **kwargs):
    # Trigger 3: a new waiting entry looks for open slots, once the entry is committed.
    if created and instance.status == WaitlistEntry.Status.WAITING:
        entry_id = instance.pk
        transaction.on_commit(lambda: enqueue_entry_search(entry_id), robust=True)
