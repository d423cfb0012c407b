import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from clinic import events, prepared
from clinic.fields import TimeWindowsField, WeekdaysField
from clinic.models import Location, Patient, Provider, Specialty

log = logging.getLogger("waitlist")


class WaitlistEntry(models.Model):
    class Reason(models.TextChoices):
        DECLINED_REASSIGNMENT = "declined_reassignment"
        LOW_MATCH = "low_match"
        STAFF = "staff"
        PATIENT_REQUEST = "patient_request"

    class Status(models.TextChoices):
        WAITING = "waiting"
        BOOKED = "booked"
        REMOVED = "removed"
        EXPIRED = "expired"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="waitlist_entries")
    specialty = models.ForeignKey(Specialty, on_delete=models.PROTECT, related_name="+")
    preferred_location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    preferred_provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    available_days = WeekdaysField(help_text="Days the patient can come; none ticked means any day.")
    time_windows = TimeWindowsField(help_text='e.g. "08:00-12:00, 16:00-18:30"; empty means any time.')
    earliest_date = models.DateField(null=True, blank=True)
    latest_date = models.DateField(null=True, blank=True)
    reason = models.CharField(max_length=30, choices=Reason.choices, default=Reason.STAFF)
    original_appointment = models.ForeignKey(
        "scheduling.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.WAITING)
    booked_appointment = models.ForeignKey(
        "scheduling.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Copies kept so one index serves both the candidate filter and the ranking order
    # (docs/reference.md, Rules tie-breaks: declined reassignment first, then higher risk, then longest
    # waiting). Kept in step by save() and Patient.save(). The risk is the patient's
    # ranking risk: typed and learned risks on one scale (clinic/risk_scale.py).
    ranking_risk = models.FloatField(default=0.0, editable=False)
    declined_first = models.BooleanField(default=False, editable=False)
    # The patient's insurance plan, copied for the same reason: the candidate query filters
    # on it while it walks the index, before it looks the patient up (bench/matching.py).
    insurance_plan = models.ForeignKey(
        "clinic.InsurancePlan",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "waitlist entries"
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "specialty"],
                condition=Q(status="waiting"),
                name="one_waiting_entry_per_patient_and_specialty",
            ),
            models.CheckConstraint(
                condition=Q(earliest_date__isnull=True)
                | Q(latest_date__isnull=True)
                | Q(latest_date__gte=models.F("earliest_date")),
                name="waitlist_latest_not_before_earliest",
            ),
        ]
        indexes = [
            models.Index(
                fields=["specialty", "status", "-declined_first", "-ranking_risk", "created_at", "id"],
                name="waitlist_rank",
            ),
            models.Index(
                fields=[
                    "specialty",
                    "status",
                    "preferred_location",
                    "-declined_first",
                    "-ranking_risk",
                    "created_at",
                    "id",
                ],
                name="waitlist_rank_by_location",
            ),
        ]

    def __str__(self):
        return f"{self.patient} waiting for {self.specialty}"

    # Copied from the patient on every save, so the matcher's index can rank by them.
    DERIVED = ("ranking_risk", "declined_first", "insurance_plan", "updated_at")

    def save(self, *args, **kwargs):
        self.derive()
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], *self.DERIVED}
        if not self._state.adding:
            return super().save(*args, **kwargs)
        with transaction.atomic():  # the entry and its event commit together
            super().save(*args, **kwargs)
            events.record("waitlist_entry.created", self)

    def derive(self):
        self.ranking_risk = self.patient.risk_on_ranking_scale()
        self.declined_first = self.reason == self.Reason.DECLINED_REASSIGNMENT
        self.insurance_plan_id = self.patient.insurance_plan_id

    def mark_booked(self, appointment):
        """Booked from the waitlist into `appointment` (its row locked by the caller)."""
        self.status = self.Status.BOOKED
        self.booked_appointment = appointment
        self.derive()
        prepared.update(self, ["status", "booked_appointment", *self.DERIVED])

    def check_date_window(self, today=None):
        """New dates from outside (the API) fall within a sane window: from a few days back (a
        caller's "today" may be behind ours) to WAITLIST_DATES_AHEAD_DAYS ahead. Year 1 or
        9999 is a typo, and far dates break the day arithmetic of pages and searches."""
        today = today or timezone.localdate()
        first = today - timedelta(days=settings.WAITLIST_DATES_PAST_DAYS)
        last = today + timedelta(days=settings.WAITLIST_DATES_AHEAD_DAYS)
        errors = {
            name: f"The {name.replace('_', ' ')} must be from {first.isoformat()} to {last.isoformat()}."
            for name in ("earliest_date", "latest_date")
            if getattr(self, name) and not first <= getattr(self, name) <= last
        }
        if errors:
            raise ValidationError(errors)

    def clean(self):
        if self.earliest_date and self.latest_date and self.latest_date < self.earliest_date:
            raise ValidationError({"latest_date": "The latest date must not be before the earliest date."})
        if (
            self.preferred_provider_id
            and self.specialty_id
            and self.preferred_provider.specialty_id != self.specialty_id
        ):
            raise ValidationError({"preferred_provider": "The preferred provider practises another specialty."})
        if self.status == self.Status.WAITING and self.patient_id and self.specialty_id:
            duplicate = WaitlistEntry.objects.filter(
                patient_id=self.patient_id, specialty_id=self.specialty_id, status=self.Status.WAITING
            ).exclude(pk=self.pk)
            if duplicate.exists():
                raise ValidationError("This patient is already waiting for this specialty.")

    @classmethod
    def defaults_from_patient(cls, patient, **fields):
        """A new entry whose omitted preferences are the patient's own (docs/reference.md, API)."""
        fields.setdefault("preferred_location", patient.preferred_location)
        fields.setdefault("available_days", list(patient.available_days))
        fields.setdefault("time_windows", list(patient.preferred_times))
        return cls(patient=patient, **fields)

    def remove(self):
        with transaction.atomic():
            changed = WaitlistEntry.objects.filter(pk=self.pk, status=self.Status.WAITING).update(
                status=self.Status.REMOVED, updated_at=timezone.now()
            )
            self.refresh_from_db()
            if changed:
                events.record("waitlist_entry.removed", self)
            log.info("waitlist.removed id=%s patient=%s", self.pk, self.patient_id)
        return bool(changed)
