import hashlib
import secrets
import time
from datetime import datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import pgettext_lazy
from phonenumber_field.modelfields import PhoneNumberField

from clinic import prepared, risk_scale
from clinic.fields import TimeWindowsField, WeekdaysField
from clinic.validators import outside_url, single_line, time_zone_name


def default_time_zone():
    return settings.TIME_ZONE


class LocationQuerySet(models.QuerySet):
    def zones(self):
        return [ZoneInfo(name) for name in self.order_by().values_list("time_zone", flat=True).distinct()]

    def on_their_clocks(self, location_path, on_clock):
        return on_their_clocks(location_path, on_clock, self.zones())

    def earliest_date(self, now=None):
        """The date at the location whose day began last: a day before it is over everywhere."""
        zones = self.zones() or [timezone.get_default_timezone()]
        return min(timezone.localdate(now, zone) for zone in zones)


def on_their_clocks(location_path, on_clock, zones):
    """A filter for rows judged on their own location's clock (docs/reference.md, Time zones): `on_clock(zone)`
    gives the condition on one clock, and each row gets the one of its location's zone
    (`location_path` leads from the row to its location, e.g. "provider__location";
    `zones`: every zone the locations are in)."""
    query = models.Q(pk__in=[])  # no location: no row
    for zone in sorted(set(zones), key=str):
        query |= models.Q(**{f"{location_path}__time_zone": zone.key}) & on_clock(zone)
    return query


def day_bounds(first, last, zone):
    """From midnight starting `first` to midnight ending `last` on `zone`'s clock; 23 or
    25 hours on a day the clocks change."""
    return (
        datetime.combine(first, clock_time.min, tzinfo=zone),
        datetime.combine(last + timedelta(days=1), clock_time.min, tzinfo=zone),
    )


class Location(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[single_line])
    address = models.CharField(max_length=200, blank=True, validators=[single_line])
    # What patients read on their pages and emails to call the site.
    phone = models.CharField(max_length=30, blank=True, validators=[single_line])
    # The integrator's own id for it (docs/reference.md, External ids), unique when set.
    external_id = models.CharField(max_length=100, unique=True, null=True, blank=True, validators=[single_line])
    # docs/reference.md, Time zones: a network of sites keeps each site's own clock; a slot's weekday and time of
    # day are its location's.
    time_zone = models.CharField(
        max_length=64,
        default=default_time_zone,
        validators=[time_zone_name],
        help_text='IANA name, e.g. "America/Los_Angeles".',
    )

    objects = LocationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def phone_uri(self):
        """The phone as a link a phone can dial: "tel:" and its digits."""
        return "tel:" + "".join(ch for ch in self.phone if ch.isdigit() or ch == "+")

    @property
    def zone(self):
        return ZoneInfo(self.time_zone)

    def local(self, moment):
        """The moment on this location's clock."""
        return moment.astimezone(self.zone)

    def today(self, now=None):
        return timezone.localdate(now, self.zone)

    def day_bounds(self, first, last=None):
        """The days from `first` to `last` (inclusive; default one day) as this site lives them."""
        return day_bounds(first, last or first, self.zone)


class InsurancePlan(models.Model):
    """A plan patients are insured under; a provider may take only some (docs/reference.md, Insurance)."""

    name = models.CharField(max_length=100, unique=True, validators=[single_line])
    payer = models.CharField(max_length=100, validators=[single_line], help_text="The insurer, e.g. Aetna.")

    class Meta:
        ordering = ["payer", "name"]

    def __str__(self):
        return self.name


class Specialty(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[single_line])
    # The integrator's own id for it (docs/reference.md, External ids), unique when set; an HL7 feed's AIS-3 code.
    external_id = models.CharField(max_length=100, unique=True, null=True, blank=True, validators=[single_line])

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "specialties"

    def __str__(self):
        return self.name


def takes_plan(plan_id, accepted_plan_ids):
    """The insurance rule (docs/reference.md, "Insurance"): a self-pay patient (no plan) is seen
    by anyone, a provider with no plans listed takes every plan, otherwise only those listed.

    Every Python reader uses this; `ProviderQuerySet.accepting` is the same rule in the ORM and
    backfill/rules.py's INSURANCE_ACCEPTED in the matcher's SQL, each proved equal to it by
    tests/test_insurance.py and tests/test_matching_equivalence.py. `accepted_plan_ids` may be
    a function, called only for a patient with a plan (a self-pay patient costs no query).
    """
    if plan_id is None:
        return True
    accepted = accepted_plan_ids() if callable(accepted_plan_ids) else accepted_plan_ids
    return not accepted or plan_id in accepted


