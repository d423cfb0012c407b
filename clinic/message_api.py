"""`GET /api/messages/`: every stored message, emails and texts, for integrators and auditors."""

from rest_framework import mixins, serializers, viewsets

from audit.trail import RecordsReads
from clinic.api import ClinicDateTimeField
from clinic.models import OutboundEmail


class MessageSerializer(serializers.ModelSerializer):
    body = serializers.CharField(source="text_body", read_only=True, help_text="A text's body, an email's plain text.")
    created_at = ClinicDateTimeField(read_only=True)
    sent_at = ClinicDateTimeField(read_only=True)

    class Meta:
        model = OutboundEmail
        fields = [
            "id",
            "kind",
            "channel",
            "patient",
            "recipient",
            "subject",
            "body",
            "appointment",
            "status",
            "attempts",
            "esp_message_id",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class MessageViewSet(RecordsReads, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = OutboundEmail.objects.order_by("-created_at", "-id")
    serializer_class = MessageSerializer
    filterset_fields = ["patient", "channel", "kind", "status"]
    audited_as, audited_patient = "message", "patient_id"
