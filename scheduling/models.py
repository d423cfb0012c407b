import functools
import importlib.metadata
import logging
import pickle
import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connections, models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy

from clinic import events, prepared, times
from clinic.exceptions import DomainError
from clinic.models import Patient, Provider
from clinic.validators import single_line

log = logging.getLogger("scheduling")
DEADLOCK_DETECTED = "40P01"  # PostgreSQL SQLSTATE
DEADLOCK_RETRIES = 3


class SchedulingError(DomainError):
    """A state change that cannot happen; the message is shown to the user as is."""


class AppointmentConflict(SchedulingError):
    pass


class CannotCancel(SchedulingError):
    pass


class AppointmentQuerySet(models.QuerySet):
    def active(self):
        return self.exclude(status=Appointment.Status.CANCELLED)

    def overlapping(self, start, end):
        """Active appointments overlapping [start, end): on PostgreSQL read off the overlap
        exclusion constraints' GiST indexes, so the cost does not grow with the past."""
        overlapping = self.active().filter(start__lt=end, end__gt=start)
        if connections[self.db].vendor == "postgresql":
            overlapping = overlapping.filter(ActiveDuring(start, end))
        return overlapping


class ActiveDuring(models.Func):
    """The overlap exclusion constraints' own expression and partial-index condition
    (migration 0002), the status written out as a generic plan needs it, so PostgreSQL
    reads their GiST indexes on (provider or patient, time range) of active appointments
    instead of every past appointment before `end`."""

    output_field = models.BooleanField()

    def __init__(self, start, end):
        super().__init__(
            models.F("status"),
            models.F("start"),
            models.F("end"),
            models.Value(start, output_field=models.DateTimeField()),
            models.Value(end, output_field=models.DateTimeField()),
        )

    def as_sql(self, compiler, connection, **extra):
        compiled = [compiler.compile(expression) for expression in self.get_source_expressions()]
        (status, start, end, low, high), params = [sql for sql, _ in compiled], [p for _, ps in compiled for p in ps]
        return (
            f"({status} <> '{Appointment.Status.CANCELLED.value}' "
            f"AND tstzrange({start}, {end}, '[)') && tstzrange({low}, {high}, '[)'))",
            params,
        )


# What the apps above do when an appointment is cancelled, registered from their ready()
# (backfill records the freed slot): scheduling runs them without importing those apps.
_WHEN_CANCELLED = []


def when_cancelled(hook):
    """Run `hook(appointment)` inside every cancellation's transaction, after its event."""
    if hook not in _WHEN_CANCELLED:
        _WHEN_CANCELLED.append(hook)


def worth_filling(provider, start, now=None):
    """A freed time is filled only far enough ahead, with a provider who is active and not away then
    (docs/reference.md, Triggers)."""
    now = now or timezone.now()
    lead = timedelta(minutes=settings.BACKFILL["MIN_LEAD_MINUTES"])
    if start <= now + lead or not provider.active:
        return False
    return not provider.is_unavailable_on(provider.location.local(start).date())  # the day at the provider's site


# The two kinds of move (docs/reference.md, Reassignment), as the front desk reads them.
MOVE_ELSEWHERE_WORDS = gettext_lazy("Moved to another location: released unless the patient says yes in time")
MOVE_SAME_SITE_WORDS = gettext_lazy("Moved at the same location: kept unless the patient declines")


