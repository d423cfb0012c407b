"""HL7 endpoints and messages in the API: Integrators manage where SIU goes and read the messages."""

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from integrations.hl7.inbound import receive
from integrations.hl7.models import Hl7Endpoint
from tests.hl7_feed import ehr_clinic, sample

pytestmark = pytest.mark.django_db


def token_for(client, role):
    user = User.objects.create_user(f"api-{role}".replace(" ", "-").lower(), password="pass-phrase-1")
    user.groups.add(Group.objects.get(name=role))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


ENDPOINT = {"host": "ehr.example.org", "port": 6661, "receiving_application": "EPIC", "events": ["S15", "S12"]}


def test_an_integrator_adds_an_hl7_endpoint(client, roles, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True  # ehr.example.org may not resolve here; a literal is checked below
    answer = token_for(client, "Integrator").post("/api/hl7-endpoints/", ENDPOINT, content_type="application/json")

    assert answer.status_code == 201, answer.content
    assert Hl7Endpoint.objects.get().events == ["S12", "S15"]


def test_an_endpoint_on_a_private_address_is_refused(client, roles):
    answer = token_for(client, "Integrator").post(
        "/api/hl7-endpoints/", {**ENDPOINT, "host": "10.0.0.5"}, content_type="application/json"
    )

    assert answer.status_code == 400
    assert "internal address" in answer.json()["host"][0]
    assert not Hl7Endpoint.objects.exists()


def test_the_front_desk_cannot_see_hl7_endpoints(client, roles):
    assert token_for(client, "Front desk").get("/api/hl7-endpoints/").status_code == 403


def test_an_integrator_finds_the_messages_of_a_patient_by_mrn(client, roles):
    ehr_clinic()
    receive(sample("siu_s12").encode())
    receive(sample("adt_a04").encode())

    found = token_for(client, "Integrator").get("/api/hl7-messages/?mrn=MRN1001").json()

    assert [(m["message_type"], m["control_id"], m["outcome"]) for m in found["results"]] == [
        ("SIU^S12", "MSG00001", "AA")
    ]
