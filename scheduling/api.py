"""Appointments and the provider-unavailable workflow over the API (docs/reference.md, Reassignment, 8).

Appointments are created and cancelled only: a status never changes through a plain
update, and moving an appointment is cancel-and-book, so every change goes through
`scheduling.actions` like everywhere else.
"""

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from clinic.actions import Via
from clinic.api import ClinicDateField, ClinicDateTimeField, ClinicDayFilter, ExternalIds
from clinic.models import Patient, Provider
from clinic.validators import single_line
from scheduling import actions
from scheduling.models import Appointment, ProviderUnavailability


class AppointmentSerializer(ExternalIds, serializers.ModelSerializer):
    external_id_relations = {"patient": Patient, "provider": Provider}
    start = ClinicDateTimeField()
    end = ClinicDateTimeField()

    class Meta:
        model = Appointment
        fields = ["id", "patient", "provider", "start", "end", "status", "source", "cancel_reason", "external_id"]
        read_only_fields = ["status", "source", "cancel_reason"]

    def validate(self, data):
        try:
            Appointment.check_length(data["start"], data["end"])
        except DjangoValidationError as error:
            raise serializers.ValidationError(serializers.as_serializer_error(error)) from error
        return data

    def create(self, validated_data):
        return actions.book_appointment(**validated_data, by=self.context["request"].user, channel=Via.API)


class ProviderUnavailabilitySerializer(serializers.ModelSerializer):
    class Meta:
        model = ProviderUnavailability
        fields = ["id", "provider", "start_date", "end_date", "reason"]


class CancelledAppointmentSerializer(AppointmentSerializer):
    freed_slot = serializers.SerializerMethodField(help_text="The freed slot recorded for backfill, if any.")

    class Meta(AppointmentSerializer.Meta):
        fields = [*AppointmentSerializer.Meta.fields, "freed_slot"]

    def get_freed_slot(self, appointment) -> int | None:
        try:
            return appointment.freed_slot.pk
        except ObjectDoesNotExist:  # too soon, or the provider is away: nothing to backfill
            return None


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, validators=[single_line])


class AppointmentFilter(filters.FilterSet):
    date = ClinicDayFilter(
        field_name="start", help_text="Appointments starting on this day at their location (its time zone)."
    )
    start_after = filters.IsoDateTimeFilter(field_name="start", lookup_expr="gte")
    start_before = filters.IsoDateTimeFilter(field_name="start", lookup_expr="lt")

    class Meta:
        model = Appointment
        fields = ["provider", "patient", "status", "source", "external_id"]


class AppointmentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    queryset = Appointment.objects.order_by("start", "id")
    serializer_class = AppointmentSerializer
    filterset_class = AppointmentFilter
    action_verbs = {"cancel": "change"}

    @extend_schema(request=CancelSerializer, responses=CancelledAppointmentSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel through the same action as every cancellation: the patient is told, the slot backfilled."""
        appointment = self.get_object()
        form = CancelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        actions.cancel_appointment(appointment, by=request.user, channel=Via.API, reason=form.validated_data["reason"])
        return Response(CancelledAppointmentSerializer(appointment).data)


class TriggerWorkflowSerializer(ExternalIds, serializers.Serializer):
    external_id_relations = {"provider_id": Provider}
    trigger_type = serializers.ChoiceField(choices=["provider_unavailable"])
    provider_id = serializers.PrimaryKeyRelatedField(queryset=Provider.objects.all())
    reason = serializers.CharField(max_length=200, validators=[single_line])
    start_date = ClinicDateField()
    end_date = ClinicDateField()

    def validate(self, data):
        if data["end_date"] < data["start_date"]:
            raise serializers.ValidationError({"end_date": "The end date must not be before the start date."})
        return data


class WorkflowSummarySerializer(serializers.Serializer):
    """What the workflow did; documents `WorkflowSummary.as_dict()`."""

    unavailability = serializers.IntegerField()
    provider = serializers.IntegerField()
    start_date = serializers.DateField()
    end_date = serializers.DateField()
    affected = serializers.IntegerField()
    reassigned = serializers.ListField(child=serializers.DictField(), help_text="One object per appointment moved.")
    waitlisted = serializers.ListField(child=serializers.DictField(), help_text="One object per patient waitlisted.")
    skipped = serializers.ListField(child=serializers.DictField(), help_text="One object per appointment left alone.")


class TriggerWorkflowView(APIView):
    required_permission = "scheduling.reassign_patients"

    @extend_schema(request=TriggerWorkflowSerializer, responses={201: WorkflowSummarySerializer})
    def post(self, request):
        """Mark a provider unavailable: their patients are reassigned or waitlisted (docs/reference.md)."""
        form = TriggerWorkflowSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        summary = actions.mark_provider_unavailable(
            data["provider_id"],
            data["start_date"],
            data["end_date"],
            data["reason"],
            by=request.user,
            channel=Via.API,
        )
        return Response(summary.as_dict(), status=status.HTTP_201_CREATED)
