"""Staff views of a patient's record, written beside the triggers' entries."""

from audit import context
from audit.models import AuditEvent


def record_view(object_type, object_id, patient_id):
    """One staff view of one record about a patient (a page, an explanation, an API read)."""
    record_views(object_type, [(object_id, patient_id)])


def record_views(object_type, records):
    """A page of records read at once (an API list): one entry per record, one INSERT."""
    who = context.current()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            action=AuditEvent.Action.VIEW,
            object_type=object_type,
            object_id=str(object_id),
            patient_id=patient_id,
            actor=who.actor,
            user_id=who.user,
            channel=who.channel,
        )
        for object_id, patient_id in records
    )


class RecordsReads:
    """A DRF view whose GET answers are reads of patients' records: each object it serializes
    is recorded as viewed (`audited_as`, and the attribute naming the patient)."""

    audited_as = "patient"
    audited_patient = "pk"

    def get_serializer(self, *args, **kwargs):
        if args and self.request.method == "GET":
            objects = args[0] if kwargs.get("many") else [args[0]]
            record_views(self.audited_as, [(obj.pk, getattr(obj, self.audited_patient)) for obj in objects])
        return super().get_serializer(*args, **kwargs)
