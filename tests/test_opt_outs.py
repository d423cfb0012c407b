"""An opt-out is the patient's to take back: staff and integrators may record one, never undo it."""

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from rest_framework.authtoken.models import Token

from clinic.factories import PatientFactory
from clinic.models import Patient
from waitlist.self_service import link_for

pytestmark = pytest.mark.django_db

EMAIL_REFUSED = (
    "Only the patient can take back their email opt-out, on their self-service page (the link in any message "
    "from the clinic)."
)
TEXTS_REFUSED = (
    "The patient withdrew consent to texts; only they can give it again, by replying START or on their "
    "self-service page."
)


def api_as(client, role):
    user = User.objects.create_user(role.replace(" ", "-").lower())
    user.groups.add(Group.objects.get(name=role))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def desk_in_admin(client):
    user = User.objects.create_user("desk", is_staff=True)
    user.groups.add(Group.objects.get(name="Front desk"))
    client.force_login(user)
    return client


def admin_form(patient, **changes):
    data = {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "email": patient.email,
        "phone": "",
        "available_days": [str(day) for day in patient.available_days],
        "preferred_times": "",
        "preferred_channel": patient.preferred_channel,
        "no_show_risk": str(patient.no_show_risk),
        "no_show_risk_source": patient.no_show_risk_source,
        "offers_paused_at_0": "",
        "offers_paused_at_1": "",
        **({"email_opt_out": "on"} if patient.email_opt_out else {}),
        **({"sms_consent": "on"} if patient.sms_consent else {}),
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.mark.parametrize("role", ["Front desk", "Integrator", "Clinic manager"])
def test_the_api_will_not_clear_an_email_opt_out(client, role):
    patient = PatientFactory(email_opt_out=True)
    response = api_as(client, role).patch(
        f"/api/patients/{patient.pk}/", {"email_opt_out": False}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"email_opt_out": [EMAIL_REFUSED]}
    assert Patient.objects.get(pk=patient.pk).email_opt_out


def test_the_api_still_records_an_opt_out(client):
    patient = PatientFactory()
    response = api_as(client, "Integrator").patch(
        f"/api/patients/{patient.pk}/", {"email_opt_out": True}, content_type="application/json"
    )
    assert response.status_code == 200
    assert Patient.objects.get(pk=patient.pk).email_opt_out


def test_the_api_will_not_give_back_consent_to_texts_the_patient_withdrew(client):
    patient = PatientFactory(phone="+16175550123")
    patient.set_sms_consent(False, Patient.ConsentSource.SMS)  # replied STOP
    response = api_as(client, "Integrator").patch(
        f"/api/patients/{patient.pk}/", {"sms_consent": True}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"sms_consent": [TEXTS_REFUSED]}
    assert not Patient.objects.get(pk=patient.pk).sms_consent


def test_staff_may_record_consent_never_withdrawn(client):
    patient = PatientFactory(phone="+16175550123")
    response = api_as(client, "Integrator").patch(
        f"/api/patients/{patient.pk}/", {"sms_consent": True}, content_type="application/json"
    )
    assert response.status_code == 200


def test_the_admin_form_will_not_clear_an_email_opt_out(client):
    patient = PatientFactory(email_opt_out=True)
    response = desk_in_admin(client).post(
        reverse("admin:clinic_patient_change", args=[patient.pk]), admin_form(patient, email_opt_out=None)
    )
    assert response.status_code == 200
    assert EMAIL_REFUSED in response.content.decode().replace("&#x27;", "'")
    assert Patient.objects.get(pk=patient.pk).email_opt_out


def test_the_patient_takes_back_their_email_opt_out_on_their_page(client):
    patient = PatientFactory(email_opt_out=True)
    url = "/" + link_for(patient).split("/", 3)[3]
    assert b"Do not email me" in client.get(url).content
    client.post(url, {"action": "contact", "preferred_channel": "email"})
    assert not Patient.objects.get(pk=patient.pk).email_opt_out
