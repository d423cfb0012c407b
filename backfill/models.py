import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import pgettext_lazy

from clinic import events, prepared, times
from clinic.models import Patient, Provider
from clinic.queue import enqueue
from scheduling.models import Appointment, worth_filling
from waitlist.models import WaitlistEntry

log = logging.getLogger("backfill")


def enqueue_backfill(slot_id):
    """Hand the slot to its backfill job (backfill/tasks.py, named, not imported: it sits above)."""
    try:
        enqueue("backfill.tasks.backfill_slot", slot_id, group="backfill", task_name=f"backfill-slot-{slot_id}")
    except Exception:  # the broker is down; whatever it raised, the slot is already recorded
        # Due at once: the sweep's next run enqueues it as soon as the broker is back,
        # instead of after LOST_JOB_SECONDS.
        log.warning("[BACKFILL] Could not enqueue the job of slot %s; the sweep will", slot_id, exc_info=True)
        FreedSlot.objects.filter(pk=slot_id, status=FreedSlot.Status.OPEN).update(next_attempt_at=timezone.now())


def enqueue_chain_release(entry_id):
    """Chain backfill: release the later appointment of the patient this entry booked earlier
    (backfill/tasks.py's release_later_appointment, by name like the slot's job)."""
    try:
        enqueue(
            "backfill.tasks.release_later_appointment", entry_id, group="backfill", task_name=f"chain-entry-{entry_id}"
        )
    except Exception:  # the broker is down; the booking stands, the sweep releases it later
        log.warning(
            "[BACKFILL] Could not enqueue the chain release of entry %s; the sweep will", entry_id, exc_info=True
        )


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
        MANUAL = "manual", "Booked by hand"
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
    failures = models.PositiveSmallIntegerField(
        default=0, help_text="Runs that raised; MAX_ATTEMPTS of them fail the slot."
    )
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
        local = self.provider.location.local(self.start)
        return f"{self.provider.name} {times.staff_datetime(local)} ({self.get_status_display()})"

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
                prepared.insert([slot])
        except IntegrityError:  # two saves cancelled the same row at once: the other recorded it
            return cls.objects.get(appointment=appointment)
        events.record("slot.freed", slot)
        slot.enqueue_on_commit()
        return slot

    def enqueue_on_commit(self):
        slot_id = self.pk
        transaction.on_commit(lambda: enqueue_backfill(slot_id), robust=True)

    def is_bookable(self, now=None):
        """docs/reference.md, Triggers: far enough ahead, provider active and not away that day."""
        return worth_filling(self.provider, self.start, now)

    # The state changes. Each saves the fields it changed (and `attempts`, which the run
    # counted) on a slot its caller holds locked (backfill/booking.py's lock_slot).

    def close(self, status):
        """Nobody to book (no_match) or too late (expired): the job stops coming back."""
        self.status = status
        self.next_attempt_at = None
        prepared.update(self, ["status", "attempts", "next_attempt_at"])
        events.record(f"slot.{status}", self)  # slot.no_match, slot.expired

    def mark_backfilled(self, appointment):
        now = timezone.now()
        self.status = self.Status.BACKFILLED
        self.filled_at = now
        self.filled_by = appointment
        self.next_attempt_at = None
        self.fill_ms = max(0, int((now - self.freed_at).total_seconds() * 1000))
        prepared.update(self, ["status", "filled_at", "filled_by", "next_attempt_at", "fill_ms", "attempts"])
        self._record_filled()

    def mark_booked_by_hand(self, appointment):
        self.status = self.Status.MANUAL
        self.filled_at = timezone.now()
        self.filled_by = appointment
        self.next_attempt_at = None
        prepared.update(self, ["status", "filled_at", "filled_by", "next_attempt_at"])
        self._record_filled()  # by hand: the slot's status says "manual"

    def _record_filled(self):
        # The EHR learns the whole move at once: the freed slot, who was booked into it and
        # which cancelled appointment it replaced.
        events.record(
            "slot.backfilled", self, booked_appointment=self.filled_by, replaced_appointment=self.appointment
        )

    def record_failure(self, error):
        """A run raised: the slot stays open and the sweep retries it with backoff, up to MAX_ATTEMPTS."""
        self.attempts += 1  # the failed run's own increment was rolled back with it
        self.failures += 1
        self.last_error = f"{type(error).__name__}: {error}"[:2000]
        if self.failures >= settings.BACKFILL["MAX_ATTEMPTS"]:
            self.status = self.Status.FAILED
            self.next_attempt_at = None
            log.error("[BACKFILL] Slot %s failed %s times, giving up: %s", self.pk, self.failures, self.last_error)
            events.record("slot.failed", self)
        else:
            backoff = settings.BACKFILL["RETRY_BACKOFF_SECONDS"] * 2 ** (self.failures - 1)
            self.next_attempt_at = timezone.now() + timedelta(seconds=backoff)
            log.warning(
                "[BACKFILL] Slot %s run %s failed, retrying in %ss: %s",
                self.pk,
                self.attempts,
                backoff,
                self.last_error,
            )
        self.save(update_fields=["attempts", "failures", "last_error", "status", "next_attempt_at"])

    def reopen(self):
        """Staff ask for another run: open again, and the job is enqueued once this commits."""
        self.status = self.Status.OPEN
        self.next_attempt_at = timezone.now() + timedelta(seconds=settings.BACKFILL["LOST_JOB_SECONDS"])
        self.save(update_fields=["status", "next_attempt_at"])
        self.enqueue_on_commit()

    def wait_for_answers(self, until, reopen=False):
        """Offer mode: the job comes back when the offers out expire (`reopen`: a no_match slot offered again)."""
        if reopen:
            self.status = self.Status.OPEN
        self.next_attempt_at = until
        self.save(update_fields=["status", "attempts", "next_attempt_at"])


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
        WEEKLY_OFFER_LIMIT = (
            "weekly_offer_limit",
            "Not offered: had the most offers a week allows (MAX_OFFERS_PER_WEEK)",
        )
        OFFERS_PAUSED = "offers_paused", "Not offered: offers paused after several went by (PAUSE_AFTER_DECLINES)"

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
        return f"#{self.rank} {self.patient}: {self.score} points ({self.get_outcome_display().lower()})"


class SlotOffer(models.Model):
    """Offer mode (docs/reference.md, Rules, beyond the seed): a time-limited offer of a freed slot to one
    waitlisted patient. The first of a slot's offers to be accepted books the patient;
    the others are withdrawn. Every change of status holds the slot's row lock
    (backfill/offers.py), so a slot's offers never race each other."""

    class Status(models.TextChoices):
        # Patients read these on their offer's page, in their language.
        PENDING = "pending", pgettext_lazy("offer status", "Pending")
        ACCEPTED = "accepted", pgettext_lazy("offer status", "Accepted")
        DECLINED = "declined", pgettext_lazy("offer status", "Declined")
        EXPIRED = "expired", pgettext_lazy("offer status", "Expired")
        # Someone else accepted first, or the slot was filled or went away otherwise.
        WITHDRAWN = "withdrawn", pgettext_lazy("offer status", "Withdrawn")

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
        return f"{self.slot} offered to {self.patient} ({self.get_status_display().lower()})"

    def has_expired(self, now=None):
        return self.expires_at <= (now or timezone.now())