class ProviderQuerySet(models.QuerySet):
    def accepting(self, plan_id):
        """Providers who see a patient on this plan (`takes_plan` in the ORM)."""
        if plan_id is None:
            return self
        return self.filter(models.Q(accepted_insurance_plans=None) | models.Q(accepted_insurance_plans=plan_id))


class Provider(models.Model):
    name = models.CharField(max_length=120, validators=[single_line])
    email = models.EmailField(unique=True)
    specialty = models.ForeignKey(Specialty, on_delete=models.PROTECT, related_name="providers")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="providers")
    active = models.BooleanField(default=True)
    accepted_insurance_plans = models.ManyToManyField(
        InsurancePlan,
        blank=True,
        related_name="providers",
        help_text="None ticked: every plan is accepted.",
    )
    # The integrator's own id for it (docs/reference.md, External ids), unique when set.
    external_id = models.CharField(max_length=100, unique=True, null=True, blank=True, validators=[single_line])

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["specialty", "active"])]

    def __str__(self):
        return f"{self.name} ({self.specialty})"

    def is_unavailable_on(self, day):
        if prepared.in_use():  # asked for every freed slot, under the cancellation's lock
            absences = self._meta.get_field("unavailabilities").related_model
            return bool(prepared.fetch(_away_sql(absences._meta.db_table), [self.pk, day, day]))
        return self.unavailabilities.filter(start_date__lte=day, end_date__gte=day).exists()


def _away_sql(table):
    return f'SELECT 1 FROM "{table}" WHERE provider_id = %s AND start_date <= %s AND end_date >= %s LIMIT 1'


# Reachable: by email they have not opted out of, or by texts they consented to, with a
# number to send them to (docs/reference.md, "Reachable"). `Patient.is_reachable` is the rule
# in Python; this the same in the ORM, backfill/rules.py's REACHABLE the same in the matcher's
# SQL. A patient the sender can reach is one the backfill may book, and the other way round.
REACHABLE = (models.Q(email_opt_out=False) & ~models.Q(email="")) | (models.Q(sms_consent=True) & ~models.Q(phone=""))


class PatientQuerySet(models.QuerySet):
    def reachable(self):
        return self.filter(REACHABLE)

    def risk_set_by_model(self):
        """Patients whose risk is the no-show model's estimate (docs/reference.md, No-show model)."""
        return self.filter(no_show_risk_source=Patient.RiskSource.MODEL, no_show_risk_model__isnull=False)


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "Text message"


