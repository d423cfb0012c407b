from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from clinic import addresses
from clinic.models import Event, Location, Patient, Provider, RemembersWhetherAnyActive, Specialty
from clinic.validators import single_line
from scheduling.models import Appointment

# The SIU events Backfill sends (docs/hl7.md, "Outbound").
OUTBOUND_EVENTS = ["S12", "S13", "S15"]


class Hl7Message(models.Model):
    """Every HL7 message received or sent, kept for HL7_RETENTION_DAYS: the raw text, who
    sent it, what it was, what came of it and what it touched (docs/hl7.md).

    An inbound message is unique per sender and control id (MSH-10): a resent one is
    answered with the acknowledgement stored here and changes nothing.
    """

    class Direction(models.TextChoices):
        IN = "in", "Received"
        OUT = "out", "Sent"

    class Outcome(models.TextChoices):
        ACCEPTED = "AA", "Accepted (AA)"
        ERROR = "AE", "Error (AE)"
        REJECTED = "AR", "Rejected (AR)"
        PENDING = "pending", "Waiting to be sent"
        FAILED = "failed", "Gave up"

    direction = models.CharField(max_length=3, choices=Direction.choices)
    # Inbound: MSH-3^MSH-4 of the sender; outbound: the endpoint's name.
    sender = models.CharField(max_length=200)
    endpoint = models.ForeignKey(
        "Hl7Endpoint", null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    message_type = models.CharField("type", max_length=20, blank=True, help_text="MSH-9, e.g. SIU^S12.")
    control_id = models.CharField(max_length=200, blank=True, help_text="MSH-10.")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="MSH-7, when the sender made it.")
    received_at = models.DateTimeField("kept at", default=timezone.now, db_index=True)
    raw = models.TextField("message", help_text="Segments one a line.")
    ack = models.TextField("acknowledgement", blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    note = models.CharField(max_length=500, blank=True, help_text="What was done, or what was wrong.")
    # What it touched, also as the EHR names them, so a search finds a message whose
    # objects are gone or were never made.
    mrn = models.CharField("MRN", max_length=100, blank=True, db_index=True)
    appointment_ref = models.CharField("EHR appointment id", max_length=100, blank=True)
    patient = models.ForeignKey(Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # ADT^A40: the patient merged into `patient`, and its MRN (MRG-1) as it was.
    merged_mrn = models.CharField("merged MRN", max_length=100, blank=True, db_index=True)
    merged_patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="ADT^A40 only."
    )
    appointment = models.ForeignKey(
        Appointment, null=True, blank=True, on_delete=models.SET_NULL, related_name="hl7_messages"
    )
    # Outbound only: the event it tells of, its attempts and the next one.
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    # What the admin and the API show of a message, in this order (admin.py, api.py).
    SHOWN = (
        "direction",
        "sender",
        "endpoint",
        "message_type",
        "control_id",
        "sent_at",
        "received_at",
        "outcome",
        "note",
        "mrn",
        "appointment_ref",
        "patient",
        "appointment",
        "merged_mrn",
        "merged_patient",
        "attempts",
        "next_attempt_at",
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "HL7 message"
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "control_id"],
                condition=Q(direction="in") & ~Q(control_id=""),
                name="hl7_inbound_once_per_control_id",
            ),
            models.UniqueConstraint(
                fields=["endpoint", "event"], condition=Q(direction="out"), name="hl7_outbound_once_per_event"
            ),
        ]
        indexes = [
            # The newest message applied to an EHR appointment (in order, docs/hl7.md).
            models.Index(fields=["appointment_ref", "sent_at"], name="hl7_message_by_appointment"),
            models.Index(fields=["endpoint", "outcome", "id"], name="hl7_outbound_due"),
        ]

    def __str__(self):
        arrow = "from" if self.direction == self.Direction.IN else "to"
        return f"{self.message_type or 'Unreadable message'} {arrow} {self.sender} ({self.get_outcome_display()})"

    @property
    def segments(self):
        return self.raw.replace("\r", "\n").strip()


