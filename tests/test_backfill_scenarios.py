from datetime import timedelta

import pytest
from django.core import mail

from backfill.models import FreedSlot, MatchLog
from clinic.factories import HighRiskPatientFactory, LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture
def orthopedic_provider():
    return ProviderFactory(specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory(name="Downtown"))


def cancel(appointment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("patient called in sick")
    return FreedSlot.objects.filter(appointment=appointment).first()


def test_it_books_the_high_risk_waitlisted_patient(orthopedic_provider, django_capture_on_commit_callbacks):
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=orthopedic_provider.specialty)
    appointment = AppointmentFactory(provider=orthopedic_provider)

    slot = cancel(appointment, django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    entry.refresh_from_db()
    assert slot.status == FreedSlot.Status.BACKFILLED
    assert slot.filled_by.patient == entry.patient
    assert slot.filled_by.source == Appointment.Source.BACKFILL
    assert entry.status == WaitlistEntry.Status.BOOKED
    assert [m.to for m in mail.outbox] == [[entry.patient.email]]
    assert "Cancel this appointment" in mail.outbox[0].alternatives[0][0]


def test_it_leaves_the_slot_open_when_nobody_has_the_specialty(
    orthopedic_provider, django_capture_on_commit_callbacks
):
    WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=SpecialtyFactory(name="Pediatric PT"))

    slot = cancel(AppointmentFactory(provider=orthopedic_provider), django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.NO_MATCH
    assert slot.filled_by is None


def test_it_skips_a_patient_already_booked_then(orthopedic_provider, django_capture_on_commit_callbacks):
    busy = WaitlistEntryFactory(
        patient=HighRiskPatientFactory(no_show_risk=0.95), specialty=orthopedic_provider.specialty
    )
    free = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=orthopedic_provider.specialty)
    appointment = AppointmentFactory(provider=orthopedic_provider)
    AppointmentFactory(patient=busy.patient, start=appointment.start, end=appointment.end)

    slot = cancel(appointment, django_capture_on_commit_callbacks)

    slot.refresh_from_db()
    assert slot.filled_by.patient == free.patient
    outcomes = dict(MatchLog.objects.filter(slot=slot).values_list("patient_id", "outcome"))
    assert outcomes == {busy.patient_id: "already_booked", free.patient_id: "booked"}


def waiting(provider, **patient_fields):
    location = patient_fields.pop("preferred_location", provider.location)
    reason = patient_fields.pop("reason", WaitlistEntry.Reason.STAFF)
    created_at = patient_fields.pop("created_at", None)
    patient = PatientFactory(preferred_location=location, **patient_fields)
    entry = WaitlistEntryFactory(patient=patient, specialty=provider.specialty, reason=reason)
    if created_at:
        WaitlistEntry.objects.filter(pk=entry.pk).update(created_at=created_at)
    return entry


def booked_patient(provider, django_capture_on_commit_callbacks):
    slot = cancel(AppointmentFactory(provider=provider), django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    return slot.filled_by.patient if slot.filled_by else None


def test_the_highest_score_wins(orthopedic_provider, django_capture_on_commit_callbacks):
    waiting(orthopedic_provider, no_show_risk=0.65)  # 30 + 20 + 20 + 10 = 80
    best = waiting(orthopedic_provider, no_show_risk=0.9)  # 40 + 20 + 20 + 10 = 90
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) == best.patient


def test_location_preference_adds_points(orthopedic_provider, django_capture_on_commit_callbacks):
    elsewhere = LocationFactory(name="Northside")
    waiting(orthopedic_provider, no_show_risk=0.9, preferred_location=elsewhere)  # 80
    near = waiting(orthopedic_provider, no_show_risk=0.85)  # 90
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) == near.patient


def test_on_a_tie_a_patient_who_declined_a_reassignment_goes_first(
    orthopedic_provider, django_capture_on_commit_callbacks
):
    waiting(orthopedic_provider, no_show_risk=0.95)
    declined = waiting(orthopedic_provider, no_show_risk=0.85, reason=WaitlistEntry.Reason.DECLINED_REASSIGNMENT)
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) == declined.patient


def test_on_a_tie_higher_risk_goes_first(orthopedic_provider, django_capture_on_commit_callbacks):
    waiting(orthopedic_provider, no_show_risk=0.82)
    riskier = waiting(orthopedic_provider, no_show_risk=0.91)
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) == riskier.patient


def test_on_a_full_tie_the_longest_waiting_goes_first(orthopedic_provider, django_capture_on_commit_callbacks):
    from django.utils import timezone

    waiting(orthopedic_provider, no_show_risk=0.9, created_at=timezone.now() - timedelta(days=1))
    longest = waiting(orthopedic_provider, no_show_risk=0.9, created_at=timezone.now() - timedelta(days=9))
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) == longest.patient


def test_a_patient_below_the_minimum_risk_is_not_booked(orthopedic_provider, django_capture_on_commit_callbacks):
    waiting(orthopedic_provider, no_show_risk=0.5)
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) is None


