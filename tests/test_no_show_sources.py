"""docs/reference.md, No-show model: where a patient's no-show risk comes from, and who may change it."""

import pytest

from clinic.factories import LocationFactory, PatientFactory
from clinic.models import Patient
from clinic.risk_scale import ranking_risk_of_standing
from scheduling.no_show import train_and_apply
from tests.no_show_history import generate_history, known_rule
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db
MANUAL, API, MODEL = Patient.RiskSource.MANUAL, Patient.RiskSource.API, Patient.RiskSource.MODEL


@pytest.fixture
def history():
    generate_history(known_rule)
    return Patient.objects.order_by("pk")


@pytest.fixture
def model_in_use(history):
    return train_and_apply().in_use


def admin_form(patient, **changes):
    return {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "email": patient.email,
        "phone": patient.phone,
        "preferred_location": patient.preferred_location_id or "",
        "preferred_times": "",
        "no_show_risk": patient.no_show_risk,
        "no_show_risk_source": patient.no_show_risk_source,
        "preferred_channel": patient.preferred_channel,
        **changes,
    }


def test_the_model_never_overwrites_a_risk_staff_typed_or_an_integrator_sent(history):
    typed, sent, left = history[0], history[1], history[2]
    Patient.objects.filter(pk=typed.pk).update(no_show_risk=0.95, no_show_risk_source=MANUAL)
    Patient.objects.filter(pk=sent.pk).update(no_show_risk=0.01, no_show_risk_source=API)

    train_and_apply()

    for patient in (typed, sent, left):
        patient.refresh_from_db()
    assert (typed.no_show_risk, typed.no_show_risk_source) == (0.95, MANUAL)
    assert (sent.no_show_risk, sent.no_show_risk_source) == (0.01, API)
    assert typed.no_show_risk_model is not None and sent.no_show_risk_model is not None
    assert left.no_show_risk == left.no_show_risk_model != 0.3


def test_the_model_updates_the_copy_of_the_risk_on_waiting_entries(history):
    entry = WaitlistEntryFactory(patient=history[0])

    train_and_apply()

    entry.refresh_from_db()
    patient = Patient.objects.get(pk=history[0].pk)
    assert patient.risk_is_learned
    assert entry.ranking_risk == patient.ranking_risk == ranking_risk_of_standing(patient.no_show_risk_standing)


def test_a_typed_risk_ranks_as_it_is_and_a_learned_one_by_where_it_stands(history):
    typed, learned = history[0], history[1]
    train_and_apply()
    typed.refresh_from_db()
    typed.set_no_show_risk(0.65, MANUAL)
    typed.save()
    learned.refresh_from_db()

    assert typed.ranking_risk == 0.65
    assert learned.ranking_risk == ranking_risk_of_standing(learned.no_show_risk_standing) != learned.no_show_risk


def test_handing_a_risk_back_to_the_model_ranks_it_by_its_standing_again(history):
    train_and_apply()
    patient = Patient.objects.get(pk=history[0].pk)
    entry = WaitlistEntryFactory(patient=patient)
    patient.set_no_show_risk(0.99, MANUAL)
    patient.save()

    patient.hand_risk_to_model()
    patient.save()

    entry.refresh_from_db()
    assert entry.ranking_risk == ranking_risk_of_standing(patient.no_show_risk_standing)


def test_an_integrator_sending_a_risk_makes_it_theirs(staff_client):
    patient = PatientFactory()

    response = staff_client.patch(
        f"/api/patients/{patient.pk}/", {"no_show_risk": 0.7}, content_type="application/json"
    )

    assert response.json()["no_show_risk_source"] == "api"
    patient.refresh_from_db()
    assert (patient.no_show_risk, patient.no_show_risk_source) == (0.7, API)


def test_a_patient_created_through_the_api_with_a_risk_has_an_api_risk(staff_client):
    body = {"first_name": "Ana", "last_name": "Sent", "email": "ana@mail.example", "no_show_risk": 0.4}

    response = staff_client.post("/api/patients/", body, content_type="application/json")

    assert response.status_code == 201
    assert (response.json()["no_show_risk"], response.json()["no_show_risk_source"]) == (0.4, "api")