class Patient(models.Model):
    class Channel(models.TextChoices):
        # Patients choose one on their own page, in their language.
        EMAIL = "email", pgettext_lazy("channel", "Email")
        SMS = "sms", pgettext_lazy("channel", "Text message")
        BOTH = "both", pgettext_lazy("channel", "Email and text")

    class ConsentSource(models.TextChoices):
        STAFF = "staff", "Staff"
        API = "api", "Integrator"
        PATIENT = "patient", "Patient (self-service page)"
        SMS = "sms", "Patient (text reply)"

    class RiskSource(models.TextChoices):
        MANUAL = "manual", "Typed in by staff"
        API = "api", "Sent by an integrator"
        MODEL = "model", "Learned from the clinic's history"

    first_name = models.CharField(max_length=60, validators=[single_line])
    last_name = models.CharField(max_length=60, validators=[single_line])
    email = models.EmailField(db_index=True)
    # The integrator's own id for it (docs/reference.md, External ids), unique when set.
    external_id = models.CharField(max_length=100, unique=True, null=True, blank=True, validators=[single_line])
    # E.164 (+16175550123); typed numbers are read in PHONENUMBER_DEFAULT_REGION.
    phone = PhoneNumberField(blank=True)
    birth_date = models.DateField(null=True, blank=True)
    # The language the patient reads, as a code (ISO 639, e.g. "es"); empty: the clinic's own.
    preferred_language = models.CharField(max_length=16, blank=True, validators=[single_line])
    preferred_location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    available_days = WeekdaysField(help_text="Days the patient can come; none ticked means any day.")
    preferred_times = TimeWindowsField(
        help_text='Times of day the patient can come, e.g. "08:00-12:00, 16:00-18:30"; empty means any time.'
    )
    no_show_risk = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="0.0 (always comes) to 1.0 (rarely comes).",
    )
    # docs/reference.md, No-show model: who set no_show_risk. The no-show model writes only "model" risks, so a value
    # staff typed or an integrator sent is never overwritten.
    no_show_risk_source = models.CharField(
        "no-show risk source",
        max_length=10,
        choices=RiskSource.choices,
        default=RiskSource.MODEL,
        help_text='Choose "Learned from the clinic\'s history" to let the no-show model set the risk.',
    )
    # The model's own estimate and why, kept for every patient (whatever the source), so
    # staff can compare it with a value they typed.
    no_show_risk_model = models.FloatField("model's no-show estimate", null=True, blank=True, editable=False)
    no_show_risk_reasons = models.JSONField("model's reasons", default=list, blank=True, editable=False)
    # Where the model's estimate stands among the clinic's scored patients: the share of
    # them rated at or below it (clinic/risk_scale.py), from the model's own percentiles.
    no_show_risk_standing = models.FloatField("model's estimate stands above", null=True, blank=True, editable=False)
    # The risk the backfill ranks by: a typed or sent risk as it is, a learned one placed on
    # the same scale by its standing (clinic/risk_scale.py). Kept in step by save().
    ranking_risk = models.FloatField(default=0.0, editable=False)
    email_opt_out = models.BooleanField(default=False)
    insurance_plan = models.ForeignKey(
        InsurancePlan,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="patients",
        help_text="Empty: self-pay.",
    )
    preferred_channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    # Texts need the patient's consent (TCPA), kept with when and how it was given or withdrawn.
    sms_consent = models.BooleanField("consents to texts", default=False)
    sms_consent_at = models.DateTimeField("consent to texts changed at", null=True, blank=True)
    sms_consent_source = models.CharField(
        "consent to texts given or withdrawn by", max_length=10, choices=ConsentSource.choices, blank=True
    )
    # Contact rules (BACKFILL["PAUSE_AFTER_DECLINES"]): no offers while paused, until staff
    # or the patient resume them.
    offers_paused_at = models.DateTimeField(null=True, blank=True)
    offers_resumed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = PatientQuerySet.as_manager()

    class Meta:
        ordering = ["last_name", "first_name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(no_show_risk__gte=0.0, no_show_risk__lte=1.0),
                name="patient_no_show_risk_0_to_1",
            )
        ]

    def __str__(self):
        return f"{self.first_name} {self.last_name}"

    # What the waiting entries' copies (below) are made from.
    RANKED_BY = frozenset(
        ["no_show_risk", "no_show_risk_source", "no_show_risk_standing", "insurance_plan", "insurance_plan_id"]
    )

    def save(self, *args, **kwargs):
        self.ranking_risk = self.risk_on_ranking_scale()
        new = self._state.adding and self.pk is None
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "ranking_risk"}
        super().save(*args, **kwargs)
        if new or (update_fields is not None and not self.RANKED_BY & set(update_fields)):
            return  # no entries yet, or nothing they copy changed: a statement saved (the HL7 feed's updates)
        # Waiting entries keep a copy of the risk and the plan so one index can filter and rank them.
        plan_differs = (
            ~models.Q(insurance_plan_id=self.insurance_plan_id) | models.Q(insurance_plan__isnull=True)
            if self.insurance_plan_id
            else models.Q(insurance_plan__isnull=False)
        )
        self.waitlist_entries.filter(status="waiting").filter(
            ~models.Q(ranking_risk=self.ranking_risk) | plan_differs
        ).update(ranking_risk=self.ranking_risk, insurance_plan_id=self.insurance_plan_id)

    @property
    def risk_is_learned(self):
        """The model set this risk, and knows where it stands in the clinic."""
        return self.no_show_risk_source == self.RiskSource.MODEL and self.no_show_risk_standing is not None

    def no_show_risk_words(self, config=None):
        """ "0.85" for a typed risk; "0.31, in this clinic's highest fifth" for a learned one."""
        if not self.risk_is_learned:
            return f"{self.no_show_risk:.2f}"
        return f"{self.no_show_risk:.2f}, {self.no_show_risk_standing_words(config)}"

    def no_show_risk_standing_words(self, config=None):
        """Where a learned risk stands in the clinic ("in this clinic's highest fifth"); "" for a typed one."""
        return risk_scale.standing_words(self.no_show_risk_standing, config) if self.risk_is_learned else ""

    def risk_on_ranking_scale(self):
        if self.risk_is_learned:
            return risk_scale.ranking_risk_of_standing(self.no_show_risk_standing)
        return self.no_show_risk

    @property
    def full_name(self):
        return str(self)

    @property
    def can_email(self):
        return bool(self.email) and not self.email_opt_out

    @property
    def can_text(self):
        return bool(self.phone) and self.sms_consent

    @property
    def is_reachable(self):
        """By a channel they consented to (REACHABLE above): bookable, and told."""
        return self.can_email or self.can_text

    def message_channels(self):
        """How a message reaches this patient now: the channels they prefer among those open to
        them, or, when none of those is, the one that is (email first).

        A patient who prefers texts but cannot get one (no consent, no number) still gets
        the email; one who opted out of email but consented to texts gets the text: nobody
        reachable goes silent by accident.
        """
        wanted = {self.Channel.EMAIL: [Channel.EMAIL], self.Channel.SMS: [Channel.SMS]}.get(
            self.preferred_channel, [Channel.EMAIL, Channel.SMS]
        )
        open_to_them = [
            channel for channel, can in ((Channel.EMAIL, self.can_email), (Channel.SMS, self.can_text)) if can
        ]
        return [channel for channel in wanted if channel in open_to_them] or open_to_them[:1]

    def set_sms_consent(self, consent, source, now=None):
        """Record consent to texts given or withdrawn (a STOP reply, the self-service page, staff)."""
        self.sms_consent = consent
        self.sms_consent_at = now or timezone.now()
        self.sms_consent_source = source
        self.save(update_fields=["sms_consent", "sms_consent_at", "sms_consent_source"])

    def opt_out_of_email(self):
        self.email_opt_out = True
        self.save(update_fields=["email_opt_out"])

    def check_change_by_staff(self, *, email_opt_out=None, sms_consent=None):
        """Staff and integrators (the admin, the API) may record an opt-out, never undo the
        patient's own: only the patient takes it back, on their self-service page (or, for
        texts, by replying START). Raises ValidationError naming the field."""
        errors = {}
        if self.pk and self.email_opt_out and email_opt_out is False:
            errors["email_opt_out"] = EMAIL_OPT_OUT_IS_THE_PATIENTS
        withdrew = self.sms_consent_source in (self.ConsentSource.PATIENT, self.ConsentSource.SMS)
        if self.pk and not self.sms_consent and withdrew and sms_consent:
            errors["sms_consent"] = SMS_OPT_OUT_IS_THE_PATIENTS
        if errors:
            raise ValidationError(errors)

    def pause_offers(self, now=None):
        self.offers_paused_at = now or timezone.now()
        self.save(update_fields=["offers_paused_at"])

    def resume_offers(self, now=None):
        self.offers_paused_at = None
        self.offers_resumed_at = now or timezone.now()
        self.save(update_fields=["offers_paused_at", "offers_resumed_at"])

    def set_no_show_risk(self, risk, source):
        """A risk typed by staff or sent by an integrator; the model leaves it alone from now on."""
        self.no_show_risk = risk
        self.no_show_risk_source = source

    def hand_risk_to_model(self):
        """Let the model set the risk again; its latest estimate applies at once when there is one."""
        self.no_show_risk_source = self.RiskSource.MODEL
        if self.no_show_risk_model is not None:
            self.no_show_risk = self.no_show_risk_model


