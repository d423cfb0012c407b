"""The paged explanation of a slot's waitlist is explain_slot's, page by page."""

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill.explained_waitlist import ExplainedWaitlist
from backfill.explanation import explain_slot
from backfill.models import FreedSlot
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db

DAYS = ["mon", "tue", "wed", "thu", "fri"]
entries = st.lists(
    st.fixed_dictionaries(
        {
            "risk": st.sampled_from([0.0, 0.3, 0.59, 0.6, 0.7, 0.79, 0.8, 0.95]),
            # A learned risk's standing among the clinic's patients (None: the risk is typed).
            "standing": st.sampled_from([None, None, 0.2, 0.49, 0.5, 0.79, 0.8, 0.97]),
            "days": st.lists(st.sampled_from(DAYS), max_size=3, unique=True),
            "windows": st.sampled_from([[], ["08:00-12:00"], ["12:00-17:00"]]),
            "here": st.booleans(),
            "declined": st.booleans(),
            "opted_out": st.booleans(),
            "busy": st.booleans(),
            "minutes_waiting": st.integers(0, 5),
        }
    ),
    max_size=8,
)


def build(specs):
    riverside, elsewhere = LocationFactory(name="Riverside"), LocationFactory(name="Northside")
    provider = ProviderFactory(location=riverside, specialty=SpecialtyFactory(name="Orthopedic PT"))
    today = timezone.localdate()
    start = timezone.make_aware(datetime.combine(today + timedelta(days=(2 - today.weekday()) % 7 or 7), time(10)))
    appointment = AppointmentFactory(
        provider=provider, start=start, end=start + timedelta(minutes=45), status=Appointment.Status.CANCELLED
    )
    slot = FreedSlot.objects.create(provider=provider, start=start, end=appointment.end, appointment=appointment)
    now = timezone.now()
    for spec in specs:
        learned = spec.get("standing") is not None
        patient = PatientFactory(
            no_show_risk=spec["risk"] / 3 if learned else spec["risk"],
            no_show_risk_model=spec["risk"] / 3 if learned else None,
            no_show_risk_standing=spec.get("standing"),
            email_opt_out=spec["opted_out"],
            preferred_location=riverside if spec["here"] else elsewhere,
        )
        WaitlistEntryFactory(
            patient=patient,
            specialty=provider.specialty,
            available_days=spec["days"],
            time_windows=spec["windows"],
            reason=WaitlistEntry.Reason.DECLINED_REASSIGNMENT if spec["declined"] else WaitlistEntry.Reason.STAFF,
            created_at=now - timedelta(minutes=spec["minutes_waiting"]),
        )
        if spec["busy"]:
            AppointmentFactory(patient=patient, start=start, end=start + timedelta(minutes=30))
    return slot


def described(explanations):
    return [(e.entry.pk, e.eligible, e.score, e.outcome, e.reasons, e.summary) for e in explanations]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=entries, page_size=st.integers(1, 5))
def test_its_pages_are_explain_slots_in_the_same_order(django_db_blocker, specs, page_size):
    from django.db import transaction

    with transaction.atomic():
        slot = build(specs)
        paged = ExplainedWaitlist(slot)
        reference = explain_slot(slot)
        pages = [paged[start : start + page_size] for start in range(0, len(paged), page_size)]
        assert len(paged) == len(reference)
        assert described([e for page in pages for e in page]) == described(reference)
        transaction.set_rollback(True)


def test_it_puts_the_patient_booked_into_the_slot_where_explain_slot_does(django_capture_on_commit_callbacks):
    slot = build([])
    slot.delete()
    appointment = Appointment.objects.get(status="cancelled")
    booked_here = AppointmentFactory(provider=appointment.provider, start=appointment.start, end=appointment.end)
    for risk in (0.9, 0.7):
        WaitlistEntryFactory(patient=PatientFactory(no_show_risk=risk), specialty=appointment.provider.specialty)
    chosen = WaitlistEntryFactory(patient=booked_here.patient, specialty=appointment.provider.specialty)
    chosen.status, chosen.booked_appointment = WaitlistEntry.Status.BOOKED, booked_here
    chosen.save()
    slot = FreedSlot.objects.create(
        provider=appointment.provider,
        start=appointment.start,
        end=appointment.end,
        appointment=appointment,
        status=FreedSlot.Status.MANUAL,
        filled_by=booked_here,
    )

    assert described(ExplainedWaitlist(slot)[0:10]) == described(explain_slot(slot))
    assert [e.outcome for e in ExplainedWaitlist(slot)[0:10]].count("booked") == 1


def test_a_page_costs_a_few_queries_whatever_the_waitlist(django_assert_max_num_queries):
    slot = build(
        [
            {
                "risk": 0.9,
                "days": [],
                "windows": [],
                "here": True,
                "declined": False,
                "opted_out": False,
                "busy": False,
                "minutes_waiting": n % 5,
            }
            for n in range(30)
        ]
    )
    with django_assert_max_num_queries(4):
        page = ExplainedWaitlist(slot)[0:10]
    assert len(page) == 10