class Hl7CodeMapping(models.Model):
    """An EHR's code for a provider (AIP-3), location (AIL-3) or specialty (AIS-3) that is
    not the external id Backfill has for it (docs/hl7.md, "Code tables")."""

    class Kind(models.TextChoices):
        PROVIDER = "provider", "Provider (AIP-3)"
        LOCATION = "location", "Location (AIL-3)"
        SPECIALTY = "specialty", "Specialty (AIS-3)"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    code = models.CharField("EHR's code", max_length=100, validators=[single_line])
    provider = models.ForeignKey(Provider, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    specialty = models.ForeignKey(Specialty, null=True, blank=True, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["kind", "code"]
        verbose_name = "HL7 code"
        constraints = [models.UniqueConstraint(fields=["kind", "code"], name="hl7_one_mapping_per_code")]

    def __str__(self):
        return f"{self.code} → {self.target}"

    @property
    def target(self):
        return getattr(self, self.kind)

    def clean(self):
        chosen = [kind for kind in self.Kind.values if getattr(self, f"{kind}_id")]
        if chosen != [self.kind]:
            raise ValidationError(f"Choose the {self.kind} this code stands for, and nothing else.")


def address_refused(host, port):
    """Why the server must not connect to host:port (loopback, private...: clinic/addresses.py), or ""."""
    try:
        addresses.checked_addresses(host, port or 0, allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
    except addresses.AddressRefused as refused:
        return refused.reason
    except addresses.HostNotFound:
        return ""  # checked again before each connection
    return ""


class Hl7Endpoint(RemembersWhetherAnyActive, models.Model):
    """The EHR's inbound interface: Backfill's own bookings, moves and patients' cancellations
    are sent there as SIU messages over MLLP (docs/hl7.md, "Outbound")."""

    description = models.CharField(max_length=200, blank=True, validators=[single_line])
    host = models.CharField(max_length=253, validators=[single_line])
    port = models.PositiveIntegerField()
    sending_application = models.CharField(max_length=100, default="BACKFILL", validators=[single_line])
    sending_facility = models.CharField(max_length=100, blank=True, validators=[single_line])
    receiving_application = models.CharField(max_length=100, blank=True, validators=[single_line])
    receiving_facility = models.CharField(max_length=100, blank=True, validators=[single_line])
    events = models.JSONField(default=list, help_text='SIU events it takes, e.g. ["S12", "S13", "S15"].')
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Events up to this id have been looked at for this endpoint (outbound.fan_out).
    seen_through = models.BigIntegerField(default=0, editable=False)
    # One sender at a time, so its messages go out one at a time, in order.
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    # What an integrator or manager sets, in the admin and the API (admin.py, api.py).
    SETTINGS = (
        "description",
        "host",
        "port",
        "sending_application",
        "sending_facility",
        "receiving_application",
        "receiving_facility",
        "events",
        "active",
        "created_at",
    )

    class Meta:
        ordering = ["host", "port"]
        verbose_name = "HL7 endpoint"

    def __str__(self):
        return self.description or f"{self.host}:{self.port}"

    def save(self, *args, **kwargs):
        if self._state.adding and not self.seen_through:
            # From now on: an endpoint added today is not sent last year's bookings.
            self.seen_through = Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        super().save(*args, **kwargs)
        self.forget_whether_any_active()

    def clean(self):
        unknown = sorted(set(self.events or []) - set(OUTBOUND_EVENTS))
        if not isinstance(self.events, list) or unknown:
            raise ValidationError({"events": f"Choose among {', '.join(OUTBOUND_EVENTS)}."})
        refused = address_refused(self.host, self.port)
        if refused:
            raise ValidationError({"host": refused})

    def takes(self, event):
        return event in self.events
