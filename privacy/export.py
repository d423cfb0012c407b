"""Everything Backfill holds about one patient, as one FHIR R4 Bundle and a summary to read.

The patient and their appointments use the FHIR view's own mapping (integrations.fhir.api); the rest
has no resource of its own in that view and is mapped here: messages and texts as
Communication, waitlist entries and offers as Basic, the audit trail as AuditEvent.
"""

from django.utils import timezone

from audit.models import AuditEvent
from backfill.models import SlotOffer
from clinic.models import InboundText, OutboundEmail
from integrations.fhir.api import FHIR_VERSION, appointment_resource, patient_resource
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry

EXTENSION = "urn:backfill:"  # extension URLs for the facts FHIR has no element for
AUDIT_ACTIONS = {"create": "C", "view": "R", "update": "U", "delete": "D"}


class PatientRecord:
    """What the clinic holds about `patient`, read once for both forms of the export."""

    def __init__(self, patient):
        self.patient = patient
        self.appointments = list(
            Appointment.objects.filter(patient=patient)
            .select_related("patient", "provider__specialty", "provider__location")
            .order_by("start")
        )
        self.entries = list(WaitlistEntry.objects.filter(patient=patient).select_related("specialty").order_by("pk"))
        self.messages = list(OutboundEmail.objects.filter(patient=patient).order_by("created_at", "pk"))
        self.texts = list(InboundText.objects.filter(patient=patient).order_by("received_at", "pk"))
        self.offers = list(SlotOffer.objects.filter(patient=patient).select_related("slot").order_by("sent_at", "pk"))
        self.audit = list(AuditEvent.objects.filter(patient_id=patient.pk).order_by("at", "pk"))
        self.made_at = timezone.now()

    def bundle(self):
        resources = [
            patient_resource(self.patient),
            *(appointment_resource(appointment) for appointment in self.appointments),
            *(self._entry(entry) for entry in self.entries),
            *(self._message(message) for message in self.messages),
            *(self._text(text) for text in self.texts),
            *(self._offer(offer) for offer in self.offers),
            *(self._audit(entry) for entry in self.audit),
        ]
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": self.made_at.isoformat(),
            "meta": {
                "tag": [{"code": f"fhir-{FHIR_VERSION}", "display": "Everything Backfill holds about a patient"}]
            },
            "entry": [{"fullUrl": f"urn:backfill:{r['resourceType']}/{r['id']}", "resource": r} for r in resources],
        }

    def summary(self):
        patient = self.patient
        local = timezone.localtime
        lines = [
            f"Everything Backfill holds about {patient}, as of {local(self.made_at):%d %B %Y %H:%M}.",
            "",
            f"Email: {patient.email or '-'}   Phone: {patient.phone or '-'}",
            f"Texts: {'consented' if patient.sms_consent else 'no consent'}; "
            f"emails: {'opted out' if patient.email_opt_out else 'yes'}",
            "",
            f"Appointments ({len(self.appointments)}):",
            *(
                f"  {local(a.start):%d %b %Y %H:%M} with {a.provider.name}, {a.provider.location.name}: "
                f"{a.get_status_display().lower()}"
                for a in self.appointments
            ),
            f"Waitlist entries ({len(self.entries)}):",
            *(
                f"  {e.specialty.name}, since {local(e.created_at):%d %b %Y}: {e.get_status_display().lower()}"
                for e in self.entries
            ),
            f"Messages sent ({len(self.messages)}):",
            *(
                f"  {local(m.created_at):%d %b %Y %H:%M} {m.get_channel_display()}: {m.subject or m.kind}"
                for m in self.messages
            ),
            f"Texts received ({len(self.texts)}):",
            *(f"  {local(t.received_at):%d %b %Y %H:%M}: {t.body!r}" for t in self.texts),
            f"Offers of freed times ({len(self.offers)}):",
            *(f"  {local(o.slot.start):%d %b %Y %H:%M}: {o.get_status_display().lower()}" for o in self.offers),
            f"Who changed or looked at the record ({len(self.audit)} entries in the audit trail):",
            *(
                f"  {local(a.at):%d %b %Y %H:%M} {a.action} {a.object_type} by {a.actor} ({a.channel})"
                for a in self.audit
            ),
        ]
        return "\n".join(lines) + "\n"

    def _subject(self):
        return {"reference": f"Patient/{self.patient.pk}", "display": str(self.patient)}

    def _entry(self, entry):
        return {
            "resourceType": "Basic",
            "id": f"waitlist-{entry.pk}",
            "code": {"text": "Waitlist entry"},
            "subject": self._subject(),
            "created": timezone.localdate(entry.created_at).isoformat(),
            "extension": [
                {"url": f"{EXTENSION}specialty", "valueString": entry.specialty.name},
                {"url": f"{EXTENSION}status", "valueString": entry.status},
                {"url": f"{EXTENSION}reason", "valueString": entry.reason},
            ],
        }

    def _message(self, message):
        resource = {
            "resourceType": "Communication",
            "id": f"message-{message.pk}",
            "status": "completed" if message.sent_at else "in-progress",
            "subject": self._subject(),
            "recipient": [self._subject()],
            "medium": [{"text": message.get_channel_display()}],
            "payload": [{"contentString": message.text_body or message.subject or message.kind}],
        }
        if message.sent_at:
            resource["sent"] = message.sent_at.isoformat()
        return resource

    def _text(self, text):
        return {
            "resourceType": "Communication",
            "id": f"text-{text.pk}",
            "status": "completed",
            "subject": self._subject(),
            "sender": self._subject(),
            "received": text.received_at.isoformat(),
            "medium": [{"text": "Text message"}],
            "payload": [{"contentString": text.body or "(empty)"}],
        }

    def _offer(self, offer):
        return {
            "resourceType": "Basic",
            "id": f"offer-{offer.pk}",
            "code": {"text": "Offer of a freed appointment time"},
            "subject": self._subject(),
            "created": timezone.localdate(offer.sent_at).isoformat(),
            "extension": [
                {"url": f"{EXTENSION}slot-start", "valueDateTime": offer.slot.start.isoformat()},
                {"url": f"{EXTENSION}status", "valueString": offer.status},
                {"url": f"{EXTENSION}expires", "valueDateTime": offer.expires_at.isoformat()},
            ],
        }

    def _audit(self, entry):
        return {
            "resourceType": "AuditEvent",
            "id": f"audit-{entry.pk}",
            "type": {
                "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                "code": "rest",
                "display": "RESTful Operation",
            },
            "action": AUDIT_ACTIONS.get(entry.action, "E"),
            "recorded": entry.at.isoformat(),
            "agent": [{"who": {"display": entry.actor}, "requestor": True, "name": entry.channel}],
            "source": {"observer": {"display": "Backfill"}},
            "entity": [{"what": {"display": f"{entry.object_type} {entry.object_id}"}, "name": entry.object_type}],
        }