EMAIL_OPT_OUT_IS_THE_PATIENTS = (
    "Only the patient can take back their email opt-out, on their self-service page (the link in any message "
    "from the clinic)."
)
SMS_OPT_OUT_IS_THE_PATIENTS = (
    "The patient withdrew consent to texts; only they can give it again, by replying START or on their "
    "self-service page."
)


class OutboundEmail(models.Model):
    """Every message the clinic sends, email or text, kept whatever happens to it (docs/reference.md, Messages)."""

    Channel = Channel

    class Kind(models.TextChoices):
        REASSIGNMENT_OFFER = "reassignment_offer", "Reassignment offer"
        BACKFILL_CONFIRMATION = "backfill_confirmation", "Backfill confirmation"
        WAITLIST_NOTICE = "waitlist_notice", "Waitlist notice"
        DECLINE_CONFIRMATION = "decline_confirmation", "Decline confirmation"
        ACCEPT_CONFIRMATION = "accept_confirmation", "Accept confirmation"
        CANCEL_CONFIRMATION = "cancel_confirmation", "Cancellation confirmation"
        CLINIC_CANCELLATION = "clinic_cancellation", "Cancelled by the clinic"
        APPOINTMENT_MOVED = "appointment_moved", "Moved by the clinic"
        SLOT_OFFER = "slot_offer", "Slot offer"
        SLOT_OFFER_TAKEN = "slot_offer_taken", "Slot offer taken"

    class Status(models.TextChoices):
        QUEUED = "queued"
        # Claimed by a sender, which talks to the provider once the claim committed
        # (clinic/email.py); a claim older than SEND_CLAIM_MINUTES is retaken by the sweep.
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        DELIVERED = "delivered"
        BOUNCED = "bounced"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    # An email address, or a phone number in E.164 for a text.
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=200, blank=True)
    text_body = models.TextField()
    html_body = models.TextField(blank=True)
    appointment = models.ForeignKey(
        "scheduling.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="emails"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    esp_message_id = models.CharField(max_length=200, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_event_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["recipient", "channel", "-created_at"], name="message_latest_to_number"),
        ]
        verbose_name = "message"
        # A message's subject and body carry the patient's own links (cancel, self-service,
        # unsubscribe), which act as the patient: only staff who talk to patients read them;
        # others (integrators) see when, how and what kind (view_outboundemail).
        permissions = [("read_message_content", "Can read messages' subjects, bodies and links")]

    def __str__(self):
        return f"{self.get_kind_display()} to {self.recipient}"

    @property
    def is_text(self):
        return self.channel == Channel.SMS

    @property
    def can_retry(self):
        return self.attempts < settings.EMAIL_MAX_ATTEMPTS


