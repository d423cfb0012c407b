import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_it_publishes_an_openapi_schema_of_the_contract(client):
    schema = client.get("/api/schema/?format=json").json()

    assert schema["openapi"].startswith("3.")
    assert {
        "/api/locations/",
        "/api/specialties/",
        "/api/providers/",
        "/api/patients/",
        "/api/appointments/",
        "/api/appointments/{id}/cancel/",
        "/api/waitlist/",
        "/api/waitlist/{id}/",
        "/api/freed-slots/",
        "/api/freed-slots/{id}/retry/",
        "/api/freed-slots/{id}/book/",
        "/api/trigger-workflow/",
        "/api/stats/",
    } <= set(schema["paths"])
    assert list(schema["components"]["schemas"]["Patient"]["properties"]) == [
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


def test_it_documents_conflicts_and_removals(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]

    assert {"200", "400", "401", "403", "404", "409"} <= set(
        paths["/api/appointments/{id}/cancel/"]["post"]["responses"]
    )
    assert "204" in paths["/api/waitlist/{id}/"]["delete"]["responses"]
    assert "409" in paths["/api/freed-slots/{id}/retry/"]["post"]["responses"]


def test_it_serves_the_docs_page_with_its_own_assets(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"' in page
    assert "cdn" not in page.lower()
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
