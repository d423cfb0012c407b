"""A FHIR R4 view of the schedule under /fhir/, read and search only (docs/reference.md, FHIR).

Health IT speaks FHIR: an EHR reads the practice (Patient, Practitioner, Location), each
provider's Schedule, its Slots (free: open freed slots; busy-unavailable: the provider's
absences) and Appointments, with the same authentication and permissions as the API.
Backfill's own ids are the resources' ids; an external id set by an integrator appears as an
identifier. Resources are plain dicts in FHIR's JSON; the tests validate every one with
the fhir.resources library.

A search filters, sorts, counts and pages in SQL: a page reads `_count` rows (one more, to
know whether a next page follows) and `total` is one COUNT, so a search costs what the API's
list does at any history size. As FHIR's search rules ask, a parameter the server does not
know is ignored (and left out of the `self` link) unless the client sends
`Prefer: handling=strict` (docs/integrators.md, "FHIR").
"""

import re
from datetime import date
from functools import partial
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Q
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from backfill.models import FreedSlot
from clinic.access import ModelPermissions
from clinic.models import Location, Patient, Provider, day_bounds
from scheduling.models import Appointment, ProviderUnavailability

FHIR_VERSION = "4.0.1"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
LAST_PAGE = 1_000_000  # keeps the SQL offset a number every database takes
APPOINTMENT_STATUS = {
    Appointment.Status.SCHEDULED: "booked",
    Appointment.Status.CONFIRMED: "booked",
    Appointment.Status.OFFERED: "pending",  # moved by the clinic; the patient may still decline
    Appointment.Status.CANCELLED: "cancelled",
    Appointment.Status.COMPLETED: "fulfilled",
    Appointment.Status.NO_SHOW: "noshow",
}
SEARCH_PARAMETERS = {
    "Patient": ["identifier"],
    "Practitioner": ["identifier"],
    "Location": ["identifier"],
    "Schedule": ["actor"],
    "Slot": ["schedule", "start", "status"],
    "Appointment": ["patient", "practitioner", "date", "status", "identifier"],
}
# What every search takes besides its resource's own parameters: the page size, whether to
# count (`_total=none` spares the COUNT), `_summary=count` for the count alone, and the page.
RESULT_PARAMETERS = ("_count", "_total", "_summary", "page")
# Backfill's ids are ASCII digits; str.isdigit() also passes "²", which int() refuses.
ID = re.compile(r"[0-9]{1,18}")


class FhirRenderer(JSONRenderer):
    media_type = "application/fhir+json"
    format = "fhir"


class SearchError(Exception):
    pass


def instant(value, location):
    """FHIR instant: ISO 8601 with the offset of the location's clock then (docs/reference.md, Time zones)."""
    return location.local(value).isoformat()


def identifiers(obj):
    external_id = getattr(obj, "external_id", None)
    return [{"system": settings.FHIR_IDENTIFIER_SYSTEM, "value": external_id}] if external_id else []


def with_identifiers(resource, obj):
    found = identifiers(obj)
    return {**resource, "identifier": found} if found else resource


def outcome(status, severity, code, text):
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": text}]}
    return Response(body, status=status)


# --- Resources -----------------------------------------------------------------------------


def patient_resource(patient):
    telecom = [{"system": "email", "value": patient.email}]
    if patient.phone:
        telecom.append({"system": "phone", "value": str(patient.phone)})
    return with_identifiers(
        {
            "resourceType": "Patient",
            "id": str(patient.pk),
            "active": True,
            "name": [{"family": patient.last_name, "given": [patient.first_name]}],
            "telecom": telecom,
        },
        patient,
    )


def practitioner_resource(provider):
    return with_identifiers(
        {
            "resourceType": "Practitioner",
            "id": str(provider.pk),
            "active": provider.active,
            "name": [{"text": provider.name}],
            "telecom": [{"system": "email", "value": provider.email}],
        },
        provider,
    )


def location_resource(location):
    resource = {"resourceType": "Location", "id": str(location.pk), "status": "active", "name": location.name}
    if location.address:
        resource["address"] = {"text": location.address}
    return with_identifiers(resource, location)


def schedule_resource(provider):
    """One Schedule per provider: their bookable time at their location."""
    return {
        "resourceType": "Schedule",
        "id": str(provider.pk),
        "active": provider.active,
        "serviceType": [{"text": provider.specialty.name}],
        "actor": [
            {"reference": f"Practitioner/{provider.pk}", "display": provider.name},
            {"reference": f"Location/{provider.location_id}", "display": provider.location.name},
        ],
    }


def free_slot_resource(slot):
    return {
        "resourceType": "Slot",
        "id": f"freed-{slot.pk}",
        "status": "free",
        "schedule": {"reference": f"Schedule/{slot.provider_id}"},
        "start": instant(slot.start, slot.provider.location),
        "end": instant(slot.end, slot.provider.location),
        "comment": "Freed by a cancellation; Backfill offers it to the waitlist.",
    }


