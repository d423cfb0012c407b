"""A cancellation and its backfill leave the same rows through prepared SQL as through the ORM.

clinic/prepared.py runs the hot path's statements as prepared SQL on PostgreSQL; the ORM is
the reference. For random waitlists (reachable by email, text or both, some already busy,
some moving earlier from a later visit, some waiting elsewhere), the same cancellation and
backfill run twice from the same state: once through the ORM, once prepared. Between the
runs everything is rolled back to a savepoint and the id sequences are set back, so the two
runs must leave identical rows, ids, payloads, messages and audit trail included.
"""

import itertools
from datetime import datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from freezegun import freeze_time
from hypothesis import Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from audit.models import AuditEvent
from backfill import tasks
from backfill.models import FreedSlot, MatchLog
from clinic import prepared
from clinic.actions import Via
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import Event, OutboundEmail, Patient, ShortLink
from scheduling.actions import cancel_appointment
from scheduling.models import Appointment, ProviderUnavailability
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.postgres

NOW = datetime(2031, 3, 3, 9, 0, tzinfo=ZoneInfo("America/New_York"))
ROWS = [Appointment, FreedSlot, WaitlistEntry, MatchLog, Event, OutboundEmail, ShortLink, AuditEvent]

waitlists = st.lists(
    st.fixed_dictionaries(
        {
            "risk": st.sampled_from([0.95, 0.8, 0.7, 0.3]),
            "channel": st.sampled_from(Patient.Channel.values),
            "email_opt_out": st.booleans(),
            "sms_consent": st.booleans(),
            "elsewhere": st.booleans(),
            "busy": st.booleans(),
            "moving_from_later": st.booleans(),
            "removed": st.booleans(),
        }
    ),
    max_size=6,
)


class PreparedLikeTheOrm(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.specialty = SpecialtyFactory(name="Orthopedic PT")
        cls.downtown = LocationFactory(name="Downtown")
        cls.elsewhere = LocationFactory(name="Santa Monica", time_zone="America/Los_Angeles")
        cls.provider = ProviderFactory(specialty=cls.specialty, location=cls.downtown)

    # No shrinking: an example is a whole clinic day, and shrinking one took over five minutes.
    @hypothesis_settings(max_examples=40, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
    @given(waitlist=waitlists, hour=st.sampled_from([10, 14]), away=st.booleans(), patient_cancelled=st.booleans())
    def test_both_paths_leave_the_same_rows(self, waitlist, hour, away, patient_cancelled):
        assert connection.vendor == "postgresql"
        with freeze_time(NOW):
            start = NOW.replace(day=5, hour=hour)
            cancelled = Appointment.objects.create(
                patient=PatientFactory(), provider=self.provider, start=start, end=start + timedelta(minutes=45)
            )
            for spec in waitlist:
                self.add_entry(spec, start)
            if away:
                ProviderUnavailability.objects.create(
                    provider=self.provider, start_date=start.date(), end_date=start.date(), reason="course"
                )
            channel = Via.PATIENT_LINK if patient_cancelled else Via.STAFF_PAGE

            def cancel_and_backfill():
                codes = (f"code{n}" for n in itertools.count())  # a text's short link, the same in both runs
                with mock.patch("clinic.sms.secrets.token_urlsafe", lambda size: next(codes)):
                    return cancel_and_backfill_once()

            def cancel_and_backfill_once():
                appointment = Appointment.objects.get(pk=cancelled.pk)
                cancel_appointment(appointment, by="front desk", channel=channel, reason="sick")
                slot = FreedSlot.objects.filter(appointment=appointment).first()
                if slot is not None:
                    tasks.backfill_slot(slot.pk)
                return rows()

            with prepared.reference():
                through_the_orm = run_and_undo(cancel_and_backfill)
            assert prepared.in_use()
            through_prepared_sql = run_and_undo(cancel_and_backfill)
        for table, written in through_the_orm.items():
            assert through_prepared_sql[table] == written, table

    def add_entry(self, spec, start):
        patient = PatientFactory(
            no_show_risk=spec["risk"],
            preferred_channel=spec["channel"],
            email_opt_out=spec["email_opt_out"],
            sms_consent=spec["sms_consent"],
            preferred_location=self.elsewhere if spec["elsewhere"] else self.downtown,
        )
        colleague = ProviderFactory(specialty=self.specialty, location=self.downtown)
        if spec["busy"]:
            end = start + timedelta(minutes=30)
            Appointment.objects.create(patient=patient, provider=colleague, start=start, end=end)
        later = None
        if spec["moving_from_later"]:
            later_start = start + timedelta(days=14)
            later = Appointment.objects.create(
                patient=patient, provider=colleague, start=later_start, end=later_start + timedelta(minutes=45)
            )
        WaitlistEntry.objects.create(
            patient=patient,
            specialty=self.specialty,
            preferred_location=patient.preferred_location,
            original_appointment=later,
            status=WaitlistEntry.Status.REMOVED if spec["removed"] else WaitlistEntry.Status.WAITING,
        )


def rows():
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in ROWS}


def run_and_undo(change):
    """What `change` leaves, then undone: rolled back to a savepoint, the id sequences set back."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = current_schema()")
        sequences = cursor.fetchall()
    savepoint = connection.savepoint()
    try:
        return change()
    finally:
        connection.savepoint_rollback(savepoint)
        with connection.cursor() as cursor:
            for name, last_value in sequences:
                cursor.execute("SELECT setval(%s, %s, %s)", [name, last_value or 1, last_value is not None])