def test_turning_the_risk_filter_off_books_a_low_risk_patient(
    orthopedic_provider, django_capture_on_commit_callbacks, settings
):
    settings.BACKFILL = {**settings.BACKFILL, "MIN_NO_SHOW_RISK": 0}
    low = waiting(orthopedic_provider, no_show_risk=0.2)  # 0 + 20 + 20 + 10 = 50: just at the threshold
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) == low.patient


def test_raising_the_threshold_leaves_the_slot_open(orthopedic_provider, django_capture_on_commit_callbacks, settings):
    settings.BACKFILL = {**settings.BACKFILL, "MIN_SCORE": 85}
    waiting(orthopedic_provider, no_show_risk=0.7)  # 80
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) is None


def test_a_patient_unavailable_that_weekday_is_not_booked(orthopedic_provider, django_capture_on_commit_callbacks):
    appointment = AppointmentFactory(provider=orthopedic_provider)
    other_day = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"} - {appointment.start.strftime("%a").lower()}
    entry = waiting(orthopedic_provider, no_show_risk=0.9)
    entry.available_days = sorted(other_day)
    entry.save()
    slot = cancel(appointment, django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.NO_MATCH


def test_a_patient_outside_their_time_window_is_not_booked(orthopedic_provider, django_capture_on_commit_callbacks):
    entry = waiting(orthopedic_provider, no_show_risk=0.9)
    entry.time_windows = ["16:00-19:00"]  # the factory's slot is at 10:00
    entry.save()
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) is None


def test_the_patient_who_gave_up_the_slot_is_not_booked_back_into_it(
    orthopedic_provider, django_capture_on_commit_callbacks
):
    entry = waiting(orthopedic_provider, no_show_risk=0.9)
    appointment = AppointmentFactory(provider=orthopedic_provider, patient=entry.patient)
    slot = cancel(appointment, django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    assert slot.status == FreedSlot.Status.NO_MATCH


def test_an_opted_out_patient_is_not_booked(orthopedic_provider, django_capture_on_commit_callbacks):
    waiting(orthopedic_provider, no_show_risk=0.9, email_opt_out=True)
    assert booked_patient(orthopedic_provider, django_capture_on_commit_callbacks) is None


def test_the_match_log_explains_the_choice(orthopedic_provider, django_capture_on_commit_callbacks):
    winner = waiting(orthopedic_provider, no_show_risk=0.9)
    runner_up = waiting(orthopedic_provider, no_show_risk=0.7)
    slot = cancel(AppointmentFactory(provider=orthopedic_provider), django_capture_on_commit_callbacks)
    logs = list(MatchLog.objects.filter(slot=slot).order_by("rank"))
    assert [(log.patient_id, log.score, log.outcome) for log in logs] == [
        (winner.patient_id, 90, "booked"),
        (runner_up.patient_id, 80, "ranked_lower"),
    ]
    assert logs[0].breakdown == {"no_show_risk": 40, "specialty": 20, "availability": 20, "location": 10}


def test_when_the_best_few_are_all_busy_it_looks_further_down(
    orthopedic_provider, django_capture_on_commit_callbacks, settings
):
    settings.BACKFILL = {**settings.BACKFILL, "CANDIDATE_POOL": 2}
    appointment = AppointmentFactory(provider=orthopedic_provider)
    for risk in (0.99, 0.98, 0.97):
        busy = waiting(orthopedic_provider, no_show_risk=risk)
        AppointmentFactory(patient=busy.patient, start=appointment.start, end=appointment.end)
    free = waiting(orthopedic_provider, no_show_risk=0.9)
    slot = cancel(appointment, django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    assert slot.filled_by.patient == free.patient
    assert list(slot.match_logs.order_by("rank").values_list("outcome", flat=True)) == ["already_booked"] * 3 + [
        "booked"
    ]


def test_time_of_day_points_favour_a_patient_who_prefers_that_time(
    orthopedic_provider, django_capture_on_commit_callbacks, settings
):
    settings.BACKFILL = {**settings.BACKFILL, "TIME_OF_DAY_POINTS": 15}
    waiting(orthopedic_provider, no_show_risk=0.95)  # 90, no stated time
    morning = waiting(orthopedic_provider, no_show_risk=0.85)
    morning.time_windows = ["08:00-12:00"]  # the slot is at 10:00: 90 + 15
    morning.save()
    slot = cancel(AppointmentFactory(provider=orthopedic_provider), django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    assert slot.filled_by.patient == morning.patient
    assert slot.match_logs.get(patient=morning.patient).breakdown["time_of_day"] == 15


def test_availability_can_be_scored_instead_of_required(
    orthopedic_provider, django_capture_on_commit_callbacks, settings
):
    settings.BACKFILL = {**settings.BACKFILL, "REQUIRE_AVAILABILITY": False}
    appointment = AppointmentFactory(provider=orthopedic_provider)
    other_days = sorted({"mon", "tue", "wed", "thu", "fri", "sat", "sun"} - {appointment.start.strftime("%a").lower()})
    entry = waiting(orthopedic_provider, no_show_risk=0.9)
    entry.available_days = other_days
    entry.save()
    slot = cancel(appointment, django_capture_on_commit_callbacks)
    slot.refresh_from_db()
    assert slot.filled_by.patient == entry.patient
    assert slot.match_logs.get().breakdown == {"no_show_risk": 40, "specialty": 20, "availability": 0, "location": 10}
