import pytest

from clinic.factories import ProviderFactory
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.models import Appointment, ProviderUnavailability

pytestmark = pytest.mark.django_db


def trigger(client, path="/api/trigger-workflow/", **fields):
    day = next_weekday_at(9).date().isoformat()
    data = {"trigger_type": "provider_unavailable", "reason": "sick", "start_date": day, "end_date": day, **fields}
    return client.post(path, data, content_type="application/json")


def test_it_reassigns_the_providers_patients(staff_client, django_capture_on_commit_callbacks):
    away = ProviderFactory()
    colleague = ProviderFactory(specialty=away.specialty, location=away.location)
    appointment = AppointmentFactory(provider=away, start=next_weekday_at(9))

    with django_capture_on_commit_callbacks(execute=True):
        response = trigger(staff_client, provider_id=away.pk)

    assert response.status_code == 201
    body = response.json()
    unavailability = ProviderUnavailability.objects.get(provider=away)
    assert (body["unavailability"], body["provider"], body["affected"]) == (unavailability.pk, away.pk, 1)
    assert body["start_date"] == body["end_date"] == appointment.start.date().isoformat()
    assert [item["appointment"] for item in body["reassigned"]] == [appointment.pk]
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    offer = Appointment.objects.get(replaces=appointment)
    assert (offer.provider, offer.status) == (colleague, Appointment.Status.OFFERED)


def test_it_answers_the_seeds_path_without_a_trailing_slash(staff_client, django_capture_on_commit_callbacks):
    provider = ProviderFactory()

    with django_capture_on_commit_callbacks(execute=True):
        response = trigger(staff_client, "/api/trigger-workflow", provider_id=provider.pk)

    assert response.status_code == 201
    assert ProviderUnavailability.objects.filter(provider=provider).exists()


def test_it_refuses_an_unknown_provider(staff_client):
    response = trigger(staff_client, provider_id=999)

    assert response.status_code == 400
    assert response.json() == {"provider_id": ['Invalid pk "999" - object does not exist.']}
    assert not ProviderUnavailability.objects.exists()


def test_it_refuses_the_seeds_text_provider_ids(staff_client):
    response = trigger(staff_client, provider_id="T001")

    assert response.status_code == 400
    assert response.json() == {"provider_id": ["Incorrect type. Expected pk value, received str."]}


def test_it_refuses_an_end_date_before_the_start(staff_client):
    response = trigger(staff_client, provider_id=ProviderFactory().pk, start_date="2030-01-02", end_date="2030-01-01")

    assert response.status_code == 400
    assert response.json() == {"end_date": ["The end date must not be before the start date."]}
    assert not ProviderUnavailability.objects.exists()


def test_it_refuses_an_unknown_trigger_type(staff_client):
    response = trigger(staff_client, provider_id=ProviderFactory().pk, trigger_type="fire_drill")

    assert response.status_code == 400
    assert response.json() == {"trigger_type": ['"fire_drill" is not a valid choice.']}
    assert not ProviderUnavailability.objects.exists()


def test_it_lists_every_missing_field(staff_client):
    response = staff_client.post("/api/trigger-workflow/", {}, content_type="application/json")

    assert response.status_code == 400
    assert set(response.json()) == {"trigger_type", "provider_id", "reason", "start_date", "end_date"}
    assert response.json()["provider_id"] == ["This field is required."]


def test_it_answers_409_when_the_workflow_refuses(staff_client):
    provider = ProviderFactory(name="Dr. Gone", active=False)

    response = trigger(staff_client, provider_id=provider.pk)

    assert response.status_code == 409
    assert "Dr. Gone is inactive" in response.json()["detail"]
    assert not ProviderUnavailability.objects.exists()


def test_it_refuses_anonymous_triggers(client):
    response = trigger(client, provider_id=ProviderFactory().pk)

    assert response.status_code == 401
    assert not ProviderUnavailability.objects.exists()


def test_it_refuses_dates_outside_the_clinics_calendar(staff_client):
    response = trigger(staff_client, provider_id=ProviderFactory().pk, end_date="9999-12-31")

    assert response.status_code == 400
    assert response.json() == {"end_date": ["Dates must be in the years 2000 to 2099."]}
    assert not ProviderUnavailability.objects.exists()
