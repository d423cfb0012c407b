"""Webhook endpoints and their deliveries in the API (docs/reference.md, Events)."""

from django.db import transaction
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from clinic.api import Conflict
from clinic.events import EVENT_TYPES
from clinic.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from clinic.validators import outside_url, single_line
from clinic.webhooks import new_secret, resend

# What an endpoint may subscribe to: event types, or "*" for all (its schema's EventsEnum).
SUBSCRIBABLE = ["*", *EVENT_TYPES]


class WebhookEndpointSerializer(serializers.ModelSerializer):
    url = serializers.URLField(
        max_length=500,
        validators=[outside_url],
        help_text="Where events are POSTed (https in production); never an internal address, nor credentials.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=SUBSCRIBABLE),
        allow_empty=False,
        help_text='Event types to receive, or ["*"] for all.',
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, validators=[single_line])
    owner = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        help_text="The account that made it; only it and clinic managers see it.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "events",
            "active",
            "description",
            "owner",
            "created_at",
            "failing_since",
            "disabled_reason",
        ]
        read_only_fields = ["owner", "created_at", "failing_since", "disabled_reason"]

    def validate_events(self, events):
        return ["*"] if "*" in events else sorted(set(events), key=EVENT_TYPES.index)


class CreatedWebhookEndpointSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="The signing secret, shown this once: keep it.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookEndpointViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = WebhookEndpoint.objects.order_by("id")
    serializer_class = WebhookEndpointSerializer

    def get_queryset(self):
        # An integrator sees and changes its own endpoints; another's answers 404.
        return super().get_queryset().visible_to(self.request.user)

    @extend_schema(responses={201: CreatedWebhookEndpointSerializer})
    def create(self, request, *args, **kwargs):
        """Subscribe a URL; the answer carries its signing secret, this once."""
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        endpoint = form.save(secret=new_secret(), owner=request.user)
        return Response(CreatedWebhookEndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["attempted_at", "status_code", "error", "duration_ms"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="event.webhook_id", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)
    occurred_at = serializers.DateTimeField(source="event.occurred_at", read_only=True)
    # Each POST, newest first; the one the receiver took is kept on the delivery itself.
    attempt_log = DeliveryAttemptSerializer(source="attempt_history", many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "event_id",
            "event_type",
            "occurred_at",
            "status",
            "attempts",
            "next_attempt_at",
            "delivered_at",
            "attempt_log",
        ]


def visible_endpoints(request):
    return WebhookEndpoint.objects.visible_to(request.user) if request else WebhookEndpoint.objects.none()


class WebhookDeliveryFilter(filters.FilterSet):
    event_type = filters.ChoiceFilter(field_name="event__type", choices=[(name, name) for name in EVENT_TYPES])
    # Another account's endpoint answers as one that does not exist.
    endpoint = filters.ModelChoiceFilter(queryset=visible_endpoints)

    class Meta:
        model = WebhookDelivery
        fields = ["endpoint", "status"]


class WebhookDeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = (
        WebhookDelivery.objects.select_related("event")
        .prefetch_related("attempt_log")
        .order_by("-event_id", "endpoint_id")
    )
    serializer_class = WebhookDeliverySerializer
    filterset_class = WebhookDeliveryFilter

    def get_queryset(self):
        return super().get_queryset().filter(endpoint__in=WebhookEndpoint.objects.visible_to(self.request.user))

    action_verbs = {"resend": "change"}

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        """Send a failed delivery again, with the same webhook-id (receivers dedupe on it)."""
        delivery = self.get_object()
        with transaction.atomic():
            if not resend(WebhookDelivery.objects.filter(pk=delivery.pk)):
                raise Conflict(
                    f"This delivery is {delivery.get_status_display().lower()}; only failed ones are re-sent."
                )
        delivery.refresh_from_db()
        return Response(self.get_serializer(delivery).data, status=status.HTTP_202_ACCEPTED)