def absence_slot_resource(absence):
    location = absence.provider.location
    start, end = location.day_bounds(absence.start_date, absence.end_date)  # whole days at the provider's site
    return {
        "resourceType": "Slot",
        "id": f"absence-{absence.pk}",
        "status": "busy-unavailable",
        "schedule": {"reference": f"Schedule/{absence.provider_id}"},
        "start": instant(start, location),
        "end": instant(end, location),
        **({"comment": absence.reason} if absence.reason else {}),
    }


def appointment_resource(appointment):
    participant_status = "needs-action" if appointment.status == Appointment.Status.OFFERED else "accepted"
    resource = {
        "resourceType": "Appointment",
        "id": str(appointment.pk),
        "status": APPOINTMENT_STATUS[appointment.status],
        "start": instant(appointment.start, appointment.provider.location),
        "end": instant(appointment.end, appointment.provider.location),
        "serviceType": [{"text": appointment.provider.specialty.name}],
        "participant": [
            {
                "actor": {"reference": f"Patient/{appointment.patient_id}", "display": str(appointment.patient)},
                "status": participant_status,
            },
            {
                "actor": {
                    "reference": f"Practitioner/{appointment.provider_id}",
                    "display": appointment.provider.name,
                },
                "status": "accepted",
            },
            {
                "actor": {
                    "reference": f"Location/{appointment.provider.location_id}",
                    "display": appointment.provider.location.name,
                },
                "status": "accepted",
            },
        ],
    }
    if appointment.status == Appointment.Status.CANCELLED and appointment.cancel_reason:
        resource["cancelationReason"] = {"text": appointment.cancel_reason}
    return with_identifiers(resource, appointment)


# --- Search parameters -----------------------------------------------------------------------


def as_id(raw):
    """An id from a URL or a reference, or None when it cannot be one of ours."""
    return int(raw) if ID.fullmatch(raw) else None


def reference_id(value, resource_type):
    """'Patient/12' or '12' -> 12."""
    number = as_id(value.removeprefix(f"{resource_type}/"))
    if number is None:
        raise SearchError(f"'{value}' is not a {resource_type} reference such as {resource_type}/12.")
    return number


PREFIXES = {"eq", "ge", "le", "gt", "lt"}


def date_filters(values, field, location="provider__location"):
    """FHIR date search: 2026-12-03 (that day) or ge2026-12-01 / lt2026-12-08 ..., each day
    the one at the row's own location (docs/reference.md, Time zones)."""
    query = Q()
    for value in values:
        prefix, day = parse_date_search(value)
        query &= Location.objects.on_their_clocks(location, partial(day_search, prefix, day, field))
    return query


def day_search(prefix, day, field, zone):
    start, end = day_bounds(day, day, zone)
    return {
        "eq": Q(**{f"{field}__gte": start, f"{field}__lt": end}),
        "ge": Q(**{f"{field}__gte": start}),
        "gt": Q(**{f"{field}__gte": end}),
        "le": Q(**{f"{field}__lt": end}),
        "lt": Q(**{f"{field}__lt": start}),
    }[prefix]


def absence_filters(values):
    """The same date search on absences, which are whole days: those that cover the day,
    or end on or after it (ge), or start on or before it (le)."""
    query = Q()
    for value in values:
        prefix, day = parse_date_search(value)
        query &= {
            "eq": Q(start_date__lte=day, end_date__gte=day),
            "ge": Q(end_date__gte=day),
            "gt": Q(end_date__gt=day),
            "le": Q(start_date__lte=day),
            "lt": Q(start_date__lt=day),
        }[prefix]
    return query


def parse_date_search(value):
    prefix, raw = (value[:2], value[2:]) if value[:2] in PREFIXES else ("eq", value)
    try:
        day = date.fromisoformat(raw[:10])
    except ValueError:
        raise SearchError(f"'{value}' is not a date such as 2026-12-03 or ge2026-12-01.") from None
    if not 1 < day.year < 9999:  # a day's bounds on a site's clock must stay within the calendar
        raise SearchError(f"'{value}' is out of range: give a date between the years 2 and 9998.")
    return prefix, day


def identifier_filter(values):
    # token search: "system|value" or just "value"
    return Q(external_id__in=[value.split("|")[-1] for value in values])


# --- Paging ---------------------------------------------------------------------------------


def prefers_strict(request):
    """`Prefer: handling=strict` (RFC 7240, FHIR's search rules): an unknown parameter is an
    error instead of being ignored."""
    preferences = request.headers.get("Prefer", "").split(",")
    return any(preference.split(";")[0].strip().lower() == "handling=strict" for preference in preferences)