class Appointment(models.Model):
    class Status(models.TextChoices):
        # Patients read these on their pages, in their language.
        SCHEDULED = "scheduled", pgettext_lazy("appointment status", "Scheduled")
        OFFERED = "offered", pgettext_lazy("appointment status", "Offered")
        CONFIRMED = "confirmed", pgettext_lazy("appointment status", "Confirmed")
        CANCELLED = "cancelled", pgettext_lazy("appointment status", "Cancelled")
        COMPLETED = "completed", pgettext_lazy("appointment status", "Completed")
        NO_SHOW = "no_show", pgettext_lazy("appointment status", "No-show")

    class Source(models.TextChoices):
        STAFF = "staff"
        API = "api", "API"
        REASSIGNMENT = "reassignment"
        BACKFILL = "backfill"
        HL7 = "hl7", "EHR feed (HL7)"

    # Statuses a patient or staff can still cancel from.
    CANCELLABLE = (Status.SCHEDULED, Status.OFFERED, Status.CONFIRMED)

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="appointments")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="appointments")
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.STAFF)
    cancel_reason = models.CharField(max_length=200, blank=True, validators=[single_line])
    cancelled_by = models.CharField(max_length=100, blank=True)
    # Who booked it by hand (a username); blank when a workflow or another system booked it.
    booked_by = models.CharField(max_length=100, blank=True)
    # The appointment this one replaces (a reassignment offer points at the original).
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The integrator's own id for it (docs/reference.md, External ids), unique when set.
    external_id = models.CharField(max_length=100, unique=True, null=True, blank=True, validators=[single_line])
    # A move to another location waits for the patient's yes until then; unanswered, the sweep
    # releases it (docs/reference.md, Reassignment). Empty: a move the patient keeps unless they decline.
    answer_by = models.DateTimeField("answer wanted by", null=True, blank=True, editable=False)

    objects = AppointmentQuerySet.as_manager()

    class Meta:
        ordering = ["start", "provider_id"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=models.F("start")), name="appointment_ends_after_start"),
        ]
        # Overlap exclusion constraints (PostgreSQL) and triggers (SQLite) live in
        # migration 0002: they are vendor-specific SQL.
        indexes = [
            models.Index(fields=["provider", "start"]),
            models.Index(fields=["patient", "start"]),
            models.Index(fields=["status", "start"]),
        ]

    def __str__(self):
        local = self.provider.location.local(self.start)
        return f"{self.patient} with {self.provider.name}, {times.staff_datetime(local)} ({self.status})"

    def save(self, *args, **kwargs):
        if self.status == self.Status.CANCELLED:
            # A cancelled row takes part in no overlap constraint: no savepoint needed.
            super().save(*args, **kwargs)
            return
        try:
            self._save_retrying_a_deadlock(*args, **kwargs)
        except IntegrityError as error:
            if "overlap" in str(error):
                raise AppointmentConflict(self.find_conflict() or "The appointment overlaps another one.") from error
            raise

    @property
    def is_active(self):
        return self.status != self.Status.CANCELLED

    @property
    def location(self):
        return self.provider.location

    @property
    def specialty(self):
        return self.provider.specialty

    def clean(self):
        if self.start and self.end:
            self.check_length(self.start, self.end)
        if self.is_active and self.start and self.end and self.provider_id and self.patient_id:
            conflict = self.find_conflict()
            if conflict:
                raise ValidationError(conflict)

    @staticmethod
    def check_length(start, end):
        """An appointment ends after it starts and lasts at most APPOINTMENT_MAX_HOURS: a
        27-hour visit is a typo, and it would hold the provider's whole day and the next."""
        if end <= start:
            raise ValidationError({"end": "The appointment must end after it starts."})
        longest = settings.APPOINTMENT_MAX_HOURS
        if end - start > timedelta(hours=longest):
            raise ValidationError({"end": f"An appointment lasts at most {longest} hours."})

    def find_conflict(self):
        others = Appointment.objects.overlapping(self.start, self.end).exclude(pk=self.pk)
        if others.filter(provider_id=self.provider_id).exists():
            return "The provider already has an appointment at that time."
        if others.filter(patient_id=self.patient_id).exists():
            return "The patient already has an appointment at that time."
        return None

    def _save_retrying_a_deadlock(self, *args, **kwargs):
        # Two overlapping appointments written at the same moment each wait on the other's
        # exclusion check, and PostgreSQL aborts one as a deadlock. Once that one's
        # savepoint is rolled back the other finishes its check; after a pause the retry
        # waits for the other's commit and gets the real answer: saved, or an overlap
        # (IntegrityError). Retrying at once would meet the other mid-check and deadlock again.
        for attempt in range(1, DEADLOCK_RETRIES + 1):
            try:
                with transaction.atomic():
                    creating = self._state.adding
                    if creating and not args and not kwargs:
                        prepared.insert([self])  # the backfill's booking: its hot statement
                    else:
                        super().save(*args, **kwargs)
                    if creating:  # in the same savepoint: the event commits with the row
                        events.record("appointment.created", self)
                return
            except OperationalError as error:
                if getattr(error.__cause__, "sqlstate", None) != DEADLOCK_DETECTED or attempt == DEADLOCK_RETRIES:
                    raise
                log.warning(
                    "appointment.save_deadlock id=%s patient=%s provider=%s attempt=%s",
                    self.pk,
                    self.patient_id,
                    self.provider_id,
                    attempt,
                )
                time.sleep(0.1 * attempt)

    @classmethod
    def book(
        cls,
        *,
        patient,
        provider,
        start,
        end,
        source,
        status=Status.SCHEDULED,
        replaces=None,
        precheck=True,
        external_id=None,
        answer_by=None,
        booked_by="",
    ):
        """Create an appointment; raises AppointmentConflict if either party is busy then.

        precheck=False skips the friendly look-ahead (two queries) for callers that have
        just checked; the database constraint still refuses any overlap.
        """
        appointment = cls(
            patient=patient,
            provider=provider,
            start=start,
            end=end,
            source=source,
            status=status,
            replaces=replaces,
            external_id=external_id,
            answer_by=answer_by,
            booked_by=booked_by,
        )
        if end <= start:
            raise SchedulingError("The appointment must end after it starts.")
        conflict = precheck and appointment.find_conflict()
        if conflict:
            raise AppointmentConflict(conflict)
        appointment.save()  # the database constraint is the last word on a race
        log.info(
            "appointment.booked id=%s patient=%s provider=%s source=%s",
            appointment.pk,
            patient.pk,
            provider.pk,
            source,
        )
        return appointment

    def cancel(self, reason, by="staff"):
        """Lock, re-check, mark cancelled, record the event, then run what the apps above
        registered for a cancellation (`when_cancelled`: backfill records the freed slot),
        all in the caller's transaction. Whom to tell is the caller's choice: entry points
        call `scheduling.actions.cancel_appointment`, which decides it.
        """
        with transaction.atomic(), events.written_together():  # the cancellation's and the freed slot's
            self.lock_for_change()
            if self.status not in self.CANCELLABLE:
                raise CannotCancel(
                    gettext("This appointment is {status} and cannot be cancelled.").format(
                        status=self.get_status_display().lower()
                    )
                )
            self.status = self.Status.CANCELLED
            # One line whatever the caller passed: it reaches emails, pages and the log.
            self.cancel_reason = " ".join(reason.split())[:200]
            self.cancelled_by = str(by)[:100]
            self.cancelled_at = timezone.now()
            prepared.update(self, ["status", "cancel_reason", "cancelled_by", "cancelled_at", "updated_at"])
            # Before the hooks: the EHR hears of the cancellation before the slot.freed that follows from it.
            events.record("appointment.cancelled", self)
            for hook in _WHEN_CANCELLED:
                hook(self)
        # Formatted once the row lock is gone (a savepoint of the caller's may still hold it).
        log.info("appointment.cancelled id=%s patient=%s by=%s reason=%s", self.pk, self.patient_id, by, reason)
        return self

    def lock_for_change(self):
        """Reload this row locked, with what a cancellation reads: the provider and its site
        (the freed slot needs both: the site's clock says which day the provider may be
        away), the specialty and the patient too, for the patient's message
        (scheduling.actions.cancel_appointment)."""
        if not prepared.in_use():
            locked = Appointment.objects.select_for_update(no_key=True, of=("self",))
            self.refresh_from_db(from_queryset=locked.select_related(*LOCKED_WITH))
            return
        row = _with_provider().one("t0.id = %s", [self.pk], "FOR NO KEY UPDATE OF t0")
        if row is None:
            raise Appointment.DoesNotExist("Appointment matching query does not exist.")
        for field in self._meta.concrete_fields:
            value = getattr(row, field.attname)
            changed = (
                field.is_relation
                and field.is_cached(self)
                and getattr(field.get_cached_value(self), "pk", None) != value
            )
            if changed:  # as refresh_from_db: a relation that changed is read again
                field.delete_cached_value(self)
            setattr(self, field.attname, value)
        self._state.db = row._state.db
        self._meta.get_field("provider").set_cached_value(self, row.provider)
        self._meta.get_field("patient").set_cached_value(self, row.patient)

    def set_status(self, status, allowed_from):
        """Conditional update: only one of two concurrent clicks wins."""
        with transaction.atomic():
            changed = Appointment.objects.filter(pk=self.pk, status__in=allowed_from).update(
                status=status, updated_at=timezone.now()
            )
            self.refresh_from_db()
            if not changed:
                raise SchedulingError(
                    gettext("This appointment is {status}; it cannot become {new_status}.").format(
                        status=self.get_status_display().lower(), new_status=self.Status(status).label.lower()
                    )
                )
            events.record(f"appointment.{status}", self)
        log.info("appointment.%s id=%s patient=%s", status, self.pk, self.patient_id)
        return self

    @property
    def waits_for_yes(self):
        """An offered move to another location: released unless the patient accepts by answer_by."""
        return self.status == self.Status.OFFERED and self.answer_by is not None

    @property
    def move_words(self):
        """Which kind of move this offer is, for the front desk; "" when it is no move."""
        if self.source != self.Source.REASSIGNMENT:
            return ""
        if self.answer_by is not None:
            return MOVE_ELSEWHERE_WORDS
        return MOVE_SAME_SITE_WORDS

    def mark_no_show(self):
        if self.start > timezone.now():
            raise SchedulingError("An appointment can only be marked no-show once it has started.")
        return self.set_status(self.Status.NO_SHOW, [self.Status.SCHEDULED, self.Status.CONFIRMED])

    def confirm(self):
        return self.set_status(self.Status.CONFIRMED, [self.Status.OFFERED, self.Status.SCHEDULED])


