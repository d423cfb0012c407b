"""Backfill's own changes reach the EHR as SIU over MLLP; the EHR's own changes are never echoed back."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clinic.actions import Via
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory
from integrations.hl7 import outbound
from integrations.hl7.inbound import receive
from integrations.hl7.models import Hl7Endpoint, Hl7Message, address_refused
from integrations.hl7.reading import value
from scheduling import actions
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from tests.hl7_feed import ehr_clinic, sample, stand_in_ehr
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the stand-in EHR listens on loopback
    Hl7Endpoint.forget_whether_any_active()


@pytest.fixture
def ehr():
    with stand_in_ehr() as ehr:
        Hl7Endpoint.objects.create(
            host="127.0.0.1",
            port=ehr.port,
            receiving_application="EPIC",
            receiving_facility="NORTHSIDE",
            events=["S12", "S13", "S15"],
        )
        yield ehr


def a_freed_slot_with_a_waiting_patient(provider, mrn="MRN5005"):
    waiting = HighRiskPatientFactory(external_id=mrn)
    WaitlistEntryFactory(patient=waiting, specialty=provider.specialty)
    return AppointmentFactory(provider=provider, start=timezone.now() + timedelta(days=3)), waiting


def test_a_backfill_booking_is_sent_as_an_s12_with_the_mrn(ehr):
    _, _, provider = ehr_clinic()
    appointment, waiting = a_freed_slot_with_a_waiting_patient(provider)

    actions.cancel_appointment(appointment, by="frontdesk", channel=Via.STAFF_PAGE, reason="sick")

    [s12] = ehr.messages("S12")
    booked = Appointment.objects.get(patient=waiting)
    assert value(s12, "PID", 3, 1, 1) == "MRN5005"
    assert value(s12, "SCH", 1, 1, 1) == str(booked.pk)
    assert value(s12, "AIP", 3, 1, 1) == "P100"
    assert value(s12, "MSH", 5) == "EPIC"
    assert Hl7Message.objects.get(direction="out").outcome == "AA"


def test_a_cancellation_from_the_feed_is_not_echoed_but_its_backfill_is_sent(ehr):
    _, _, provider = ehr_clinic()
    start = timezone.localtime(timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    when = start.strftime("%Y%m%d%H%M%S%z")
    receive(sample("siu_s12", {"AIS.4": when, "SCH.11": "", "MSH.7": ""}).encode())
    WaitlistEntryFactory(patient=HighRiskPatientFactory(external_id="MRN5005"), specialty=provider.specialty)

    receive(sample("siu_s15", {"AIS.4": when, "SCH.11": "", "MSH.7": ""}).encode())

    assert ehr.messages("S15") == []
    assert [value(s12, "PID", 3, 1, 1) for s12 in ehr.messages("S12")] == ["MRN5005"]


def test_a_patients_own_cancellation_is_sent_as_an_s15(ehr):
    _, _, provider = ehr_clinic()
    appointment = AppointmentFactory(provider=provider, patient=PatientFactory(external_id="MRN7007"))
    Appointment.objects.filter(pk=appointment.pk).update(external_id="FL7007")

    actions.cancel_appointment(appointment, by="patient", channel=Via.PATIENT_LINK, reason=actions.PATIENT_LINK_REASON)

    [s15] = ehr.messages("S15")
    assert (value(s15, "SCH", 2, 1, 1), value(s15, "PID", 3, 1, 1)) == ("FL7007", "MRN7007")


def test_an_ae_is_kept_with_its_ack_and_retried_later(ehr):
    _, _, provider = ehr_clinic()
    appointment, _ = a_freed_slot_with_a_waiting_patient(provider)
    ehr.answer = "AE"

    actions.cancel_appointment(appointment, by="frontdesk", channel=Via.STAFF_PAGE, reason="sick")

    kept = Hl7Message.objects.get(direction="out")
    assert (kept.outcome, kept.attempts) == ("pending", 1)
    assert "MSA|AE" in kept.ack
    assert kept.next_attempt_at > timezone.now()

    ehr.answer = "AA"
    Hl7Message.objects.filter(pk=kept.pk).update(next_attempt_at=timezone.now())
    outbound.send()

    kept.refresh_from_db()
    assert (kept.outcome, kept.attempts) == ("AA", 2)
    assert len(ehr.messages("S12")) == 2


@pytest.mark.parametrize("first_answer", ["AE", "drop"])
def test_a_later_message_about_an_appointment_waits_for_the_earlier_ones_retry(ehr, first_answer):
    _, _, provider = ehr_clinic()
    appointment, waiting = a_freed_slot_with_a_waiting_patient(provider)
    ehr.next_answers = [first_answer]
    actions.cancel_appointment(appointment, by="frontdesk", channel=Via.STAFF_PAGE, reason="sick")
    backfilled = Appointment.objects.get(patient=waiting)

    actions.cancel_appointment(backfilled, by="patient", channel=Via.PATIENT_LINK, reason=actions.PATIENT_LINK_REASON)

    assert ehr.triggers() == ["S12"]  # the S15 waits behind the S12's retry
    Hl7Message.objects.filter(direction="out").update(next_attempt_at=timezone.now())
    outbound.send()
    assert ehr.triggers() == ["S12", "S12", "S15"]
    assert set(Hl7Message.objects.filter(direction="out").values_list("outcome", flat=True)) == {"AA"}


def test_an_endpoint_that_refuses_connections_is_retried(settings):
    _, _, provider = ehr_clinic()
    with stand_in_ehr() as closed:
        port = closed.port  # nobody listens there once it is closed
    Hl7Endpoint.objects.create(host="127.0.0.1", port=port, events=["S12"])
    appointment, _ = a_freed_slot_with_a_waiting_patient(provider)

    actions.cancel_appointment(appointment, by="frontdesk", channel=Via.STAFF_PAGE, reason="sick")

    kept = Hl7Message.objects.get(direction="out")
    assert (kept.outcome, kept.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in kept.note


def test_a_given_up_message_is_resent_by_hand(ehr):
    _, _, provider = ehr_clinic()
    appointment, _ = a_freed_slot_with_a_waiting_patient(provider)
    ehr.answer = "AR"
    actions.cancel_appointment(appointment, by="frontdesk", channel=Via.STAFF_PAGE, reason="sick")
    Hl7Message.objects.filter(direction="out").update(outcome="failed")
    ehr.answer = "AA"

    assert outbound.resend(Hl7Message.objects.all()) == 1
    outbound.send()

    assert Hl7Message.objects.get(direction="out").outcome == "AA"


def test_an_endpoint_on_a_private_address_is_refused_unless_allowed(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    assert "internal" in outbound_refusal("10.1.2.3")
    assert "internal" in outbound_refusal("127.0.0.1")
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert outbound_refusal("127.0.0.1") == ""


def outbound_refusal(host):
    return address_refused(host, 2575)


def test_a_patient_moved_to_a_colleague_is_sent_as_an_s13_naming_the_ehrs_appointment(ehr):
    location, specialty, away = ehr_clinic()
    colleague = ProviderFactory(specialty=specialty, location=location, external_id="P200")
    start = timezone.localtime(timezone.now() + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    original = AppointmentFactory(provider=away, start=start, patient=PatientFactory(external_id="MRN8008"))
    Appointment.objects.filter(pk=original.pk).update(external_id="FL8008")

    actions.mark_provider_unavailable(away, start.date(), start.date(), "sick", by="frontdesk", channel=Via.STAFF_PAGE)

    [s13] = ehr.messages("S13")
    assert (value(s13, "SCH", 2, 1, 1), value(s13, "PID", 3, 1, 1)) == ("FL8008", "MRN8008")
    assert value(s13, "AIP", 3, 1, 1) == colleague.external_id
    assert ehr.messages("S15") == []  # the move's cancellation of the original is the S13, not an S15


def test_housekeeping_forgets_messages_past_the_retention(settings):
    settings.HL7_RETENTION_DAYS = 30
    old = Hl7Message.objects.create(direction="in", sender="EHR", raw="MSH|", outcome="AA")
    Hl7Message.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=31))
    recent = Hl7Message.objects.create(direction="in", sender="EHR", raw="MSH|", outcome="AA")

    assert outbound.housekeeping() == 1

    assert list(Hl7Message.objects.all()) == [recent]
