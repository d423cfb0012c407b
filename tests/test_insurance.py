"""Insurance (docs/reference.md, Insurance): a patient is only booked with a provider who takes their plan."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from backfill.explanation import explain
from backfill.matching import SlotFacts
from backfill.models import FreedSlot
from clinic.factories import PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import InsurancePlan, Patient, Provider, takes_plan
from scheduling.factories import AppointmentFactory, next_weekday_at
from scheduling.reassignment import mark_provider_unavailable
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def aetna():
    return InsurancePlan.objects.create(name="Aetna Choice POS II", payer="Aetna")


@pytest.fixture
def medicare():
    return InsurancePlan.objects.create(name="Medicare Part B", payer="Medicare")


@pytest.fixture
def dr_ito(medicare):
    """Takes Medicare only."""
    provider = ProviderFactory(name="Dr Ito", specialty=SpecialtyFactory(name="Orthopedic PT"))
    provider.accepted_insurance_plans.set([medicare])
    return provider


def waiting(provider, risk, plan=None):
    patient = PatientFactory(no_show_risk=risk, insurance_plan=plan, preferred_location=provider.location)
    return WaitlistEntryFactory(patient=patient, specialty=provider.specialty)


def cancel(appointment, capture):
    with capture(execute=True):
        appointment.cancel("patient called in sick")
    return FreedSlot.objects.get(appointment=appointment)


def test_the_backfill_passes_over_a_patient_whose_plan_the_provider_does_not_take(
    dr_ito, aetna, medicare, django_capture_on_commit_callbacks
):
    waiting(dr_ito, 0.95, plan=aetna)
    covered = waiting(dr_ito, 0.7, plan=medicare)

    slot = cancel(AppointmentFactory(provider=dr_ito), django_capture_on_commit_callbacks)

    assert slot.status == FreedSlot.Status.BACKFILLED
    assert slot.filled_by.patient == covered.patient


def test_self_pay_patients_and_providers_listing_no_plans_take_anyone(aetna, django_capture_on_commit_callbacks):
    anyone = ProviderFactory()
    insured = waiting(anyone, 0.9, plan=aetna)

    slot = cancel(AppointmentFactory(provider=anyone), django_capture_on_commit_callbacks)

    assert slot.filled_by.patient == insured.patient
    assert list(Provider.objects.accepting(None)) == list(Provider.objects.all())


def test_staff_read_why_in_words(dr_ito, aetna):
    entry = waiting(dr_ito, 0.9, plan=aetna)
    start = next_weekday_at(10)
    slot = SlotFacts(dr_ito.pk, dr_ito.specialty_id, dr_ito.location_id, start, start + timedelta(minutes=45))

    assert explain(entry, slot).reasons == ["Dr Ito does not take Aetna Choice POS II"]


def test_reassignment_skips_a_colleague_who_does_not_take_the_patients_plan(dr_ito, aetna, medicare):
    away = ProviderFactory(name="Dr Away", specialty=dr_ito.specialty, location=dr_ito.location)
    takes_aetna = ProviderFactory(name="Dr Park", specialty=dr_ito.specialty, location=dr_ito.location)
    takes_aetna.accepted_insurance_plans.set([aetna])
    appointment = AppointmentFactory(
        provider=away, patient=PatientFactory(insurance_plan=aetna), start=next_weekday_at(10)
    )

    day = appointment.start.date()
    summary = mark_provider_unavailable(away, day, day, "sick")

    assert [row["provider"] for row in summary.reassigned] == [takes_aetna.pk]


def test_reassignment_waitlists_when_no_colleague_takes_the_plan(dr_ito, aetna):
    away = ProviderFactory(name="Dr Away", specialty=dr_ito.specialty, location=dr_ito.location)
    appointment = AppointmentFactory(
        provider=away, patient=PatientFactory(insurance_plan=aetna), start=next_weekday_at(10)
    )

    day = appointment.start.date()
    summary = mark_provider_unavailable(away, day, day, "sick")

    assert summary.reassigned == []
    assert "no other Orthopedic PT provider who takes Aetna Choice POS II is free then" in summary.notes[-1][1]


def api_as(client, role):
    user = User.objects.create_user(f"api-{role}".replace(" ", "-").lower(), password="a-long-pass-phrase")
    user.groups.add(Group.objects.get(name=role))
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    return client


def test_a_manager_adds_a_plan_and_the_front_desk_only_reads_them(client, aetna):
    manager = api_as(client, "Clinic manager")
    created = manager.post(
        "/api/insurance-plans/",
        {"name": "Blue Cross PPO", "payer": "Blue Cross Blue Shield"},
        content_type="application/json",
    )
    desk = api_as(client, "Front desk")

    assert created.status_code == 201
    assert [plan["name"] for plan in desk.get("/api/insurance-plans/").json()["results"]] == [
        "Aetna Choice POS II",
        "Blue Cross PPO",
    ]
    assert (
        desk.post("/api/insurance-plans/", {"name": "X", "payer": "Y"}, content_type="application/json").status_code
        == 403
    )


def test_the_api_sets_a_patients_plan_and_a_providers_plans(client, dr_ito, aetna, medicare):
    api = api_as(client, "Integrator")
    patient = PatientFactory()

    api.patch(f"/api/patients/{patient.pk}/", {"insurance_plan": aetna.pk}, content_type="application/json")
    provider = api.patch(
        f"/api/providers/{dr_ito.pk}/",
        {"accepted_insurance_plans": [aetna.pk, medicare.pk]},
        content_type="application/json",
    ).json()
    bad = api.patch(f"/api/patients/{patient.pk}/", {"insurance_plan": 9999}, content_type="application/json")

    assert Patient.objects.get(pk=patient.pk).insurance_plan == aetna
    assert sorted(provider["accepted_insurance_plans"]) == sorted([aetna.pk, medicare.pk])
    assert bad.status_code == 400 and "insurance_plan" in bad.json()


def test_a_patient_who_changes_plan_is_matched_on_the_new_one(
    dr_ito, aetna, medicare, django_capture_on_commit_callbacks
):
    entry = waiting(dr_ito, 0.9, plan=medicare)
    entry.patient.insurance_plan = aetna
    entry.patient.save()

    slot = cancel(AppointmentFactory(provider=dr_ito), django_capture_on_commit_callbacks)

    assert slot.status == FreedSlot.Status.NO_MATCH


def test_the_orm_form_of_the_rule_agrees_with_takes_plan(dr_ito, aetna, medicare):
    takes_all = ProviderFactory(name="Dr Any", specialty=dr_ito.specialty)
    for plan in (None, aetna, medicare):
        plan_id = plan and plan.pk
        by_orm = set(Provider.objects.accepting(plan_id).values_list("pk", flat=True))
        by_rule = {
            provider.pk
            for provider in (dr_ito, takes_all)
            if takes_plan(plan_id, set(provider.accepted_insurance_plans.values_list("pk", flat=True)))
        }
        assert by_orm == by_rule, plan