LOCKED_WITH = ("provider__location", "provider__specialty", "patient")


@functools.cache
def _with_provider():
    return prepared.Joined(Appointment, LOCKED_WITH)


class ProviderUnavailability(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="unavailabilities")
    start_date = models.DateField()
    end_date = models.DateField()
    reason = models.CharField(max_length=200, blank=True, validators=[single_line])
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-start_date"]
        verbose_name_plural = "provider unavailabilities"
        permissions = [("reassign_patients", "Can mark a provider unavailable and reassign their patients")]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=models.F("start_date")), name="unavailability_end_not_before_start"
            ),
        ]
        indexes = [models.Index(fields=["provider", "start_date", "end_date"])]

    def __str__(self):
        return f"{self.provider.name} away {self.start_date} to {self.end_date}"


@functools.cache
def installed_sklearn_version():
    # Read once per process: reading the package's metadata took longer than the query that
    # needs it (a new patient's first risk, scheduling/signals.py), and it cannot change under a running process.
    return importlib.metadata.version("scikit-learn")


class StaleNoShowModel(Exception):
    """A stored model pickled by another scikit-learn version: it is retrained, never loaded."""


class NoShowModelQuerySet(models.QuerySet):
    def usable(self):
        """Trainings good enough to set risks (docs/reference.md, No-show model: held-out AUC >= 0.6) that this
        server's scikit-learn can load."""
        return self.filter(auc__gte=settings.BACKFILL["NO_SHOW_MIN_AUC"], sklearn_version=installed_sklearn_version())

    def in_use(self):
        # The pickle is read only by load_estimator(), which fetches it then.
        return self.usable().defer("estimator").order_by("-trained_at", "-id").first()

    def latest_trained(self):
        return self.order_by("-trained_at", "-id").first()

    def why_none_in_use(self):
        """What staff read on the dashboard when no model sets risks."""
        minimum = settings.BACKFILL["NO_SHOW_MIN_AUC"]
        latest = self.latest_trained()
        if latest is None:
            return (
                "No model has been trained yet: run manage.py train_no_show_model once the clinic has a history "
                "of visits (the qcluster also trains it every night)."
            )
        stale = self.filter(auc__gte=minimum).exclude(sklearn_version=installed_sklearn_version()).latest_trained()
        if stale is not None:
            return (
                f"The last good model was trained with scikit-learn {stale.sklearn_version} and this server runs "
                f"{installed_sklearn_version()}, so it is not loaded; the next training replaces it."
            )
        return (
            f"The last training ({timezone.localtime(latest.trained_at):%d %b %Y %H:%M}, "
            f"{latest.training_rows + latest.heldout_rows:,} visits) reached a held-out AUC of {latest.auc:.2f}, "
            f"below the {minimum:.2f} needed: its estimates would be little better than the clinic's average "
            "no-show rate."
        )


