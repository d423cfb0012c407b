"""The integrator API's shared pieces (docs/reference.md, API), and the practice's own resources.

Every app keeps its serializers and viewsets in its own `api.py`; this module holds what
they share: weekday lists, the clinic-day filter, and the one place that turns a domain
refusal into a 409 so no endpoint answers 500 for a conflict.
"""

import logging
from collections.abc import Mapping
from datetime import UTC
from functools import partial

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Q
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler

from audit.trail import RecordsReads
from clinic.exceptions import DomainError
from clinic.fields import WEEKDAYS, mask_to_weekdays, weekdays_to_mask
from clinic.models import InsurancePlan, Location, Patient, Provider, Specialty, day_bounds

log = logging.getLogger("clinic")


class Conflict(APIException):
    status_code = 409
    default_detail = "This request conflicts with the current state of the schedule."
    default_code = "conflict"


def api_exception_handler(exc, context):
    """Domain refusals become 409s with the domain's own message; never a 500."""
    if isinstance(exc, DomainError):
        exc = Conflict(str(exc))
    elif isinstance(exc, IntegrityError):
        # A constraint caught what the checks before it could not see: a concurrent write.
        log.warning("api.integrity_error view=%s error=%s", type(context.get("view")).__name__, exc)
        exc = Conflict("This conflicts with a change saved at the same time; reload and try again.")
    elif isinstance(exc, DjangoValidationError):
        exc = serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    return exception_handler(exc, context)


@csrf_exempt  # it changes nothing, and CSRF's own refusal would be an HTML page
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in JSON like the rest of the API."""
    return JsonResponse({"detail": "Not found."}, status=404)


class WeekdaysField(serializers.ListField):
    """Lowercase three-letter day names; answered in week order without repeats, as stored."""

    child = serializers.ChoiceField(choices=WEEKDAYS)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", len(WEEKDAYS))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return mask_to_weekdays(weekdays_to_mask(super().to_internal_value(data)))


# Dates the clinic books and reports on. Outside them a date means a typo, and time zones
# had odd local-mean-time offsets (New York: -04:56:02) that ISO 8601 cannot write.
CLINIC_YEARS = (2000, 2099)
OUTSIDE_CLINIC_YEARS = f"Dates must be in the years {CLINIC_YEARS[0]} to {CLINIC_YEARS[1]}."


def within_clinic_years(value):
    if not CLINIC_YEARS[0] <= value.year <= CLINIC_YEARS[1]:
        raise serializers.ValidationError(OUTSIDE_CLINIC_YEARS)


class ClinicDateTimeField(serializers.DateTimeField):
    def __init__(self, **kwargs):
        super().__init__(validators=[within_clinic_years], **kwargs)


class ClinicDateField(serializers.DateField):
    def __init__(self, **kwargs):
        super().__init__(validators=[within_clinic_years], **kwargs)


class ClinicDayFilter(filters.DateFilter):
    """Datetimes falling on one calendar day of their own location (docs/reference.md, Time zones): `?date=` at a
    Los Angeles site is midnight to midnight there, at a New York one in New York, so one
    filter across the network gives each site's day. `location_field` leads to the location."""

    def __init__(self, *args, location_field="provider__location", **kwargs):
        super().__init__(*args, **kwargs)
        self.location_field = location_field

    def filter(self, queryset, value):
        if value is None:
            return queryset
        try:
            on_the_day = Location.objects.on_their_clocks(self.location_field, partial(self.during, value))
        except OverflowError:  # a day at the very edge of the calendar holds no appointments
            return queryset.none()
        return queryset.filter(on_the_day)

    def during(self, day, zone):
        start, end = (moment.astimezone(UTC) for moment in day_bounds(day, day, zone))
        return Q(**{f"{self.field_name}__gte": start, f"{self.field_name}__lt": end})


