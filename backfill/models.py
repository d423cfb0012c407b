from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone

from clinic import events
from clinic.models import Patient, Provider
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry


class FreedSlotQuerySet(models.QuerySet):
    def fillable(self):
        """Slots a new waitlist entry or a retry may still fill."""
        return self.filter(status__in=FreedSlot.FILLABLE, start__gt=timezone.now())


class FreedSlot(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        BACKFILLED = "backfilled"
        NO_MATCH = "no_match", "No match"
        EXPIRED = "expired"
        MANUAL = "manual"
        FAILED = "failed"

    FILLABLE = (Status.OPEN, Status.NO_MATCH)

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="freed_slots")
    start = models.DateTimeField()
    end = models.DateTimeField()
    appointment = models.OneToOneField(Appointment, on_delete=models.PROTECT, related_name="freed_slot")
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    freed_at = models.DateTimeField(default=timezone.now)
    filled_at = models.DateTimeField(null=True, blank=True)
    filled_by = models.OneToOneField(
        Appointment, null=True, blank=True, on_delete=models.SET_NULL, related_name="filled_slot"
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Backfill runs of this slot.")
    failures = models.PositiveSmallIntegerField(default=0, help_text="Runs that raised; MAX_ATTEMPTS of them fail the slot.")
    # When the sweep should enqueue this slot's job again if it is still open: soon after
    # freeing (a lost job), or after a failure's backoff.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    fill_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time from freeing to booking.")

    objects = FreedSlotQuerySet.as_manager()

    class Meta:
        ordering = ["-freed_at", "-id"]
        permissions = [
            ("view_dashboard", "Can view the backfill dashboard"),
            ("view_metrics", "Can read the Prometheus metrics"),
        ]
        indexes = [
            models.Index(fields=["status", "start"]),
            models.Index(fields=["provider", "start"]),
            models.Index(fields=["freed_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="backfilled") | Q(filled_by__isnull=False),
                name="backfilled_slot_has_appointment",
            )
        ]

    def __str__(self):
        local = timezone.localtime(self.start)
        return f"{self.provider.name} {local:%a %d %b %H:%M} ({self.get_status_display()})"

    @property
    def specialty_id(self):
        return self.provider.specialty_id

    @property
    def location_id(self):
        return self.provider.location_id

    @property
    def is_fillable(self):
        return self.status in self.FILLABLE

    @classmethod
    def record_for(cls, appointment, reason=""):
        """Record the slot a cancelled appointment freed, if it is still worth filling.

        Called inside the cancelling transaction; the backfill job is enqueued only once it
        commits, so the job never sees an uncommitted or rolled-back cancellation.
        """
        slot = cls(
            provider=appointment.provider,
            start=appointment.start,
            end=appointment.end,
            appointment=appointment,
            reason=reason or appointment.cancel_reason,
        )
        if not slot.is_bookable():
            return None
        slot.next_attempt_at = timezone.now() + timedelta(seconds=settings.BACKFILL["LOST_JOB_SECONDS"])
        try:
            with transaction.atomic():
                slot.save()
        except IntegrityError:  # two saves cancelled the same row at once: the other recorded it
            return cls.objects.get(appointment=appointment)
        events.record("slot.freed", slot)
        from backfill.tasks import enqueue_backfill

        transaction.on_commit(lambda: enqueue_backfill(slot.pk), robust=True)
        return slot

    def is_bookable(self, now=None):
        """SPEC 4: far enough ahead, provider active and not away that day."""
        now = now or timezone.now()
        lead = timedelta(minutes=settings.BACKFILL["MIN_LEAD_MINUTES"])
        if self.start <= now + lead or not self.provider.active:
            return False
        return not self.provider.is_unavailable_on(timezone.localdate(self.start))


class MatchLog(models.Model):
    """One candidate considered in one backfill run: its score by rule and what happened."""

    class Outcome(models.TextChoices):
        BOOKED = "booked"
        RANKED_LOWER = "ranked_lower", "Ranked lower"
        BELOW_THRESHOLD = "below_threshold", "Below threshold"
        ALREADY_BOOKED = "already_booked", "Patient already booked then"
        TAKEN = "taken", "Taken by another booking"
        NOT_TRIED = "not_tried", "Not tried"
        OFFERED = "offered", "Offered (offer mode)"

    slot = models.ForeignKey(FreedSlot, on_delete=models.CASCADE, related_name="match_logs")
    run = models.PositiveSmallIntegerField(help_text="Which backfill run of this slot (attempt number).")
    rank = models.PositiveSmallIntegerField()
    entry = models.ForeignKey(WaitlistEntry, null=True, on_delete=models.SET_NULL, related_name="match_logs")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    score = models.IntegerField()
    breakdown = models.JSONField(default=dict)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slot", "-run", "rank"]
        indexes = [models.Index(fields=["slot", "run", "rank"])]

    def __str__(self):
        return f"#{self.rank} {self.patient_id}: {self.score} ({self.outcome})"


class SlotOffer(models.Model):
    """Offer mode (SPEC 5, beyond the seed): a time-limited offer of a freed slot to one
    waitlisted patient. The first of a slot's offers to be accepted books the patient;
    the others are withdrawn. Every change of status holds the slot's row lock
    (backfill/offers.py), so a slot's offers never race each other."""

    class Status(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        DECLINED = "declined"
        EXPIRED = "expired"
        # Someone else accepted first, or the slot was filled or went away otherwise.
        WITHDRAWN = "withdrawn"

    slot = models.ForeignKey(FreedSlot, on_delete=models.CASCADE, related_name="offers")
    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="slot_offers")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="slot_offers")
    score = models.IntegerField()
    breakdown = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    sent_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["slot", "sent_at", "id"]
        constraints = [models.UniqueConstraint(fields=["slot", "entry"], name="one_offer_per_slot_and_entry")]
        indexes = [models.Index(fields=["status", "expires_at"])]

    def __str__(self):
        return f"Offer of slot {self.slot_id} to patient {self.patient_id} ({self.status})"

    def has_expired(self, now=None):
        return self.expires_at <= (now or timezone.now())
