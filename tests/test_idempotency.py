"""Idempotency-Key on POSTs under /api/ (docs/reference.md, External ids)."""

import threading

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from clinic.models import IdempotentRequest, Patient

ADA = {"first_name": "Ada", "last_name": "King", "email": "ada@example.com"}


@pytest.fixture
def token(db):
    user = User.objects.create_user("ehr")
    user.groups.add(Group.objects.get(name="Integrator"))
    return Token.objects.create(user=user).key


def post(client, token, body, key):
    return client.post(
        "/api/patients/",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token}",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.mark.django_db
def test_the_same_key_and_body_twice_creates_one_patient_and_answers_the_same(client, token):
    first = post(client, token, ADA, "create-ada-1")
    again = post(client, token, ADA, "create-ada-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_a_422(client, token):
    post(client, token, ADA, "create-ada-1")
    response = post(client, token, {**ADA, "first_name": "Grace"}, "create-ada-1")
    assert response.status_code == 422
    assert response.json() == {"detail": "This Idempotency-Key was used for another request; use a new key."}
    assert list(Patient.objects.values_list("first_name", flat=True)) == ["Ada"]


@pytest.mark.django_db
def test_another_caller_may_use_the_same_key(client, token):
    other = User.objects.create_user("other-ehr")
    other.groups.add(Group.objects.get(name="Integrator"))
    post(client, token, ADA, "k1")
    assert (
        post(client, Token.objects.create(user=other).key, {**ADA, "email": "ada2@example.com"}, "k1").status_code
        == 201
    )
    assert Patient.objects.count() == 2


@pytest.mark.django_db
def test_a_refused_request_is_answered_the_same_again(client, token):
    bad = {**ADA, "email": "not an email"}
    assert post(client, token, bad, "k2").status_code == 400
    assert post(client, token, bad, "k2").status_code == 400
    assert not Patient.objects.exists()


@pytest.fixture
def committing_token(transactional_db):
    # pytest-django runs transactional tests last, after earlier ones' flushes emptied the
    # roles (data from a migration): this caller holds the permission itself.
    user = User.objects.create_user("ehr")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="clinic", codename="add_patient"))
    return Token.objects.create(user=user).key


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_one_patient(committing_token):
    token = committing_token
    barrier = threading.Barrier(4)
    statuses = []

    def send():
        barrier.wait()
        try:
            statuses.append(post(Client(), token, ADA, "create-ada-burst").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Patient.objects.count() == 1
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}


@pytest.mark.django_db
@pytest.mark.parametrize("spelling", ["Token {}", "token {}", "Token  {}", "TOKEN {}"])
def test_a_key_belongs_to_the_account_however_its_token_is_spelt(client, token, spelling):
    post(client, token, ADA, "create-ada-1")
    again = client.post(
        "/api/patients/",
        ADA,
        content_type="application/json",
        HTTP_AUTHORIZATION=spelling.format(token),
        HTTP_IDEMPOTENCY_KEY="create-ada-1",
    )
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Patient.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "Token not-a-token"])
def test_an_unauthenticated_post_with_a_key_stores_nothing(client, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    for _ in range(3):
        response = client.post(
            "/api/patients/", ADA, content_type="application/json", HTTP_IDEMPOTENCY_KEY="anon-1", **headers
        )
        assert response.status_code == 401
    assert not IdempotentRequest.objects.exists()
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_a_form_post_with_a_key_is_refused_not_a_server_error(client, token):
    for _ in range(2):
        response = client.post(
            "/api/patients/",
            ADA,  # the test client sends a multipart form; the API reads JSON only
            HTTP_AUTHORIZATION=f"Token {token}",
            HTTP_IDEMPOTENCY_KEY="form-1",
        )
        assert response.status_code == 415
    assert not Patient.objects.exists()