def bounded(raw, default, low, high):
    number = as_id(raw) if raw is not None else None
    return default if number is None else max(low, min(number, high))


class Search:
    """One search request: the parameters the resource understands, and which page of how many."""

    def __init__(self, query, resource_type):
        understood = {*SEARCH_PARAMETERS[resource_type], *RESULT_PARAMETERS}
        self.params = query.copy()
        for name in set(query) - understood:
            del self.params[name]
        self.ignored = sorted(set(query) - understood)
        self.count = bounded(query.get("_count"), PAGE_SIZE, 0, MAX_PAGE_SIZE)
        self.page = bounded(query.get("page"), 1, 1, LAST_PAGE)
        self.count_only = self.count == 0 or query.get("_summary") == "count"
        # "estimate" is answered exactly: a COUNT in SQL is cheap enough (docs/integrators.md)
        self.wants_total = self.count_only or query.get("_total") != "none"

    @property
    def offset(self):
        return (self.page - 1) * self.count

    def link(self, relation, base, page):
        """The search as understood (ignored parameters left out), at `page`."""
        pairs = [
            (name, value) for name, values in self.params.lists() if name not in ("_count", "page") for value in values
        ]
        return {"relation": relation, "url": f"{base}?{urlencode([*pairs, ('_count', self.count), ('page', page)])}"}


