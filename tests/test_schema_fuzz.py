"""The API against its own OpenAPI schema, fuzzed by schemathesis (docs/reference.md, API: never a 500).

Every operation is called with generated requests, valid and invalid, as a staff user with
a token; a 5xx, an undocumented status code, or a body or header the schema does not
describe fails the test. It runs on a committed database (transaction=True) like
production, so a constraint violation is seen as the server would see it.
"""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from waitlist.factories import WaitlistEntryFactory

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]
CONFIG = {
    "generation": {"max-examples": 20},
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
}


def small_clinic():
    """A few of everything, with low ids (sequences reset), so generated ids find records."""
    orthopedics = SpecialtyFactory(name="Orthopedic PT")
    downtown = LocationFactory(name="Downtown")
    lee, okafor = ProviderFactory.create_batch(2, specialty=orthopedics, location=downtown)
    patients = [HighRiskPatientFactory(), PatientFactory(no_show_risk=0.7), PatientFactory()]
    for hour, patient in zip((9, 11, 14), patients, strict=True):
        AppointmentFactory(provider=lee, patient=patient, start=next_weekday_at(hour))
    WaitlistEntryFactory(patient=patients[0], specialty=orthopedics)
    cancelled = AppointmentFactory(provider=okafor, patient=patients[2], start=next_weekday_at(16))
    cancelled.cancel("patient called in sick")  # runs the backfill: a freed slot with a match log


# Loaded when the module is collected: the schema endpoint needs no database, and each
# operation then becomes its own test item.
schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json", get_wsgi_application(), config=schemathesis.Config.from_dict(CONFIG)
)


RELATED_IDS = {
    "id",
    "patient",
    "provider",
    "specialty",
    "location",
    "preferred_location",
    "preferred_provider",
    "waitlist_entry",
    "provider_id",
}


def among_existing(values):
    """Fold generated ids onto the few records there are, so requests get past the 404s and
    400s for unknown ids into booking, cancelling and the conflicts between them."""
    if not isinstance(values, dict):
        return values
    return {
        name: 1 + abs(value) % 6 if name in RELATED_IDS and type(value) is int else value
        for name, value in values.items()
    }


@schema.hook
def map_path_parameters(context, path_parameters):
    return among_existing(path_parameters)


@schema.hook
def map_body(context, body):
    return among_existing(body)


@pytest.fixture
def staff_token(staff_user):
    small_clinic()
    return Token.objects.create(user=staff_user).key


# The clinic is set up once per operation and grows with what the generated requests
# create, like a real one: that is why the function-scoped fixture is kept across examples.
@pytest.mark.django_db(transaction=True, reset_sequences=True)
@schema.parametrize()
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_it_answers_every_generated_request_as_its_schema_says(case, staff_token):
    case.call_and_validate(headers={"Authorization": f"Token {staff_token}"})