def name_addressees(emails):
    """Staff read who a message went to by name (the messages page and the admin's list): the
    appointment's patient, or, for a message sent before any appointment existed (a slot
    offer), the patient at that address."""
    unbooked = {email.recipient for email in emails if email.appointment_id is None}
    by_address = {patient.email: patient for patient in Patient.objects.filter(email__in=unbooked)} if unbooked else {}
    for email in emails:
        email.addressee = email.appointment.patient if email.appointment_id else by_address.get(email.recipient)


class PendingJob(models.Model):
    """A job that drains a backlog, asked for and not started yet (clinic.queue.enqueue_unless_pending).

    Its row is the mark that stops a burst of requests enqueueing the job once each.
    """

    name = models.CharField(max_length=100, primary_key=True)
    requested_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} (asked for {self.requested_at:%H:%M:%S})"


class ClusterHeartbeat(models.Model):
    """What the watchdog (ops/watchdog.py) knows of one django-q2 cluster, by its queue's name.

    Times are the database's clock, so processes on several machines compare them alike.
    """

    cluster = models.CharField(max_length=100, primary_key=True)
    # When the watchdog last started the cluster's processes.
    started_at = models.DateTimeField(null=True, blank=True)
    # When one of its workers last finished a job (written at most once a second per worker).
    last_finished_at = models.DateTimeField(null=True, blank=True)
    # The watchdog's check job waiting on the queue since then; cleared once a worker runs it.
    probe_sent_at = models.DateTimeField(null=True, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    last_restart_at = models.DateTimeField(null=True, blank=True)
    last_restart_reason = models.CharField(max_length=200, blank=True)

    def __str__(self):
        return f"{self.cluster} ({self.restarts} restarts)"


class Event(models.Model):
    """A change an integrator cares about, written in the same transaction as the change
    itself: it exists if and only if the change committed (docs/reference.md, Events). `clinic.events.record`
    writes them; `clinic.webhooks` delivers them."""

    type = models.CharField(max_length=40)
    # What the event is about, e.g. "appointment:131": events of one object reach an
    # endpoint in the order they happened.
    subject = models.CharField(max_length=60)
    occurred_at = models.DateTimeField(default=timezone.now)
    payload = models.JSONField()

    class Meta:
        ordering = ["-id"]
        # Nothing is written back to an event once it is in: each endpoint's sender reads the
        # new ones from here by id (clinic/webhooks.py), past its WebhookProgress.
        indexes = [models.Index(fields=["subject", "id"])]

    def __str__(self):
        return f"{self.type} ({self.subject}) at {timezone.localtime(self.occurred_at):%Y-%m-%d %H:%M:%S}"

    @property
    def webhook_id(self):
        return f"evt_{self.pk}"


class RemembersWhetherAnyActive:
    """Whether any endpoint of the class listens, read at most every 5 s per process: a
    booking burst must not ask each time. An endpoint saved in this process resets it;
    elsewhere the sweep catches up. Each endpoint class remembers its own."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._any_active = {"checked_at": -10.0, "value": False}

    @classmethod
    def any_active(cls):
        now = time.monotonic()
        if now - cls._any_active["checked_at"] > 5:
            cls._any_active.update(checked_at=now, value=cls.objects.filter(active=True).exists())
        return cls._any_active["value"]

    @classmethod
    def forget_whether_any_active(cls):
        cls._any_active["checked_at"] = -10.0


class WebhookEndpointQuerySet(models.QuerySet):
    def visible_to(self, user):
        """An account's own endpoints; every endpoint for a clinic manager (the permission)."""
        if user.has_perm("clinic.manage_every_webhookendpoint"):
            return self
        return self.filter(owner=user) if user.is_authenticated else self.none()


class WebhookEndpoint(RemembersWhetherAnyActive, models.Model):
    """An integrator's URL that receives events, signed with its own secret (Standard Webhooks)."""

    url = models.URLField(max_length=500, validators=[outside_url])
    # The account that made it: an integrator sees and changes only its own. Empty for
    # endpoints made before endpoints had owners, which only clinic managers see.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_endpoints",
        editable=False,
    )
    events = models.JSONField(default=list, help_text='Event types, or ["*"] for all.')
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    # Since when every delivery to it failed; a day of that disables it.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    # A sender claims the endpoint while it sends, so its events go out one at a time, in order.
    claimed_until = models.DateTimeField(null=True, blank=True)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["url"]
        permissions = [("manage_every_webhookendpoint", "Can see and change every account's webhook endpoints")]

    def __str__(self):
        return self.description or self.url

    def save(self, *args, **kwargs):
        was_active = not self._state.adding and WebhookEndpoint.objects.filter(pk=self.pk, active=True).exists()
        super().save(*args, **kwargs)
        self.forget_whether_any_active()
        if self.active and not was_active:
            # Made, or ticked Active again: it gets the events from now on, as it got none
            # while it was off.
            WebhookProgress.start(self)

    def wants(self, event_type):
        return "*" in self.events or event_type in self.events


