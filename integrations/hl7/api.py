"""The HL7 endpoints and messages in the API (docs/hl7.md): Integrators manage where
Backfill's SIU messages go and read every message in and out."""

from django_filters import rest_framework as filters
from rest_framework import mixins, serializers, viewsets

from clinic.validators import single_line
from integrations.hl7.models import OUTBOUND_EVENTS, Hl7Endpoint, Hl7Message, address_refused


class Hl7EndpointSerializer(serializers.ModelSerializer):
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=OUTBOUND_EVENTS),
        allow_empty=False,
        help_text='SIU events the EHR takes, e.g. ["S12", "S13", "S15"].',
    )
    host = serializers.CharField(max_length=253, validators=[single_line])

    class Meta:
        model = Hl7Endpoint
        fields = ["id", *Hl7Endpoint.SETTINGS]
        read_only_fields = ["created_at"]

    def validate_port(self, port):
        if not 0 < port < 65536:
            raise serializers.ValidationError("A TCP port is 1 to 65535.")
        return port

    def validate(self, data):
        host = data.get("host", getattr(self.instance, "host", ""))
        port = data.get("port", getattr(self.instance, "port", 0))
        refused = address_refused(host, port)
        if refused:
            raise serializers.ValidationError({"host": refused})
        return data

    def validate_events(self, events):
        return [event for event in OUTBOUND_EVENTS if event in events]


class Hl7EndpointViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Hl7Endpoint.objects.order_by("id")
    serializer_class = Hl7EndpointSerializer
    filterset_fields = ["active", "host"]


class Hl7MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Hl7Message
        fields = ["id", *Hl7Message.SHOWN, "raw", "ack"]


class Hl7MessageFilter(filters.FilterSet):
    class Meta:
        model = Hl7Message
        fields = [
            "direction",
            "outcome",
            "message_type",
            "mrn",
            "merged_mrn",
            "appointment_ref",
            "appointment",
            "endpoint",
        ]


class Hl7MessageViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Hl7Message.objects.order_by("-id")
    serializer_class = Hl7MessageSerializer
    filterset_class = Hl7MessageFilter
