"""Why this patient and not that one, in the rule table's words (docs/reference.md, Staff explanation)."""

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from backfill.explanation import explain, explain_slot
from backfill.matching import SlotFacts, rank_candidates
from backfill.models import FreedSlot
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


def next_wednesday_at(hour):
    today = timezone.localdate()
    day = today + timedelta(days=(2 - today.weekday()) % 7 or 7)
    return timezone.make_aware(datetime.combine(day, time(hour)))


@pytest.fixture
def riverside():
    return LocationFactory(name="Riverside")


@pytest.fixture
def slot(riverside):
    provider = ProviderFactory(name="Dr Chen", location=riverside)
    appointment = AppointmentFactory(
        provider=provider, start=next_wednesday_at(10), status=Appointment.Status.CANCELLED
    )
    return FreedSlot.objects.create(
        provider=provider, start=appointment.start, end=appointment.end, appointment=appointment
    )


def waiting(slot, risk=0.85, **fields):
    patient = PatientFactory(no_show_risk=risk, preferred_location=fields.pop("location", slot.provider.location))
    return WaitlistEntryFactory(patient=patient, specialty=slot.provider.specialty, **fields)


def test_it_gives_the_points_of_each_rule_in_words(slot):
    entry = waiting(slot, available_days=["wed"])

    explanation = explain(entry, SlotFacts.of(slot))

    assert explanation.eligible
    assert explanation.score == 90
    assert explanation.summary == (
        "no-show risk 0.85: +40 · waits for Orthopedic PT: +20 · available Wednesdays: +20 · prefers Riverside: +10"
    )


def test_it_says_why_an_entry_cannot_be_booked(slot):
    other = ProviderFactory(name="Dr Ito", specialty=slot.provider.specialty)
    entry = waiting(slot, risk=0.56, available_days=["tue"], time_windows=["12:00-17:00"], preferred_provider=other)

    explanation = explain(entry, SlotFacts.of(slot))

    assert not explanation.eligible
    assert explanation.reasons == [
        "no-show risk 0.56 is under the minimum 0.6",
        "not available on Wednesdays",
        "only 12:00–17:00",
        "waits for Dr Ito only",
        "score 30 is under the minimum 50",
    ]


def test_it_names_the_appointment_a_busy_patient_already_has(slot):
    entry = waiting(slot)
    busy_with = AppointmentFactory(
        patient=entry.patient,
        provider=ProviderFactory(name="Dr Park"),
        start=slot.start,
        end=slot.start + timedelta(minutes=45),
    )

    explanation = explain(entry, SlotFacts.of(slot), busy_with=busy_with)

    assert explanation.reasons == ["already booked 10:00–10:45 with Dr Park"]


def test_it_lists_the_slots_waitlist_eligible_first_in_the_engines_order(slot, riverside):
    lower = waiting(slot, risk=0.7)
    best = waiting(slot, risk=0.9)
    elsewhere = waiting(slot, risk=0.9, location=LocationFactory(name="Northside"))
    unavailable = waiting(slot, available_days=["mon"])

    explained = explain_slot(slot)

    engine = [c.entry.pk for c in rank_candidates(SlotFacts.of(slot))]
    assert [e.entry.pk for e in explained if e.eligible] == engine == [best.pk, elsewhere.pk, lower.pk]
    assert [(e.entry.pk, e.outcome) for e in explained] == [
        (best.pk, "ranked_lower"),
        (elsewhere.pk, "ranked_lower"),
        (lower.pk, "ranked_lower"),
        (unavailable.pk, "left_out"),
    ]


def test_it_marks_whom_the_backfill_booked(riverside, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(provider=ProviderFactory(location=riverside), start=next_wednesday_at(10))
    best = WaitlistEntryFactory(patient=PatientFactory(no_show_risk=0.9), specialty=appointment.provider.specialty)
    other = WaitlistEntryFactory(patient=PatientFactory(no_show_risk=0.7), specialty=appointment.provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    slot = FreedSlot.objects.get(appointment=appointment)

    explained = explain_slot(slot)

    assert slot.status == FreedSlot.Status.BACKFILLED
    assert [(e.entry.pk, e.eligible, e.outcome) for e in explained] == [
        (best.pk, True, "booked"),
        (other.pk, True, "ranked_lower"),
    ]


def test_the_api_explains_a_slot_with_patients_by_name(staff_client, slot):
    entry = waiting(slot, available_days=["mon"])

    body = staff_client.get(f"/api/freed-slots/{slot.pk}/explain/").json()

    assert body["count"] == 1
    item = body["results"][0]
    assert item["waitlist_entry"] == entry.pk
    assert item["patient"] == {"id": entry.patient.pk, "name": str(entry.patient)}
    assert (item["eligible"], item["score"], item["outcome"]) == (False, 70, "left_out")
    assert item["reasons"] == ["not available on Wednesdays"]
    assert item["breakdown"][2] == {"rule": "availability", "points": 0, "words": "not available Wednesdays: +0"}


def test_the_explanation_of_a_long_waitlist_takes_a_bounded_number_of_queries(
    staff_client, slot, django_assert_max_num_queries
):
    for risk in (0.9, 0.8, 0.7, 0.5, 0.3) * 4:
        waiting(slot, risk=risk, available_days=["mon", "wed"])

    with django_assert_max_num_queries(9):  # session, user, slot, plans, provider, busy, entries, count
        body = staff_client.get(f"/api/freed-slots/{slot.pk}/explain/").json()

    assert body["count"] == 20