class WebhookProgress(models.Model):
    """How far an endpoint's sender has read the events (clinic/webhooks.py): every event up
    to `sent_through` is delivered, waiting in a pending delivery, or not for this endpoint.
    Events above it that are delivered have their delivered row: the mark only moves past
    events whose transactions have all ended, so one committing late is never skipped. Kept
    apart from the endpoint: the audit trail records every change of an endpoint's row."""

    endpoint = models.OneToOneField(
        WebhookEndpoint, on_delete=models.CASCADE, primary_key=True, related_name="progress"
    )
    sent_through = models.BigIntegerField(default=0)
    # Events from this moment on are for the endpoint: when it was made, or last ticked Active.
    since = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "webhook progress"

    def __str__(self):
        return f"{self.endpoint}: events through {self.sent_through}"

    @classmethod
    def start(cls, endpoint, now=None):
        """From now on. The mark starts below every event that may still be for it: one
        made an hour before `since`, whose transaction has long ended (events of one id or
        less were made earlier still). Reading back from the newest event by id stops there."""
        since = now or timezone.now()
        older = Event.objects.filter(occurred_at__lt=since - timedelta(hours=1)).order_by("-id").values_list("id")
        mark = older.first()
        cls.objects.update_or_create(
            endpoint=endpoint, defaults={"sent_through": mark[0] if mark else 0, "since": since}
        )


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    # No index of its own: the unique constraint and the sending index both lead with it,
    # and every delivery's insert and status change would pay for a third.
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The POST the receiver took, folded in: a delivery taken at its first try is this one
    # row, inserted delivered; each failed POST before it is a DeliveryAttempt.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-event_id", "endpoint_id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="one_delivery_per_endpoint_and_event")
        ]
        indexes = [models.Index(fields=["endpoint", "status", "event"])]

    def __str__(self):
        return f"{self.event.type} to {self.endpoint} ({self.get_status_display()})"

    def attempt_history(self):
        """Each POST of this delivery, newest first: the one the receiver took (folded into
        this row), then the failed ones."""
        attempts = list(self.attempt_log.all())
        if self.status_code is not None:
            taken = DeliveryAttempt(
                delivery=self,
                attempted_at=self.delivered_at,
                status_code=self.status_code,
                duration_ms=self.duration_ms or 0,
            )
            attempts.insert(0, taken)
        return attempts