class NoShowModel(models.Model):
    """One training of the no-show model (docs/reference.md, No-show model): what it learned from, how it scored on
    the newest visits it never saw, and the fitted estimator itself.

    The estimator is a pickle stored in this row and loaded from nowhere else: a pickle
    runs code when loaded, so only what this server trained itself is ever unpickled.
    """

    trained_at = models.DateTimeField(default=timezone.now, db_index=True)
    algorithm = models.CharField(max_length=40)
    training_rows = models.PositiveIntegerField(help_text="Older visits it learned from.")
    heldout_rows = models.PositiveIntegerField(help_text="Newest visits kept back to score it.")
    features = models.JSONField(default=list)
    auc = models.FloatField("held-out AUC")
    brier = models.FloatField("held-out Brier score")
    base_rate = models.FloatField("held-out no-show rate")
    # Calibration deciles, the candidates' validation scores, the held-out dates.
    metrics = models.JSONField(default=dict)
    # What a visit looks like when a patient has none booked, and the reference the
    # reasons are measured against (scheduling/no_show.py).
    typical_visit = models.JSONField(default=dict)
    sklearn_version = models.CharField(max_length=20)
    estimator = models.BinaryField()
    scored_at = models.DateTimeField(null=True, blank=True)
    patients_scored = models.PositiveIntegerField(default=0)
    # Its estimates' percentiles 0..100 over every patient, fixed at its first scoring (right
    # after training), so a learned risk's standing in the clinic (clinic/risk_scale.py)
    # stays put until the next model.
    risk_quantiles = models.JSONField(default=list, editable=False)

    objects = NoShowModelQuerySet.as_manager()

    class Meta:
        ordering = ["-trained_at", "-id"]
        verbose_name = "no-show model"

    def __str__(self):
        trained = timezone.localtime(self.trained_at)
        return f"No-show model {self.pk} ({self.algorithm}, AUC {self.auc:.2f}, {trained:%d %b %Y %H:%M})"

    @property
    def is_usable(self):
        return self.auc >= settings.BACKFILL["NO_SHOW_MIN_AUC"]

    def load_estimator(self):
        if self.sklearn_version != installed_sklearn_version():
            raise StaleNoShowModel(
                f"Model {self.pk} was trained with scikit-learn {self.sklearn_version}; this server runs "
                f"{installed_sklearn_version()}."
            )
        return pickle.loads(bytes(self.estimator))  # noqa: S301 - our own row, written by train()