def bundle(request, search, resources, total, more):
    base = request.build_absolute_uri(request.path)
    links = [search.link("self", base, search.page)]
    if search.page > 1 and not search.count_only:
        links.append(search.link("previous", base, search.page - 1))
    if more:
        links.append(search.link("next", base, search.page + 1))
    result = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        result["total"] = total
    result["link"] = links
    if resources:
        result["entry"] = [
            {
                "fullUrl": f"{request.build_absolute_uri('/fhir/')}{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ]
    return result


# --- Views -----------------------------------------------------------------------------------


class FhirView(APIView):
    renderer_classes = [FhirRenderer, JSONRenderer]
    permission_classes = [ModelPermissions]
    resource_type = ""
    to_resource = None
    queryset = None

    def get_queryset(self):
        return self.queryset.all()

    @extend_schema(exclude=True)
    def get(self, request, pk=None):
        if pk is not None:
            found = self.read(pk)
            if found is None:
                return outcome(404, "error", "not-found", f"{self.resource_type}/{pk} is not known.")
            return Response(found)
        search = Search(request.query_params, self.resource_type)
        if search.ignored and prefers_strict(request):
            return outcome(400, "error", "not-supported", f"Unknown search parameter: {', '.join(search.ignored)}.")
        try:
            found = self.matches(search.params)
            resources, more = ([], False) if search.count_only else self.page(found, search.offset, search.count)
            total = self.total(found) if search.wants_total else None
        except SearchError as error:
            return outcome(400, "error", "invalid", str(error))
        return Response(bundle(request, search, resources, total, more))

    def read(self, pk):
        number = as_id(pk)
        obj = self.get_queryset().filter(pk=number).first() if number is not None else None
        return type(self).to_resource(obj) if obj else None

    def matches(self, params):
        """The rows the search finds, filtered and sorted in SQL, not yet read."""
        return self.get_queryset().filter(self.filters(params))

    def page(self, found, offset, count):
        """The resources of one page, and whether another follows: one more row is read to know."""
        rows = list(found[offset : offset + count + 1])
        return [type(self).to_resource(obj) for obj in rows[:count]], len(rows) > count

    def total(self, found):
        return found.count()

    def filters(self, params):
        if "identifier" in params:
            return identifier_filter(params.getlist("identifier"))
        return Q()


class PatientFhir(FhirView):
    resource_type, to_resource = "Patient", patient_resource
    queryset = Patient.objects.order_by("pk")


class PractitionerFhir(FhirView):
    resource_type, to_resource = "Practitioner", practitioner_resource
    queryset = Provider.objects.order_by("pk")


class LocationFhir(FhirView):
    resource_type, to_resource = "Location", location_resource
    queryset = Location.objects.order_by("pk")


class ScheduleFhir(FhirView):
    resource_type, to_resource = "Schedule", schedule_resource
    queryset = Provider.objects.select_related("specialty", "location").order_by("pk")

    def filters(self, params):
        query = Q()
        for actor in params.getlist("actor"):
            query &= (
                Q(pk=reference_id(actor, "Practitioner"))
                if not actor.startswith("Location/")
                else Q(location_id=reference_id(actor, "Location"))
            )
        return query


class SlotFhir(FhirView):
    """Free slots are freed slots still open; busy-unavailable ones are providers' absences."""

    resource_type = "Slot"
    queryset = FreedSlot.objects.all()  # what ModelPermissions asks the account may view

    def read(self, pk):
        kind, _, raw = str(pk).partition("-")
        number = as_id(raw)
        if number is None:
            return None
        if kind == "freed":
            slot = self.free_slots().filter(pk=number).first()
            return free_slot_resource(slot) if slot else None
        if kind == "absence":
            absence = self.absences().filter(pk=number).first()
            return absence_slot_resource(absence) if absence else None
        return None

    def free_slots(self):
        return (
            FreedSlot.objects.filter(status__in=FreedSlot.FILLABLE, start__gt=timezone.now())
            .select_related("provider__location")
            .order_by("start", "pk")
        )

    def absences(self):
        return ProviderUnavailability.objects.select_related("provider__location").order_by("start_date", "pk")

    def matches(self, params):
        """Free slots first, then absences: two queries, paged as one list."""
        statuses = set(params.getlist("status")) or {"free", "busy-unavailable"}
        if statuses - {"free", "busy-unavailable"}:
            raise SearchError("Slot status is free or busy-unavailable.")
        providers = [reference_id(value, "Schedule") for value in params.getlist("schedule")]
        free, absences = FreedSlot.objects.none(), ProviderUnavailability.objects.none()
        if "free" in statuses:
            free = self.free_slots().filter(date_filters(params.getlist("start"), "start"))
        if "busy-unavailable" in statuses:
            absences = self.absences().filter(absence_filters(params.getlist("start")))
        if providers:
            free, absences = free.filter(provider_id__in=providers), absences.filter(provider_id__in=providers)
        return free, absences

    def page(self, found, offset, count):
        free, absences = found
        slots = list(free[offset : offset + count + 1])
        if len(slots) > count:
            return [free_slot_resource(slot) for slot in slots[:count]], True
        # The free slots end on this page (or before it): absences follow them.
        skipped = max(0, offset - free.count()) if not slots else 0
        rest = list(absences[skipped : skipped + count + 1 - len(slots)])
        resources = [free_slot_resource(slot) for slot in slots] + [absence_slot_resource(one) for one in rest]
        return resources[:count], len(resources) > count

    def total(self, found):
        free, absences = found
        return free.count() + absences.count()


class AppointmentFhir(FhirView):
    resource_type, to_resource = "Appointment", appointment_resource
    queryset = Appointment.objects.select_related("patient", "provider__specialty", "provider__location").order_by(
        "start", "pk"
    )

    def filters(self, params):
        query = super().filters(params)
        for value in params.getlist("patient"):
            query &= Q(patient_id=reference_id(value, "Patient"))
        for value in params.getlist("practitioner"):
            query &= Q(provider_id=reference_id(value, "Practitioner"))
        query &= date_filters(params.getlist("date"), "start")
        for value in params.getlist("status"):
            ours = [status for status, code in APPOINTMENT_STATUS.items() if code in value.split(",")]
            if not ours:
                codes = ", ".join(sorted(set(APPOINTMENT_STATUS.values())))
                raise SearchError(f"'{value}' is not an appointment status: use {codes}.")
            query &= Q(status__in=ours)
        return query


class CapabilityStatementView(APIView):
    renderer_classes = [FhirRenderer, JSONRenderer]
    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(exclude=True)
    def get(self, request):
        return Response(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "date": timezone.localdate().isoformat(),
                "fhirVersion": FHIR_VERSION,
                "format": ["json"],
                "software": {"name": "Backfill"},
                "implementation": {
                    "description": "Backfill: a clinic's schedule kept full",
                    "url": request.build_absolute_uri("/fhir/"),
                },
                "rest": [
                    {
                        "mode": "server",
                        "resource": [
                            {
                                "type": name,
                                "interaction": [{"code": "read"}, {"code": "search-type"}],
                                "searchParam": [
                                    {
                                        "name": param,
                                        "type": "date"
                                        if param in ("date", "start")
                                        else "reference"
                                        if param in ("patient", "practitioner", "schedule", "actor")
                                        else "token",
                                    }
                                    for param in params
                                ],
                            }
                            for name, params in SEARCH_PARAMETERS.items()
                        ],
                    }
                ],
            }
        )


def resource_paths(name, view):
    return [
        path(f"{name}", view.as_view(), name=f"fhir-{name.lower()}-search"),
        path(f"{name}/<str:pk>", view.as_view(), name=f"fhir-{name.lower()}-read"),
    ]


urlpatterns = [
    path("metadata", CapabilityStatementView.as_view(), name="fhir-metadata"),
    *resource_paths("Patient", PatientFhir),
    *resource_paths("Practitioner", PractitionerFhir),
    *resource_paths("Location", LocationFhir),
    *resource_paths("Schedule", ScheduleFhir),
    *resource_paths("Slot", SlotFhir),
    *resource_paths("Appointment", AppointmentFhir),
]