class DeliveryAttempt(models.Model):
    """One failed POST to an endpoint: its status code or why no answer came, kept for the
    admin (the POST that succeeded is kept on its delivery, WebhookDelivery.attempt_history)."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # A class of failure ("connection refused", "timed out"), never the receiver's answer.
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-attempted_at", "-id"]

    def __str__(self):
        return f"{self.status_code or self.error} in {self.duration_ms} ms"


class IdempotentRequest(models.Model):
    """A POST made with an Idempotency-Key, and the answer it got (docs/reference.md, External ids).

    The same key from the same caller with the same body within a day answers that answer
    again and changes nothing; with another body, 422.
    """

    caller = models.CharField(max_length=64, help_text='The account that asked, as "user:<id>".')
    key = models.CharField(max_length=200)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    body_digest = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty while it is being handled.")
    response_body = models.BinaryField(blank=True, default=b"")
    content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["caller", "key"], name="one_request_per_caller_and_key")]

    def __str__(self):
        return f"{self.method} {self.path} ({self.key})"


class ShortLink(models.Model):
    """A code short enough for a text (`/l/<code>/`) standing for a signed patient link.

    It only forwards: the signed link it leads to still decides who may do what, and
    until when, so a guessed code gains nothing a link in an email would not.
    """

    code = models.CharField(max_length=12, unique=True)
    url = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"/l/{self.code}/"


class InboundText(models.Model):
    """A text a patient sent the clinic, and what it did; Twilio retries a webhook, so
    its MessageSid is unique and a retry is answered from here, not acted on again."""

    message_sid = models.CharField(max_length=64, unique=True)
    from_number = models.CharField(max_length=32)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_texts"
    )
    body = models.TextField(blank=True)
    outcome = models.CharField(max_length=40, blank=True)
    reply = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self):
        return f"{self.body[:30]!r} from {self.from_number}"


class ApiToken(models.Model):
    """A named key an integrator's system sends as `Authorization: Token <key>`.

    Only a digest of the key is kept: the key is shown once, when the token is made. A Clinic
    manager lists the tokens with their last use and revokes one by deleting it. (DRF's own
    one-token-per-account keys still work beside these.)
    """

    name = models.CharField(
        max_length=100, validators=[single_line], help_text='Which system uses it, e.g. "EHR sync".'
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="The account it acts as: its roles decide what the token may do.",
    )
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    # Tells these keys from DRF's (40 hex digits) before any query: one lookup per request.
    PREFIX = "bf_"
    # A use is written at most this often, so a busy integrator's requests do not each write.
    USE_RECORDED_EVERY = timedelta(minutes=1)

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self):
        return self.name

    @staticmethod
    def digest_of(key):
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name):
        """A new token and its key, which is not stored and cannot be shown again."""
        key = cls.PREFIX + secrets.token_hex(20)
        return cls.objects.create(user=user, name=name, digest=cls.digest_of(key)), key

    @classmethod
    def for_key(cls, key):
        if not key.startswith(cls.PREFIX):
            return None
        return cls.objects.select_related("user").filter(digest=cls.digest_of(key)).first()

    @property
    def key(self):
        # The throttles count per token by its `key` (clinic.access); the digest stands in.
        return self.digest

    def note_use(self, now=None):
        now = now or timezone.now()
        if self.last_used_at and now - self.last_used_at < self.USE_RECORDED_EVERY:
            return
        ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now
