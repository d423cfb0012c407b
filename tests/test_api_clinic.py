import pytest
from rest_framework.authtoken.models import Token

from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import Location, Patient, Provider

pytestmark = pytest.mark.django_db


def post(client, url, data):
    return client.post(url, data, content_type="application/json")


def patch(client, url, data):
    return client.patch(url, data, content_type="application/json")


# --- Who gets in ------------------------------------------------------------------------


def test_it_refuses_anonymous_requests_with_401(client):
    response = client.get("/api/patients/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == "Token"


def test_it_refuses_non_staff_tokens_with_403(client, django_user_model):
    user = django_user_model.objects.create_user(username="patient-portal", password="x" * 12)
    token = Token.objects.create(user=user)

    response = client.get("/api/patients/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 403
    assert response.json() == {"detail": "You do not have permission to perform this action."}


def test_it_lets_staff_in_with_a_token(client, staff_user):
    token = Token.objects.create(user=staff_user)
    PatientFactory(first_name="Ada")

    response = client.get("/api/patients/", HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 200
    assert [p["first_name"] for p in response.json()["results"]] == ["Ada"]


def test_it_refuses_a_wrong_token_with_401(client):
    response = client.get("/api/patients/", HTTP_AUTHORIZATION="Token not-a-real-key")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


API_READS = [
    "/api/locations/",
    "/api/specialties/",
    "/api/providers/",
    "/api/patients/",
    "/api/appointments/",
    "/api/waitlist/",
    "/api/freed-slots/",
    "/api/stats/",
]


@pytest.mark.parametrize("path", API_READS)
def test_it_keeps_every_endpoint_to_staff(client, django_user_model, staff_user, path):
    outsider = Token.objects.create(user=django_user_model.objects.create_user(username="outsider", password="x" * 12))
    staff = Token.objects.create(user=staff_user)

    statuses = [
        client.get(path, **headers).status_code
        for headers in (
            {},
            {"HTTP_AUTHORIZATION": f"Token {outsider.key}"},
            {"HTTP_AUTHORIZATION": f"Token {staff.key}"},
        )
    ]

    assert statuses == [401, 403, 200]


@pytest.mark.parametrize(
    "path", ["/api/trigger-workflow/", "/api/appointments/1/cancel/", "/api/freed-slots/1/retry/"]
)
def test_it_refuses_actions_to_non_staff(client, django_user_model, path):
    outsider = Token.objects.create(user=django_user_model.objects.create_user(username="outsider", password="x" * 12))

    response = client.post(path, {}, content_type="application/json", HTTP_AUTHORIZATION=f"Token {outsider.key}")

    assert response.status_code == 403


def test_it_lets_staff_in_with_a_session(staff_client):
    assert staff_client.get("/api/locations/").status_code == 200


def test_it_answers_unknown_api_paths_with_json_404(staff_client):
    response = staff_client.get("/api/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_it_answers_an_unknown_id_with_json_404(staff_client):
    response = staff_client.get("/api/patients/999999/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No Patient matches the given query."}


def test_it_refuses_a_body_that_is_not_json(staff_client):
    response = staff_client.post("/api/locations/", "name=Uptown", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert Location.objects.count() == 0


# --- Locations, specialties, providers ------------------------------------------------


def test_it_creates_and_renames_a_location(staff_client):
    created = post(staff_client, "/api/locations/", {"name": "Uptown"})
    renamed = patch(staff_client, f"/api/locations/{created.json()['id']}/", {"name": "Uptown Annex"})

    assert created.status_code == 201
    assert renamed.json() == {
        "id": created.json()["id"],
        "name": "Uptown Annex",
        "external_id": None,
        "time_zone": "America/New_York",
    }
    assert Location.objects.get().name == "Uptown Annex"


def test_it_refuses_a_duplicate_specialty_name(staff_client):
    SpecialtyFactory(name="Orthopedic PT")

    response = post(staff_client, "/api/specialties/", {"name": "Orthopedic PT"})

    assert response.status_code == 400
    assert response.json() == {"name": ["specialty with this name already exists."]}


def test_it_shows_a_provider_with_related_ids(staff_client):
    provider = ProviderFactory(name="Dr. Lee", email="lee@clinic.example")

    response = staff_client.get(f"/api/providers/{provider.pk}/")

    assert response.json() == {
        "id": provider.pk,
        "name": "Dr. Lee",
        "email": "lee@clinic.example",
        "specialty": provider.specialty_id,
        "location": provider.location_id,
        "active": True,
        "external_id": None,
        "accepted_insurance_plans": [],
    }


def test_it_creates_a_provider(staff_client):
    specialty, location = SpecialtyFactory(), LocationFactory()

    response = post(
        staff_client,
        "/api/providers/",
        {
            "name": "Dr. Okafor",
            "email": "okafor@clinic.example",
            "specialty": specialty.pk,
            "location": location.pk,
        },
    )

    assert response.status_code == 201
    assert Provider.objects.get(email="okafor@clinic.example").specialty == specialty


def test_it_refuses_a_provider_with_an_unknown_specialty(staff_client):
    response = post(
        staff_client,
        "/api/providers/",
        {
            "name": "Dr. Okafor",
            "email": "okafor@clinic.example",
            "specialty": 999,
            "location": LocationFactory().pk,
        },
    )

    assert response.status_code == 400
    assert response.json() == {"specialty": ['Invalid pk "999" - object does not exist.']}
    assert not Provider.objects.exists()


def test_it_deactivates_a_provider(staff_client):
    provider = ProviderFactory()

    patch(staff_client, f"/api/providers/{provider.pk}/", {"active": False})

    provider.refresh_from_db()
    assert provider.active is False


def test_it_filters_providers_by_specialty(staff_client):
    wanted = ProviderFactory(specialty=SpecialtyFactory(name="Sports PT"))
    ProviderFactory(specialty=SpecialtyFactory(name="Pediatric PT"))

    response = staff_client.get(f"/api/providers/?specialty={wanted.specialty_id}")

    assert [p["id"] for p in response.json()["results"]] == [wanted.pk]


def test_it_does_not_delete_providers(staff_client):
    provider = ProviderFactory()

    response = staff_client.delete(f"/api/providers/{provider.pk}/")

    assert response.status_code == 405
    assert Provider.objects.filter(pk=provider.pk).exists()


# --- Patients ------------------------------------------------------------------------------


def test_it_creates_a_patient_with_weekday_names(staff_client):
    location = LocationFactory()

    response = post(
        staff_client,
        "/api/patients/",
        {
            "first_name": "Maria",
            "last_name": "Garcia",
            "email": "maria@mail.example",
            "phone": "(617) 555-0101",
            "preferred_location": location.pk,
            "available_days": ["wed", "mon", "mon"],
            "no_show_risk": 0.85,
        },
    )

    assert response.status_code == 201
    assert response.json()["available_days"] == ["mon", "wed"]
    assert response.json()["phone"] == "+16175550101"
    patient = Patient.objects.get(email="maria@mail.example")
    assert patient.available_days == ["mon", "wed"]
    assert patient.no_show_risk == 0.85
    assert patient.email_opt_out is False


def test_it_refuses_a_no_show_risk_above_one(staff_client):
    response = post(
        staff_client,
        "/api/patients/",
        {
            "first_name": "Maria",
            "last_name": "Garcia",
            "email": "maria@mail.example",
            "no_show_risk": 1.5,
        },
    )

    assert response.status_code == 400
    assert response.json() == {"no_show_risk": ["The no-show risk must be between 0.0 and 1.0."]}
    assert not Patient.objects.exists()


def test_it_refuses_a_negative_no_show_risk_on_update(staff_client):
    patient = PatientFactory(no_show_risk=0.3)

    response = patch(staff_client, f"/api/patients/{patient.pk}/", {"no_show_risk": -0.1})

    assert response.status_code == 400
    assert response.json() == {"no_show_risk": ["The no-show risk must be between 0.0 and 1.0."]}
    patient.refresh_from_db()
    assert patient.no_show_risk == 0.3


def test_it_refuses_an_unknown_weekday(staff_client):
    patient = PatientFactory(available_days=["mon"])

    response = patch(staff_client, f"/api/patients/{patient.pk}/", {"available_days": ["mon", "funday"]})

    assert response.status_code == 400
    assert response.json() == {"available_days": {"1": ['"funday" is not a valid choice.']}}
    patient.refresh_from_db()
    assert patient.available_days == ["mon"]


def test_it_updates_a_patients_opt_out_and_days(staff_client):
    patient = PatientFactory()

    response = patch(staff_client, f"/api/patients/{patient.pk}/", {"email_opt_out": True, "available_days": []})

    assert response.status_code == 200
    patient.refresh_from_db()
    assert patient.email_opt_out is True
    assert patient.available_days == []


def test_it_lists_patients_in_pages(staff_client):
    PatientFactory.create_batch(3)

    body = staff_client.get("/api/patients/").json()

    assert body["count"] == 3
    assert body["next"] is None and body["previous"] is None
    assert set(body["results"][0]) == {
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
    }


@pytest.mark.parametrize("path", ["/api/patients/", "/api/providers/", "/api/locations/", "/api/specialties/"])
def test_it_lists_a_page_of_records_in_a_bounded_number_of_queries(staff_client, django_assert_max_num_queries, path):
    for n in range(20):
        PatientFactory(preferred_location=LocationFactory(name=f"Site {n}"))
        ProviderFactory(specialty=SpecialtyFactory(name=f"Specialty {n}"), location=LocationFactory(name=f"Site {n}"))

    with django_assert_max_num_queries(5):  # session, user, count, page (and the providers' plans)
        response = staff_client.get(path)

    assert response.status_code == 200
