"""The unsubscribe page says what it changes and offers texts instead (docs/reference.md, Reachable)."""

import pytest

from clinic.email import unsubscribe_url
from clinic.factories import PatientFactory
from clinic.models import Patient

pytestmark = pytest.mark.django_db


def page_of(patient):
    return unsubscribe_url(patient.pk).removeprefix("http://testserver")


def test_it_says_texts_go_on_for_a_patient_who_consented_to_them(client):
    patient = PatientFactory(sms_consent=True, phone="+16175550123")

    page = client.get(page_of(patient)).content.decode()

    assert "We will no longer email" in page
    assert "We will text you at +16175550123 instead" in page and "can still be booked automatically" in page
    assert "Texts instead?" not in page


def test_it_warns_a_patient_with_no_other_channel_that_automatic_booking_stops(client):
    patient = PatientFactory(sms_consent=False)

    page = client.get(page_of(patient)).content.decode()

    assert "we would stop booking you automatically from the waitlist" in page
    assert "Texts instead?" in page and 'name="phone"' in page and 'name="consent"' in page


def test_a_get_changes_nothing(client):
    patient = PatientFactory()
    client.get(page_of(patient))
    patient.refresh_from_db()
    assert not patient.email_opt_out


def test_unsubscribing_without_texts_says_the_patient_is_no_longer_booked_automatically(client):
    patient = PatientFactory(sms_consent=False)

    page = client.post(page_of(patient), {"List-Unsubscribe": "One-Click"}).content.decode()

    patient.refresh_from_db()
    assert patient.email_opt_out and not patient.is_reachable
    assert "You are unsubscribed" in page and "we will not book you automatically" in page
    assert "Text me instead" in page


def test_texts_instead_keeps_the_patient_reachable_and_bookable(client):
    patient = PatientFactory(sms_consent=False, phone="", preferred_channel="email")

    response = client.post(page_of(patient), {"action": "texts", "phone": "(617) 555-0188", "consent": "on"})

    patient.refresh_from_db()
    assert response.status_code == 200
    assert (str(patient.phone), patient.sms_consent, patient.preferred_channel) == ("+16175550188", True, "sms")
    assert patient.sms_consent_source == Patient.ConsentSource.PATIENT
    assert patient.email_opt_out and patient.is_reachable
    assert Patient.objects.reachable().filter(pk=patient.pk).exists()
    assert "We will text you at +16175550188 instead" in response.content.decode()


@pytest.mark.parametrize(
    "form", [{"action": "texts", "phone": "not a number", "consent": "on"}, {"action": "texts", "phone": "6175550188"}]
)
def test_texts_instead_without_a_number_or_consent_is_refused_and_changes_nothing(client, form):
    patient = PatientFactory(sms_consent=False, phone="")

    response = client.post(page_of(patient), form)

    assert response.status_code == 400
    patient.refresh_from_db()
    assert (patient.email_opt_out, patient.sms_consent, str(patient.phone)) == (False, False, "")


def test_a_forged_link_changes_nothing(client):
    response = client.post("/unsubscribe/forged/", {"action": "texts", "phone": "6175550188", "consent": "on"})
    assert response.status_code == 400
