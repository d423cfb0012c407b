"""`GET /api/messages/`: every stored message, emails and texts, for integrators and auditors.

A message's subject and body carry the patient's own links, which act as the patient: for
an account that may not read them (clinic.access.reads_message_content: the Integrator
role) both are null, and the rest (kind, channel, status, times) is there as for everyone.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets

from audit.trail import RecordsReads
from clinic.access import reads_message_content
from clinic.api import ClinicDateTimeField
from clinic.models import OutboundEmail


class MessageSerializer(serializers.ModelSerializer):
    subject = serializers.SerializerMethodField(help_text="An email's subject; null unless your role reads content.")
    body = serializers.SerializerMethodField(
        help_text="A text's body, an email's plain text; null unless your role reads content (it holds the "
        "patient's links)."
    )
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

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_subject(self, message):
        return message.subject if self.context["shows_content"] else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_body(self, message):
        return message.text_body if self.context["shows_content"] else None


class MessageViewSet(RecordsReads, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = OutboundEmail.objects.order_by("-created_at", "-id")
    serializer_class = MessageSerializer
    filterset_fields = ["patient", "channel", "kind", "status"]
    audited_as, audited_patient = "message", "patient_id"

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "shows_content": reads_message_content(self.request.user)}
