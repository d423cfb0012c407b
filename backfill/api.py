"""Freed slots, their match logs and the backfill numbers over the API (docs/reference.md, API).

Staff actions call the same actions as the admin (`backfill.actions`: `retry_backfill`, `book_by_hand`);
their refusals (`BackfillError`) become 409s in `clinic.api.api_exception_handler`.
"""

from datetime import date, timedelta

from django.db.models import Prefetch
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.trail import record_views
from backfill.actions import book_by_hand, retry_backfill
from backfill.explained_waitlist import ExplainedWaitlist
from backfill.models import FreedSlot, MatchLog, SlotOffer
from backfill.stats import backfill_stats
from clinic.actions import Via
from clinic.api import ClinicDateField, ClinicDayFilter
from waitlist.models import WaitlistEntry

STATS_DEFAULT_DAYS = 30


class MatchLogSerializer(serializers.ModelSerializer):
    breakdown = serializers.DictField(child=serializers.IntegerField(), help_text="Points by rule.")

    class Meta:
        model = MatchLog
        fields = ["run", "rank", "patient", "score", "breakdown", "outcome"]


class FreedSlotSerializer(serializers.ModelSerializer):
    class Meta:
        model = FreedSlot
        fields = [
            "id",
            "provider",
            "start",
            "end",
            "appointment",
            "reason",
            "status",
            "freed_at",
            "filled_at",
            "filled_by",
        ]
        read_only_fields = fields


class SlotOfferSerializer(serializers.ModelSerializer):
    """An offer as integrators' events show it (offer mode)."""

    waitlist_entry = serializers.PrimaryKeyRelatedField(source="entry", read_only=True)

    class Meta:
        model = SlotOffer
        fields = [
            "id",
            "slot",
            "waitlist_entry",
            "patient",
            "score",
            "status",
            "sent_at",
            "expires_at",
            "responded_at",
        ]
        read_only_fields = fields


class FreedSlotDetailSerializer(FreedSlotSerializer):
    match_log = MatchLogSerializer(
        source="match_logs",
        many=True,
        read_only=True,
        help_text="Every candidate considered: latest run first, then rank.",
    )

    class Meta(FreedSlotSerializer.Meta):
        fields = [*FreedSlotSerializer.Meta.fields, "match_log"]


class ExplanationPatientSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="__str__")


class RulePointsSerializer(serializers.Serializer):
    rule = serializers.CharField()
    points = serializers.IntegerField()
    words = serializers.CharField(help_text='e.g. "available Wednesdays: +20"')


class ExplanationSerializer(serializers.Serializer):
    """One waiting entry judged against the slot by the rule table (docs/reference.md, Staff explanation)."""

    waitlist_entry = serializers.IntegerField(source="entry.pk")
    patient = ExplanationPatientSerializer(source="entry.patient")
    eligible = serializers.BooleanField()
    score = serializers.IntegerField()
    breakdown = serializers.SerializerMethodField()
    summary = serializers.CharField(
        help_text='The breakdown in one line: "no-show risk 0.85: +40 · available Wednesdays: +20".'
    )
    outcome = serializers.ChoiceField(choices=["booked", "ranked_lower", "left_out"])
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="Why the entry cannot be booked here, one sentence per rule."
    )

    def get_breakdown(self, explanation) -> list[dict]:
        return RulePointsSerializer(
            [
                {"rule": rule, "points": points, "words": explanation.words[rule]}
                for rule, points in explanation.breakdown.items()
            ],
            many=True,
        ).data


class BookEntrySerializer(serializers.Serializer):
    waitlist_entry = serializers.PrimaryKeyRelatedField(queryset=WaitlistEntry.objects.all())


class FreedSlotFilter(filters.FilterSet):
    date = ClinicDayFilter(
        field_name="start", help_text="Slots starting on this day at their location (its time zone)."
    )

    class Meta:
        model = FreedSlot
        fields = ["status", "provider"]


class FreedSlotViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = FreedSlot.objects.order_by("-freed_at", "-id")
    filterset_class = FreedSlotFilter
    action_verbs = {"retry": "change", "book": "change", "explain": "view"}

    def get_queryset(self):
        if self.action == "list":
            return self.queryset
        if self.action == "explain":
            return self.queryset.select_related("provider__location", "appointment")
        logs = MatchLog.objects.order_by("-run", "rank")
        return self.queryset.prefetch_related(Prefetch("match_logs", queryset=logs))

    def get_serializer_class(self):
        return FreedSlotSerializer if self.action == "list" else FreedSlotDetailSerializer

    def slot_detail(self, slot, status_code):
        return Response(FreedSlotDetailSerializer(self.get_queryset().get(pk=slot.pk)).data, status=status_code)

    @extend_schema(responses=ExplanationSerializer(many=True))
    @action(detail=True, methods=["get"])
    def explain(self, request, pk=None):
        """Every waiting entry of the slot's specialty, eligible first in the engine's order, with why."""
        page = self.paginate_queryset(ExplainedWaitlist(self.get_object()))
        record_views("waitlist entry", [(item.entry.pk, item.entry.patient_id) for item in page])
        return self.get_paginated_response(ExplanationSerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: FreedSlotDetailSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Run the backfill of this slot again (it found nobody, or failed)."""
        slot = retry_backfill(self.get_object(), by=request.user, channel=Via.API)
        return self.slot_detail(slot, status.HTTP_202_ACCEPTED)

    @extend_schema(request=BookEntrySerializer, responses={200: FreedSlotDetailSerializer})
    @action(detail=True, methods=["post"])
    def book(self, request, pk=None):
        """Book a chosen waitlist entry's patient into this slot by hand."""
        slot = self.get_object()
        form = BookEntrySerializer(data=request.data)
        form.is_valid(raise_exception=True)
        book_by_hand(slot, form.validated_data["waitlist_entry"], by=request.user, channel=Via.API)
        return self.slot_detail(slot, status.HTTP_200_OK)


class StatsQuerySerializer(serializers.Serializer):
    start_date = ClinicDateField(required=False, help_text=f"Default: {STATS_DEFAULT_DAYS - 1} days before end_date.")
    end_date = ClinicDateField(
        required=False, help_text="Default: today. Days are counted on the clinic's TIME_ZONE, for every location."
    )

    def validate(self, data):
        data.setdefault("end_date", timezone.localdate())
        data.setdefault("start_date", data["end_date"] - timedelta(days=STATS_DEFAULT_DAYS - 1))
        if data["end_date"] < data["start_date"]:
            raise serializers.ValidationError({"end_date": "The end date must not be before the start date."})
        return data


class StatsSerializer(serializers.Serializer):
    """Documents `backfill.stats.backfill_stats`."""

    start_date = serializers.DateField()
    end_date = serializers.DateField()
    freed = serializers.IntegerField()
    backfilled = serializers.IntegerField()
    filled_by_hand = serializers.IntegerField()
    no_match = serializers.IntegerField()
    open = serializers.IntegerField()
    failed = serializers.IntegerField()
    expired = serializers.IntegerField()
    fill_rate = serializers.FloatField()
    median_time_to_fill_seconds = serializers.FloatField(allow_null=True)
    p95_time_to_fill_seconds = serializers.FloatField(allow_null=True)
    revenue_recovered = serializers.IntegerField()
    slot_value = serializers.IntegerField()


class StatsView(APIView):
    required_permission = "backfill.view_dashboard"

    @extend_schema(
        parameters=[OpenApiParameter("start_date", date), OpenApiParameter("end_date", date)],
        responses=StatsSerializer,
    )
    def get(self, request):
        """Fill rate, time to fill and revenue recovered for slots freed between two dates."""
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(backfill_stats(query.validated_data["start_date"], query.validated_data["end_date"]))
