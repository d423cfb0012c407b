"""Waitlist entries over the API (docs/reference.md, API).

Creating an entry (waitlist.actions.join_waitlist) is trigger 3: once committed it looks for open freed slots it fits.
Deleting one only marks it removed, so the history of who waited stays.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from clinic.actions import Via
from clinic.api import Conflict, ExternalIds, WeekdaysField
from clinic.models import Patient, Provider
from waitlist.actions import join_waitlist, leave_waitlist
from waitlist.models import WaitlistEntry


class WaitlistEntrySerializer(ExternalIds, serializers.ModelSerializer):
    external_id_relations = {"patient": Patient, "preferred_provider": Provider}
    available_days = WeekdaysField(required=False, help_text="Omitted: the patient's own days.")

    class Meta:
        model = WaitlistEntry
        fields = [
            "id",
            "patient",
            "specialty",
            "preferred_location",
            "preferred_provider",
            "available_days",
            "earliest_date",
            "latest_date",
            "reason",
            "status",
            "created_at",
        ]
        read_only_fields = ["status", "created_at"]
        # The one-waiting-entry rule is checked by WaitlistEntry.clean() below, in the
        # clinic's words, instead of DRF's generic unique-together message.
        validators = []
        extra_kwargs = {
            "preferred_location": {"help_text": "Omitted: the patient's preferred location."},
        }

    def validate(self, data):
        # The model's own rules (dates within the window and in order, provider's specialty,
        # one waiting entry per patient and specialty), checked on the entry as it will be saved.
        entry = self.entry_from(data)
        try:
            entry.check_date_window()
            entry.clean()
        except DjangoValidationError as error:
            raise serializers.ValidationError(serializers.as_serializer_error(error)) from error
        return data

    def create(self, validated_data):
        # A concurrent duplicate fails on the constraint: a 409.
        return join_waitlist(self.entry_from(validated_data), by=self.context["request"].user, channel=Via.API)

    @staticmethod
    def entry_from(data):
        given = {name: value for name, value in data.items() if name != "patient"}
        return WaitlistEntry.defaults_from_patient(data["patient"], **given)


class WaitlistEntryViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = WaitlistEntry.objects.order_by("created_at", "id")
    serializer_class = WaitlistEntrySerializer
    filterset_fields = ["status", "specialty", "patient"]

    def destroy(self, request, *args, **kwargs):
        entry = self.get_object()
        if (
            not leave_waitlist(entry, by=request.user, channel=Via.API)
            and entry.status != WaitlistEntry.Status.REMOVED
        ):
            raise Conflict(
                f"This waitlist entry is {entry.get_status_display().lower()}; only waiting entries can be removed."
            )
        return Response(status=status.HTTP_204_NO_CONTENT)