def test_the_api_does_not_let_integrators_claim_a_source(staff_client):
    patient = PatientFactory(no_show_risk_source=MANUAL)

    staff_client.patch(
        f"/api/patients/{patient.pk}/", {"no_show_risk_source": "model"}, content_type="application/json"
    )

    patient.refresh_from_db()
    assert patient.no_show_risk_source == MANUAL


def test_a_new_patient_starts_at_the_model_estimate_once_a_model_is_in_use(staff_client, model_in_use):
    body = {"first_name": "Ben", "last_name": "New", "email": "ben@mail.example"}

    answer = staff_client.post("/api/patients/", body, content_type="application/json").json()

    first_visit = model_in_use.typical_visit["first_visit"]
    assert answer["no_show_risk_source"] == "model"
    assert answer["no_show_risk"] == first_visit["estimate"] > 0
    assert Patient.objects.get(pk=answer["id"]).no_show_risk_model == first_visit["estimate"]


def test_a_new_patient_without_a_model_keeps_the_default_risk(staff_client):
    body = {"first_name": "Ben", "last_name": "New", "email": "ben@mail.example"}

    answer = staff_client.post("/api/patients/", body, content_type="application/json").json()

    assert (answer["no_show_risk"], answer["no_show_risk_source"]) == (0.0, "model")


def test_staff_typing_a_risk_in_the_admin_makes_it_manual(staff_client):
    patient = PatientFactory(preferred_location=LocationFactory())

    response = staff_client.post(f"/admin/clinic/patient/{patient.pk}/change/", admin_form(patient, no_show_risk=0.8))

    assert response.status_code == 302
    patient.refresh_from_db()
    assert (patient.no_show_risk, patient.no_show_risk_source) == (0.8, MANUAL)


def test_a_patient_added_in_the_admin_with_a_risk_has_a_manual_risk(staff_client):
    form = admin_form(Patient(first_name="Cy", last_name="Typed", email="cy@mail.example"), no_show_risk=0.65)

    staff_client.post("/admin/clinic/patient/add/", form)

    assert Patient.objects.get(email="cy@mail.example").no_show_risk_source == MANUAL


def test_staff_can_hand_a_risk_back_to_the_model(staff_client, model_in_use):
    patient = Patient.objects.order_by("pk").first()
    Patient.objects.filter(pk=patient.pk).update(no_show_risk=0.99, no_show_risk_source=MANUAL)
    patient.refresh_from_db()

    staff_client.post(f"/admin/clinic/patient/{patient.pk}/change/", admin_form(patient, no_show_risk_source="model"))

    patient.refresh_from_db()
    assert patient.no_show_risk_source == MODEL
    assert patient.no_show_risk == patient.no_show_risk_model != 0.99


def test_the_patient_page_shows_the_model_estimate_beside_a_manual_risk_and_its_reasons(staff_client, model_in_use):
    patient = max(Patient.objects.all(), key=lambda p: p.no_show_risk_model)
    Patient.objects.filter(pk=patient.pk).update(no_show_risk=0.1, no_show_risk_source=MANUAL)

    page = staff_client.get(f"/admin/clinic/patient/{patient.pk}/change/").content.decode()

    assert 'name="no_show_risk" value="0.1"' in page
    assert f"{patient.no_show_risk_model:.2f}, in this clinic&#x27;s highest fifth" in page  # the top estimate
    assert patient.no_show_risk_reasons and f"<li>{patient.no_show_risk_reasons[0]}</li>" in page


def test_the_api_gives_a_learned_risks_standing_and_none_for_a_sent_one(staff_client, model_in_use):
    learned, sent = Patient.objects.order_by("pk")[:2]
    staff_client.patch(f"/api/patients/{sent.pk}/", {"no_show_risk": 0.7}, content_type="application/json")

    answers = {p.pk: staff_client.get(f"/api/patients/{p.pk}/").json() for p in (learned, sent)}

    learned.refresh_from_db()
    assert answers[learned.pk]["no_show_risk_standing"] == learned.no_show_risk_standing is not None
    assert answers[sent.pk]["no_show_risk_standing"] is None
