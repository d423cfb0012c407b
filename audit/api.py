"""`GET /api/audit-events/`: the trail, for Clinic managers (view_auditevent) and nobody else."""

from django_filters import rest_framework as filters
from rest_framework import mixins, permissions, serializers, viewsets

from audit.models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    patient = serializers.IntegerField(source="patient_id", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor", "channel", "action", "object_type", "object_id", "patient", "changes"]
        read_only_fields = fields


class AuditEventFilter(filters.FilterSet):
    patient = filters.NumberFilter(field_name="patient_id", help_text="Entries about this patient (their id).")
    object_type = filters.CharFilter(help_text='"appointment", "patient", "waitlist entry", "user"…')
    object_id = filters.CharFilter()
    actor = filters.CharFilter(
        field_name="actor", lookup_expr="icontains", help_text="Part of the actor's name (a username, a job's name)."
    )
    since = filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte", help_text="Entries at or after this time.")

    class Meta:
        model = AuditEvent
        fields = ["patient", "object_type", "object_id", "actor", "since"]


class ReadsTheTrail(permissions.BasePermission):
    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.has_perm("audit.view_auditevent"))


class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    queryset = AuditEvent.objects.order_by("-at", "-id")
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    permission_classes = [ReadsTheTrail]
