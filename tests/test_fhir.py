"""The FHIR R4 view (docs/reference.md, FHIR): every resource and bundle validates with fhir.resources."""

from datetime import date, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from fhirpy import SyncFHIRClient
from rest_framework.authtoken.models import Token

from backfill.models import FreedSlot
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory
from clinic.models import Location, Patient, Provider
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment, ProviderUnavailability

pytestmark = pytest.mark.django_db


@pytest.fixture
def ehr(client):
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def fhir(client, path):
    response = client.get(f"/fhir/{path}", HTTP_ACCEPT="application/fhir+json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    validate(body)
    return body


def validate(body):
    """Raises unless the body is a valid FHIR R4B resource (bundles: every entry too)."""
    get_fhir_model_class(body["resourceType"]).model_validate(body)


def test_the_capability_statement_lists_every_resource(client):
    statement = fhir(client, "metadata")
    assert statement["fhirVersion"] == "4.0.1"
    assert {r["type"] for r in statement["rest"][0]["resource"]} == {
        "Patient",
        "Practitioner",
        "Location",
        "Schedule",
        "Slot",
        "Appointment",
    }


def test_a_patient_with_its_external_id_as_identifier(ehr, settings):
    patient = PatientFactory(first_name="Maya", last_name="Patel", external_id="MRN-42")
    resource = fhir(ehr, f"Patient/{patient.pk}")
    assert resource["name"] == [{"family": "Patel", "given": ["Maya"]}]
    assert resource["identifier"] == [{"system": settings.FHIR_IDENTIFIER_SYSTEM, "value": "MRN-42"}]
    found = fhir(ehr, "Patient?identifier=MRN-42")
    assert [entry["resource"]["id"] for entry in found["entry"]] == [str(patient.pk)]


def test_practitioner_location_and_schedule(ehr):
    provider = ProviderFactory(name="Dr. Elena Diaz", location=LocationFactory(name="Riverside", address="7 Quay Rd"))
    assert fhir(ehr, f"Practitioner/{provider.pk}")["name"] == [{"text": "Dr. Elena Diaz"}]
    assert fhir(ehr, f"Location/{provider.location_id}")["address"] == {"text": "7 Quay Rd"}
    schedule = fhir(ehr, f"Schedule/{provider.pk}")
    assert schedule["actor"][0]["reference"] == f"Practitioner/{provider.pk}"
    assert fhir(ehr, f"Schedule?actor=Practitioner/{provider.pk}")["total"] == 1


def test_a_freed_slot_is_free_and_an_absence_busy_unavailable(ehr, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(start=next_weekday_at(10, days_ahead=3))
    with django_capture_on_commit_callbacks(execute=False):
        appointment.cancel("sick", by="frontdesk")
    day = timezone.localtime(appointment.start).date()
    ProviderUnavailability.objects.create(
        provider=appointment.provider,
        start_date=day + timedelta(days=7),
        end_date=day + timedelta(days=7),
        reason="training",
    )
    bundle = fhir(ehr, f"Slot?schedule=Schedule/{appointment.provider_id}")
    statuses = sorted(entry["resource"]["status"] for entry in bundle["entry"])
    assert statuses == ["busy-unavailable", "free"]
    free = fhir(ehr, f"Slot?status=free&start={day.isoformat()}")
    assert [entry["resource"]["start"] for entry in free["entry"]] == [
        timezone.localtime(appointment.start).isoformat()
    ]
    assert fhir(ehr, f"Slot/{free['entry'][0]['resource']['id']}")["status"] == "free"


def test_appointments_searched_by_patient_date_and_status(ehr):
    patient = PatientFactory()
    booked = AppointmentFactory(patient=patient, start=next_weekday_at(9, days_ahead=2))
    AppointmentFactory(patient=patient, start=next_weekday_at(9, days_ahead=9))
    cancelled = AppointmentFactory(start=next_weekday_at(11, days_ahead=2))
    cancelled.cancel("moved away", by="frontdesk")
    day = timezone.localtime(booked.start).date().isoformat()
    mine_that_day = fhir(ehr, f"Appointment?patient=Patient/{patient.pk}&date={day}")
    assert [entry["resource"]["id"] for entry in mine_that_day["entry"]] == [str(booked.pk)]
    assert mine_that_day["entry"][0]["resource"]["status"] == "booked"
    gone = fhir(ehr, f"Appointment?status=cancelled&date=ge{day}")
    assert [entry["resource"]["cancelationReason"]["text"] for entry in gone["entry"]] == ["moved away"]


def test_a_search_is_paged_with_a_next_link(ehr):
    for _ in range(3):
        PatientFactory()
    first = fhir(ehr, "Patient?_count=2")
    assert (first["total"], len(first["entry"])) == (3, 2)
    assert [link["relation"] for link in first["link"]] == ["self", "next"]
    second = fhir(ehr, link(first, "next"))
    assert (second["total"], len(second["entry"])) == (3, 1)
    assert [link["relation"] for link in second["link"]] == ["self", "previous"]
    assert fhir(ehr, link(second, "previous"))["entry"] == first["entry"]


def link(bundle, relation):
    """The bundle's link of that relation, as a path under /fhir/."""
    url = next(link["url"] for link in bundle["link"] if link["relation"] == relation)
    return url.split("/fhir/", 1)[1]


def test_an_unknown_parameter_is_ignored_and_left_out_of_the_self_link(ehr):
    patient = PatientFactory(external_id="MRN-7")
    PatientFactory()
    found = fhir(ehr, "Patient?identifier=MRN-7&_elements=name&colour=blue")
    assert [entry["resource"]["id"] for entry in found["entry"]] == [str(patient.pk)]
    assert link(found, "self") == "Patient?identifier=MRN-7&_count=50&page=1"


def test_prefer_handling_strict_refuses_an_unknown_parameter(ehr):
    refused = ehr.get("/fhir/Patient?colour=blue&identifier=x", HTTP_PREFER="return=minimal, handling=strict")
    assert refused.status_code == 400
    validate(refused.json())
    assert refused.json()["issue"][0]["diagnostics"] == "Unknown search parameter: colour."
    assert ehr.get("/fhir/Patient?identifier=x", HTTP_PREFER="handling=strict").status_code == 200


def test_total_none_leaves_the_count_out_and_summary_count_gives_only_it(ehr):
    for _ in range(3):
        AppointmentFactory()
    uncounted = fhir(ehr, "Appointment?_total=none&_count=2")
    assert "total" not in uncounted
    assert [link["relation"] for link in uncounted["link"]] == ["self", "next"]
    for only_the_count in ("_summary=count", "_count=0", "_count=0&_totalMethod=count"):
        counted = fhir(ehr, f"Appointment?{only_the_count}")
        assert (counted["total"], "entry" in counted) == (3, False)
    assert fhir(ehr, "Appointment?_total=estimate")["total"] == 3


def test_slots_page_through_free_ones_then_absences(ehr):
    provider = ProviderFactory()
    freed = [free_slot(provider, days_ahead=days) for days in (2, 3, 4)]
    day = timezone.localdate() + timedelta(days=10)
    absences = [
        ProviderUnavailability.objects.create(provider=provider, start_date=away, end_date=away)
        for away in (day, day + timedelta(days=1))
    ]
    ids = []
    path = "Slot?_count=2"
    while path:
        page = fhir(ehr, path)
        assert page["total"] == 5
        ids += [entry["resource"]["id"] for entry in page["entry"]]
        path = link(page, "next") if any(link["relation"] == "next" for link in page["link"]) else None
    assert ids == [f"freed-{slot.pk}" for slot in freed] + [f"absence-{absence.pk}" for absence in absences]


def free_slot(provider, days_ahead):
    cancelled = AppointmentFactory(
        provider=provider, start=next_weekday_at(10, days_ahead=days_ahead), status=Appointment.Status.CANCELLED
    )
    return FreedSlot.objects.create(
        provider=provider,
        appointment=cancelled,
        start=cancelled.start,
        end=cancelled.end,
        status=FreedSlot.Status.NO_MATCH,
    )


def test_a_search_reads_one_page_in_sql_whatever_the_history(ehr, django_assert_max_num_queries):
    patient = PatientFactory()
    for days in range(1, 41):
        AppointmentFactory(patient=patient, start=next_weekday_at(9, days_ahead=days))
    # the token and the account's permissions (3), the sites' time zones, one page, the count
    with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(6):
        one = fhir(ehr, f"Appointment?_count=1&page=3&patient=Patient/{patient.pk}&date=ge2000-01-01")
    assert (one["total"], len(one["entry"])) == (40, 1)
    reads = [query["sql"] for query in queries if "scheduling_appointment" in query["sql"]]
    assert len(reads) == 2
    # every read of the table is a page (LIMIT) or the total (COUNT): no query loads the history
    assert all(" LIMIT " in sql or "COUNT(" in sql for sql in reads), reads


def test_bad_searches_and_unknown_ids_answer_an_operation_outcome(ehr):
    unknown = ehr.get("/fhir/Patient/999")
    assert unknown.status_code == 404
    validate(unknown.json())
    bad = ehr.get("/fhir/Appointment?date=someday")
    assert bad.status_code == 400
    assert "is not a date" in bad.json()["issue"][0]["diagnostics"]
    assert ehr.get("/fhir/Appointment?patient=%C2%B2").status_code == 400  # "²" passes str.isdigit()
    assert ehr.get("/fhir/Patient/%C2%B2").status_code == 404
    assert ehr.get("/fhir/Slot/freed-%C2%B2").status_code == 404
    for edge in ("9999-12-31", "0001-01-01"):
        far = ehr.get(f"/fhir/Appointment?date={edge}")
        assert far.status_code == 400
        assert "out of range" in far.json()["issue"][0]["diagnostics"]


def test_the_fhir_view_needs_the_same_credentials_as_the_api(client):
    assert client.get("/fhir/Patient").status_code in (401, 403)


@pytest.mark.django_db(transaction=True)
def test_a_stock_fhir_client_searches_counts_and_pages_every_resource_type(live_server, roles):
    """fhirpy, as an EHR would use it: its count() sends parameters of its own
    (_totalMethod), and fetch_all() follows each bundle's next link."""
    patient = PatientFactory(external_id="MRN-9")
    for days in range(1, 6):
        AppointmentFactory(patient=patient if days % 2 else PatientFactory(), start=next_weekday_at(9, days))
    provider = ProviderFactory(location=LocationFactory(name="Riverside"))
    for days in (2, 3, 4):
        free_slot(provider, days_ahead=days)
    ProviderUnavailability.objects.create(provider=provider, start_date=date(2026, 12, 24), end_date=date(2027, 1, 1))
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    client = SyncFHIRClient(f"{live_server.url}/fhir", authorization=f"Token {Token.objects.create(user=user).key}")
    expected = {
        "Patient": Patient.objects.values_list("pk", flat=True),
        "Practitioner": Provider.objects.values_list("pk", flat=True),
        "Location": Location.objects.values_list("pk", flat=True),
        "Schedule": Provider.objects.values_list("pk", flat=True),
        "Appointment": Appointment.objects.values_list("pk", flat=True),
    }
    expected = {name: sorted(str(pk) for pk in pks) for name, pks in expected.items()}
    expected["Slot"] = sorted(
        [f"freed-{pk}" for pk in FreedSlot.objects.values_list("pk", flat=True)]
        + [f"absence-{pk}" for pk in ProviderUnavailability.objects.values_list("pk", flat=True)]
    )
    for resource_type, ids in expected.items():
        search = client.resources(resource_type).limit(2)
        found = search.fetch_all()
        for resource in found:
            validate(resource.serialize())
        assert sorted(resource.id for resource in found) == ids, resource_type  # each exactly once
        assert search.count() == len(ids), resource_type
    mine = client.resources("Appointment").search(patient=f"Patient/{patient.pk}").limit(1)
    assert [appointment.id for appointment in mine.fetch_all()] == [
        str(pk) for pk in Appointment.objects.filter(patient=patient).order_by("start").values_list("pk", flat=True)
    ]
    assert mine.count() == 3
    assert client.resources("Patient").search(identifier="MRN-9").count() == 1