# Integrators list, read, create and update the practice's records; nothing is deleted
# through the API because appointments and history point at them.
class RecordViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    pass


class ExternalIds:
    """A serializer mixin for integrators' own ids (docs/reference.md, Events).

    `external_id` (unique when set; blank means none) is a field of the record, and each
    related record in `external_id_relations` can be given by its id or by its external id
    (`patient` or `patient_external_id`), so an EHR needs none of Backfill's ids.
    """

    external_id_relations = {}  # field name -> model

    def get_fields(self):
        fields = super().get_fields()
        for name, model in self.external_id_relations.items():
            fields[external_name(name)] = serializers.CharField(
                write_only=True,
                required=False,
                max_length=100,
                help_text=f"Instead of `{name}`: the {model._meta.verbose_name}'s external id.",
            )
        return fields

    def validate_external_id(self, value):
        return value or None

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)  # DRF's own "invalid data" error
        data = {**data}
        for name, model in self.external_id_relations.items():
            external_id = data.get(external_name(name))
            # A NUL is left to the field's own validation (a 400): PostgreSQL refuses it in a query.
            if (
                isinstance(external_id, str)
                and external_id
                and "\x00" not in external_id
                and data.get(name) in (None, "")
            ):
                found = model.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
                if found is None:
                    raise serializers.ValidationError(
                        {external_name(name): [f"No {model._meta.verbose_name} has the external id '{external_id}'."]}
                    )
                data[name] = found
        value = super().to_internal_value(data)
        for name in self.external_id_relations:
            value.pop(external_name(name), None)
        return value


def external_name(field):
    """patient -> patient_external_id; provider_id -> provider_external_id."""
    return f"{field.removesuffix('_id')}_external_id"


class LocationSerializer(ExternalIds, serializers.ModelSerializer):
    class Meta:
        model = Location
        fields = ["id", "name", "external_id", "time_zone"]


class InsurancePlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = InsurancePlan
        fields = ["id", "name", "payer"]


class SpecialtySerializer(serializers.ModelSerializer):
    class Meta:
        model = Specialty
        fields = ["id", "name", "external_id"]


class ProviderSerializer(ExternalIds, serializers.ModelSerializer):
    external_id_relations = {"location": Location}

    class Meta:
        model = Provider
        fields = ["id", "name", "email", "specialty", "location", "active", "external_id", "accepted_insurance_plans"]
        extra_kwargs = {"accepted_insurance_plans": {"required": False, "help_text": "Plan ids; empty: every plan."}}


RISK_OUT_OF_RANGE = "The no-show risk must be between 0.0 and 1.0."


class PatientSerializer(ExternalIds, serializers.ModelSerializer):
    external_id_relations = {"preferred_location": Location}
    sms_consent_source = serializers.CharField(read_only=True, help_text="Who gave or withdrew consent to texts last.")
    available_days = WeekdaysField(required=False)
    no_show_risk = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        error_messages={"min_value": RISK_OUT_OF_RANGE, "max_value": RISK_OUT_OF_RANGE},
    )
    no_show_risk_standing = serializers.SerializerMethodField(
        help_text="For a risk the no-show model set (source model): the share of the clinic's patients it rates "
        "at or below this one, which the backfill judges a learned risk by (by default 0.5 or more: may be booked; "
        "0.8 or more: the highest fifth, the most points). Null for a risk typed by staff or sent by an integrator."
    )

    class Meta:
        model = Patient
        fields = [
            "id",
            "first_name",
            "last_name",
            "email",
            "phone",
            "preferred_location",
            "available_days",
            "no_show_risk",
            "no_show_risk_source",
            "no_show_risk_standing",
            "email_opt_out",
            "external_id",
            "insurance_plan",
            "preferred_channel",
            "sms_consent",
            "sms_consent_at",
            "sms_consent_source",
            "offers_paused_at",
            "preferred_language",
        ]
        read_only_fields = ["no_show_risk_source", "sms_consent_at", "offers_paused_at"]
        extra_kwargs = {
            "preferred_language": {
                "help_text": 'The language the patient reads, an ISO 639 code ("es", "es-MX", "spa") or its name; '
                "empty, or one the clinic does not write, reads the clinic's default (docs/reference.md, Languages)."
            }
        }

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_no_show_risk_standing(self, patient):
        return patient.no_show_risk_standing if patient.risk_is_learned else None

    def validate(self, attrs):
        # docs/reference.md, No-show model: a risk an integrator sends is theirs; the no-show model leaves it alone.
        if "no_show_risk" in attrs:
            attrs["no_show_risk_source"] = Patient.RiskSource.API
        if self.instance is not None:  # an opt-out is only the patient's to undo
            self.instance.check_change_by_staff(
                email_opt_out=attrs.get("email_opt_out"), sms_consent=attrs.get("sms_consent")
            )
        # Consent to texts is kept with when and by whom it changed.
        if "sms_consent" in attrs and (self.instance is None or attrs["sms_consent"] != self.instance.sms_consent):
            attrs["sms_consent_at"] = timezone.now()
            attrs["sms_consent_source"] = Patient.ConsentSource.API
        return attrs


