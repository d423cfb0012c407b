"""The no-show model's features know only what the clinic knew before each visit (docs/reference.md, No-show model)."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from clinic.factories import PatientFactory, ProviderFactory
from scheduling.models import Appointment
from scheduling.no_show import COLUMN, VISITED, History, Visits, visit_features, visit_rows
from tests.no_show_history import generate_history, known_rule
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db
COMPLETED, NO_SHOW, CANCELLED = Appointment.Status.COMPLETED, Appointment.Status.NO_SHOW, Appointment.Status.CANCELLED


def features_of_every_visit():
    visits = Visits.from_rows(visit_rows(Appointment.objects.filter(status__in=VISITED).order_by("start", "pk")))
    return visit_features(History.of(visits), visits)


def visit(patient, provider, days_ago, status, booked_days_before=5, **fields):
    start = timezone.now() - timedelta(days=days_ago)
    return Appointment.objects.create(
        patient=patient,
        provider=provider,
        start=start,
        end=start + timedelta(minutes=45),
        status=status,
        created_at=start - timedelta(days=booked_days_before),
        **fields,
    )


def test_a_visit_is_described_the_same_whatever_happened_after_it():
    generate_history(known_rule, days=30, patients=60, providers=4)
    before_the_future_is_gone = features_of_every_visit()
    cut = datetime.fromtimestamp(np.median([a.start.timestamp() for a in Appointment.objects.all()]), tz=UTC)

    Appointment.objects.filter(status__in=VISITED, start__gt=cut).delete()
    Appointment.objects.filter(status=CANCELLED, cancelled_at__gte=cut).delete()

    known_then = features_of_every_visit()
    assert 100 < len(known_then) < len(before_the_future_is_gone)
    assert np.array_equal(known_then, before_the_future_is_gone[: len(known_then)])


def test_it_counts_only_earlier_visits_no_shows_and_cancellations():
    patient, provider = PatientFactory(), ProviderFactory()
    for days_ago, status in [(30, NO_SHOW), (20, COMPLETED), (10, NO_SHOW)]:
        visit(patient, provider, days_ago, status)
    visit(patient, provider, 15, CANCELLED, cancelled_at=timezone.now() - timedelta(days=16))

    features = features_of_every_visit()

    assert list(features[:, COLUMN["past_visits"]]) == [0, 1, 2]
    assert list(features[:, COLUMN["past_no_shows"]]) == [0, 1, 1]
    assert list(features[:, COLUMN["recent_no_shows"]]) == [0, 1, 1]
    assert list(features[:, COLUMN["past_cancellations"]]) == [0, 0, 1]
    assert list(features[:, COLUMN["days_since_last_visit"]].round(3)) == [365, 10, 10]
    assert list(np.expm1(features[:, COLUMN["lead_days_log"]]).round(3)) == [5, 5, 5]


def test_cancellations_the_clinic_made_are_not_held_against_the_patient():
    patient, provider = PatientFactory(), ProviderFactory()
    visit(
        patient,
        provider,
        15,
        CANCELLED,
        cancelled_at=timezone.now() - timedelta(days=16),
        cancel_reason="provider_unavailable",
    )
    visit(patient, provider, 12, CANCELLED, cancelled_at=timezone.now() - timedelta(days=13), cancelled_by="backfill")
    visit(patient, provider, 10, COMPLETED)

    assert features_of_every_visit()[0, COLUMN["past_cancellations"]] == 0


def test_a_backfilled_visit_knows_how_long_the_patient_waited():
    appointment = visit(PatientFactory(), ProviderFactory(), 1, COMPLETED, source=Appointment.Source.BACKFILL)
    WaitlistEntryFactory(
        patient=appointment.patient,
        specialty=appointment.provider.specialty,
        status="booked",
        booked_appointment=appointment,
        created_at=appointment.created_at - timedelta(days=12),
    )

    assert np.expm1(features_of_every_visit()[0, COLUMN["waitlist_days_log"]]).round(3) == 12
