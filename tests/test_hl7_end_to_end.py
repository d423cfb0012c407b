"""End to end with real processes: the EHR cancels over MLLP, a real qcluster backfills the
freed slot, and the EHR's inbound interface receives the S12 for the waitlisted patient,
with the MRN it sent, from the webhooks' own cluster."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clinic.factories import HighRiskPatientFactory
from integrations.hl7.models import Hl7Endpoint, Hl7Message
from integrations.hl7.reading import value
from scheduling.models import Appointment
from tests.hl7_feed import ack_fields, ehr_clinic, exchange, running_listener, sample, stand_in_ehr
from tests.processes import enqueue_to_orm, running_qcluster, wait_until
from waitlist.factories import WaitlistEntryFactory

pytestmark = [pytest.mark.postgres, pytest.mark.qcluster, pytest.mark.django_db(transaction=True)]


def test_an_s15_frees_a_slot_the_backfill_fills_and_the_ehr_hears_the_s12(monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE", "1")  # the clusters' settings: the stand-in EHR is on loopback
    enqueue_to_orm(monkeypatch)
    _, specialty, _ = ehr_clinic()
    waiting = HighRiskPatientFactory(external_id="MRN5005")
    WaitlistEntryFactory(patient=waiting, specialty=specialty)
    start = timezone.localtime(timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    when = {"AIS.4": start.strftime("%Y%m%d%H%M%S%z"), "SCH.11": ""}

    with (
        stand_in_ehr() as ehr,
        running_listener() as port,
        running_qcluster() as cluster,
        running_qcluster(name="webhooks") as senders,
    ):
        Hl7Endpoint.objects.create(host="127.0.0.1", port=ehr.port, events=["S12", "S13", "S15"])
        booked, cancelled = exchange(port, sample("siu_s12", when), sample("siu_s15", when))
        assert [ack_fields(booked)[0], ack_fields(cancelled)[0]] == ["AA", "AA"]

        [s12] = wait_until(
            lambda: ehr.messages("S12"),
            timeout=60,
            what=lambda: f"the EHR to receive the S12:\n{cluster.output()}\n{senders.output()}",
        )

    backfilled = Appointment.objects.get(patient=waiting)
    assert backfilled.start == start
    assert value(s12, "PID", 3, 1, 1) == "MRN5005"
    assert value(s12, "SCH", 1, 1, 1) == str(backfilled.pk)
    assert ehr.messages("S15") == []  # the EHR's own cancellation is not echoed back
    assert Hl7Message.objects.get(direction="out").outcome == "AA"