class LocationViewSet(RecordViewSet):
    queryset = Location.objects.order_by("name", "id")
    serializer_class = LocationSerializer
    filterset_fields = ["external_id"]


class InsurancePlanViewSet(RecordViewSet):
    queryset = InsurancePlan.objects.order_by("payer", "name", "id")
    serializer_class = InsurancePlanSerializer
    filterset_fields = ["payer"]


class SpecialtyViewSet(RecordViewSet):
    queryset = Specialty.objects.order_by("name", "id")
    serializer_class = SpecialtySerializer


class ProviderViewSet(RecordViewSet):
    queryset = Provider.objects.order_by("name", "id")
    serializer_class = ProviderSerializer
    filterset_fields = ["specialty", "location", "active", "external_id"]

    def get_queryset(self):
        return super().get_queryset().prefetch_related("accepted_insurance_plans")


class PatientViewSet(RecordsReads, RecordViewSet):
    queryset = Patient.objects.order_by("last_name", "first_name", "id")
    serializer_class = PatientSerializer
    filterset_fields = ["preferred_location", "email", "external_id", "insurance_plan"]


ERROR_SCHEMA = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
FIELD_ERRORS_SCHEMA = {
    "type": "object",
    "description": 'Each bad field (or "non_field_errors", or "detail") with its messages.',
    "additionalProperties": True,
}
WRITE_METHODS = {"post", "put", "patch", "delete"}
IDEMPOTENCY_KEY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 200},
    "description": (
        "Retrying with the same key and body within a day answers the first answer again and changes nothing."
    ),
}


def document_error_responses(result, generator, request, public):
    """Schema hook: the errors every endpoint can answer, so integrators (and the fuzz test)
    know the shape of a refusal: 401/403 without staff credentials, 404 for an unknown id or
    page (DRF's pagination), 400 for bad input and 409 when a write conflicts with the schedule."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas["FieldErrors"] = FIELD_ERRORS_SCHEMA
    for operations in result["paths"].values():
        for method, operation in operations.items():
            # 400 on every operation: a NUL anywhere in the address is refused (clinic/input_limits.py)
            errors = {"400": "Invalid input.", "401": "Not authenticated.", "403": "Not staff.", "404": "Not found."}
            if method in WRITE_METHODS:
                errors["409"] = "Conflicts with the schedule; the message says why."
            if method == "post":
                errors["400"] = "Invalid input (or an invalid Idempotency-Key)."
                errors["422"] = "This Idempotency-Key was used for another request."
                operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY_PARAMETER)
            for code, description in errors.items():
                name = "FieldErrors" if code == "400" else "Error"
                operation["responses"].setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                    },
                )
    return result
