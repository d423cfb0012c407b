"""The EHR's feed applied: each message type, once, in order, through the clinic's own verbs."""

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill.models import FreedSlot
from clinic import prepared
from clinic.actions import Via
from clinic.factories import HighRiskPatientFactory, PatientFactory, SpecialtyFactory
from clinic.models import Event, OutboundEmail, Patient
from integrations.hl7 import queries
from integrations.hl7.inbound import Lookups, receive
from integrations.hl7.models import Hl7CodeMapping, Hl7Message
from scheduling.actions import cancel_appointment
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment
from tests.hl7_feed import ack_fields, ehr_clinic, sample
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db
EASTERN = ZoneInfo("America/New_York")


def send(name, fields=None):
    return ack_fields(receive(sample(name, fields).encode()))


@pytest.fixture
def clinic():
    return ehr_clinic()


def test_it_books_an_s12_for_a_patient_first_seen_in_the_feed(clinic):
    location, specialty, provider = clinic

    assert send("siu_s12") == ("AA", "MSG00001", "", "")

    appointment = Appointment.objects.get(external_id="FL1001")
    patient = appointment.patient
    assert (appointment.provider, appointment.source) == (provider, Appointment.Source.HL7)
    assert appointment.start == datetime(2030, 1, 10, 10, 0, tzinfo=EASTERN)
    assert appointment.end == datetime(2030, 1, 10, 10, 30, tzinfo=EASTERN)
    assert (patient.external_id, patient.first_name, patient.last_name) == ("MRN1001", "Ana", "Rivera")
    assert (str(patient.phone), patient.email, patient.preferred_language) == (
        "+16175550123",
        "ana.rivera@example.org",
        "es",
    )
    assert patient.birth_date.isoformat() == "1985-04-12"


def test_a_time_without_an_offset_is_on_the_locations_clock(clinic):
    location, _, _ = clinic
    location.time_zone = "America/Los_Angeles"
    location.save()

    send("siu_s12", {"AIS.4": "20300110090000"})

    start = Appointment.objects.get(external_id="FL1001").start
    assert start == datetime(2030, 1, 10, 9, 0, tzinfo=ZoneInfo("America/Los_Angeles"))


def test_the_start_comes_from_sch_11_when_ais_4_is_empty_and_the_offset_moves_it(clinic):
    send("siu_s12", {"AIS.4": "", "AIS.5": "15", "AIS.6": "MIN"})

    appointment = Appointment.objects.get(external_id="FL1001")
    assert appointment.start == datetime(2030, 1, 10, 10, 15, tzinfo=EASTERN)


def test_a_resent_message_gets_the_same_ack_and_changes_nothing(clinic):
    first = receive(sample("siu_s12").encode())
    again = receive(sample("siu_s12").encode())

    assert again == first
    assert Appointment.objects.count() == 1
    assert Hl7Message.objects.filter(control_id="MSG00001").count() == 1


def test_an_s12_for_a_waitlisted_patient_takes_them_off_the_waitlist(clinic):
    _, specialty, _ = clinic
    patient = PatientFactory(external_id="MRN1001")
    entry = WaitlistEntryFactory(patient=patient, specialty=specialty)

    send("siu_s12")

    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.BOOKED
    assert entry.booked_appointment.external_id == "FL1001"


def test_a_patient_the_ehr_booked_is_not_booked_again_by_the_backfill(clinic, django_capture_on_commit_callbacks):
    _, specialty, provider = clinic
    patient = HighRiskPatientFactory(external_id="MRN1001")  # first in line for any freed slot
    WaitlistEntryFactory(patient=patient, specialty=specialty)
    day = timezone.localtime(timezone.now() + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    send("siu_s12", {"AIS.4": day.strftime("%Y%m%d%H%M%S%z"), "SCH.11": "", "MSH.7": ""})
    freed = AppointmentFactory(provider=provider, start=day + timedelta(days=1))

    with django_capture_on_commit_callbacks(execute=True):  # the backfill runs (the queue is synchronous here)
        cancel_appointment(freed, by="frontdesk", channel=Via.STAFF_PAGE, reason="sick")

    assert [a.external_id for a in patient.appointments.active()] == ["FL1001"]
    assert FreedSlot.objects.get(appointment=freed).status == FreedSlot.Status.NO_MATCH


def test_an_s12_for_a_time_backfill_already_booked_adopts_that_appointment(clinic):
    _, _, provider = clinic
    patient = PatientFactory(external_id="MRN1001")
    booked = AppointmentFactory(
        patient=patient,
        provider=provider,
        start=datetime(2030, 1, 10, 10, 0, tzinfo=EASTERN),
        end=datetime(2030, 1, 10, 10, 30, tzinfo=EASTERN),
        source=Appointment.Source.BACKFILL,
    )

    assert send("siu_s12")[0] == "AA"

    booked.refresh_from_db()
    assert booked.external_id == "FL1001"
    assert Appointment.objects.count() == 1


def test_an_s13_moves_the_appointment_and_frees_its_old_time(clinic):
    send("siu_s12")
    old = Appointment.objects.get(external_id="FL1001")

    assert send("siu_s13")[0] == "AA"

    old.refresh_from_db()
    moved = Appointment.objects.get(external_id="FL1001")
    assert old.status == Appointment.Status.CANCELLED
    assert moved.start == datetime(2030, 1, 10, 14, 0, tzinfo=EASTERN)
    assert moved.replaces == old
    assert FreedSlot.objects.filter(start=old.start).exists()


def test_an_s15_cancels_as_the_api_does_and_frees_the_slot(clinic):
    send("siu_s12")

    assert send("siu_s15") == ("AA", "MSG00003", "", "")

    appointment = Appointment.objects.get(external_id="FL1001")
    assert appointment.status == Appointment.Status.CANCELLED
    assert appointment.cancel_reason == "Patient is unwell"
    assert appointment.cancelled_by == "EPIC^NORTHSIDE"
    assert FreedSlot.objects.filter(start=appointment.start, provider=appointment.provider).exists()
    assert OutboundEmail.objects.filter(appointment=appointment, kind=OutboundEmail.Kind.CLINIC_CANCELLATION).exists()


def test_an_s15_older_than_the_last_applied_message_does_not_undo_it(clinic):
    send("siu_s12")
    send("siu_s13")  # sent at 09:00

    assert send("siu_s15", {"MSH.7": "20300105084500-0500"})[0] == "AA"  # made at 08:45

    appointment = Appointment.objects.get(external_id="FL1001")
    assert appointment.status == Appointment.Status.SCHEDULED
    assert "Older" in Hl7Message.objects.get(control_id="MSG00003").note


def test_an_s15_for_an_unknown_appointment_is_an_error_naming_sch_2(clinic):
    assert send("siu_s15") == ("AE", "MSG00003", "SCH-2", "204")


def test_an_unknown_provider_code_is_an_error_naming_aip_3_until_mapped(clinic):
    _, _, provider = clinic

    assert send("siu_s12", {"AIP.3": "DRX^Who^Knows"}) == ("AE", "MSG00001", "AIP-3", "103")
    assert not Appointment.objects.exists()

    Hl7CodeMapping.objects.create(kind=Hl7CodeMapping.Kind.PROVIDER, code="DRX", provider=provider)
    assert send("siu_s12", {"AIP.3": "DRX^Who^Knows", "MSH.10": "MSG00001-B"})[0] == "AA"
    assert Appointment.objects.get(external_id="FL1001").provider == provider


def test_a_connection_finds_a_code_added_after_its_message_was_refused(clinic):
    _, _, provider = clinic
    lookups = Lookups()  # one connection's
    unknown = sample("siu_s12", {"AIP.3": "DRX"})
    assert ack_fields(receive(unknown.encode(), "ehr", lookups))[0] == "AE"

    Hl7CodeMapping.objects.create(kind=Hl7CodeMapping.Kind.PROVIDER, code="DRX", provider=provider)
    resent = sample("siu_s12", {"AIP.3": "DRX", "MSH.10": "MSG00001-B"})

    assert ack_fields(receive(resent.encode(), "ehr", lookups))[0] == "AA"


def test_an_s26_marks_a_no_show(clinic):
    past = {"AIS.4": "20200110100000-0500", "SCH.11": "", "MSH.7": "20200105083000-0500"}
    send("siu_s12", past)

    assert send("siu_s26", {**past, "MSH.7": "20200110120000-0500"})[0] == "AA"

    assert Appointment.objects.get(external_id="FL1001").status == Appointment.Status.NO_SHOW


def test_an_s26_before_the_visit_is_an_error_and_changes_nothing(clinic):
    send("siu_s12")

    assert send("siu_s26")[0] == "AE"

    assert Appointment.objects.get(external_id="FL1001").status == Appointment.Status.SCHEDULED


def test_a_clash_with_another_appointment_is_an_error(clinic):
    _, _, provider = clinic
    AppointmentFactory(provider=provider, start=datetime(2030, 1, 10, 10, 0, tzinfo=EASTERN))

    assert send("siu_s12")[:3] == ("AE", "MSG00001", "AIS-4")

    assert not Appointment.objects.filter(external_id="FL1001").exists()


def test_a_missing_mrn_is_an_error_naming_pid_3(clinic):
    assert send("siu_s12", {"PID.3": ""}) == ("AE", "MSG00001", "PID-3", "101")


def test_a04_registers_and_a08_updates_a_patient(clinic):
    assert send("adt_a04")[0] == "AA"
    patient = Patient.objects.get(external_id="MRN2002")
    assert (patient.first_name, str(patient.phone), patient.preferred_language) == ("Chidi", "+16175550188", "fr")

    send("adt_a04", {"MSH.9": "ADT^A08^ADT_A01", "MSH.10": "MSG00012", "PID.5": "Okafor^Chidi Emeka"})

    patient.refresh_from_db()
    assert patient.first_name == "Chidi Emeka"


def test_a40_merges_the_prior_patients_appointments_into_the_survivor(clinic):
    survivor = PatientFactory(external_id="MRN1001")
    prior = PatientFactory(external_id="MRN3003")
    appointment = AppointmentFactory(patient=prior)

    assert send("adt_a40")[0] == "AA"

    appointment.refresh_from_db()
    prior.refresh_from_db()
    assert appointment.patient == survivor
    assert prior.external_id is None


def test_a40_takes_the_merged_patients_duplicate_waitlist_entry_off_through_the_action(clinic, caplog):
    survivor = PatientFactory(external_id="MRN1001")
    prior = PatientFactory(external_id="MRN3003")
    kept = WaitlistEntryFactory(patient=survivor)
    duplicate = WaitlistEntryFactory(patient=prior, specialty=kept.specialty)
    other = WaitlistEntryFactory(patient=prior, specialty=SpecialtyFactory(name="Dermatology"))

    with caplog.at_level("INFO", logger="waitlist"):
        assert send("adt_a40")[0] == "AA"

    assert WaitlistEntry.objects.get(pk=duplicate.pk).status == WaitlistEntry.Status.REMOVED
    assert Event.objects.filter(type="waitlist_entry.removed", subject=f"waitlist_entry:{duplicate.pk}").exists()
    assert f"action.leave_waitlist entry={duplicate.pk} removed=True" in caplog.text
    assert "channel=feed" in caplog.text
    assert WaitlistEntry.objects.get(pk=kept.pk).status == WaitlistEntry.Status.WAITING
    assert WaitlistEntry.objects.get(pk=other.pk).patient == survivor


def test_a40_tells_other_systems_which_patient_was_merged_into_which(clinic):
    survivor = PatientFactory(external_id="MRN1001")
    prior = PatientFactory(external_id="MRN3003")

    send("adt_a40")

    merged = Event.objects.get(type="patient.merged")
    assert merged.subject == f"patient:{survivor.pk}"
    assert (merged.payload["patient"]["external_id"], merged.payload["merged_patient"]["id"]) == ("MRN1001", prior.pk)
    assert merged.payload["merged_patient"]["external_id"] == "MRN3003"  # as it was before the merge


def test_a40_is_kept_with_both_patients_and_what_moved(clinic):
    _, _, provider = clinic
    survivor = PatientFactory(external_id="MRN1001")
    prior = PatientFactory(external_id="MRN3003", first_name="Ana", last_name="Rivera-Old")
    AppointmentFactory(patient=prior, provider=provider, start=datetime(2030, 1, 10, 10, 0, tzinfo=EASTERN))

    send("adt_a40")

    kept = Hl7Message.objects.get(control_id="MSG00011")
    assert (kept.patient, kept.merged_patient, kept.mrn, kept.merged_mrn) == (survivor, prior, "MRN1001", "MRN3003")
    assert "Ana Rivera-Old (MRN MRN3003) merged into" in kept.note
    assert "1 appointment(s) moved, Dr. Monica Jablonski, Thu 10 Jan 2030, 10:00" in kept.note
    assert list(Hl7Message.objects.filter(merged_mrn="MRN3003")) == [kept]  # found by the merged MRN


def test_an_ae_changes_nothing_not_even_the_patients_details(clinic):
    _, _, provider = clinic
    patient = PatientFactory(external_id="MRN1001", first_name="Old")
    AppointmentFactory(provider=provider, start=datetime(2030, 1, 10, 10, 0, tzinfo=EASTERN))
    events_before = Event.objects.count()

    assert send("siu_s12")[0] == "AE"  # the provider is busy then; PID says "Ana"

    patient.refresh_from_db()
    assert patient.first_name == "Old"
    assert Event.objects.count() == events_before


@pytest.mark.parametrize(
    ("fields", "where", "code"),
    [
        ({"MSH.9": "ORM^O01"}, "MSH-9", "200"),
        ({"MSH.9": "SIU^S99"}, "MSH-9", "201"),
        ({"MSH.12": "2.7"}, "MSH-12", "203"),
    ],
)
def test_messages_backfill_does_not_take_are_rejected(clinic, fields, where, code):
    msa1, msa2, err_where, err_code = send("siu_s12", fields)

    assert (msa1, msa2, err_where, err_code) == ("AR", "MSG00001", where, code)
    assert not Appointment.objects.exists()


def test_text_that_is_not_hl7_is_rejected_and_kept():
    msa1, _, _, code = ack_fields(receive(b"hello, is this the EHR?"))

    assert (msa1, code) == ("AR", "102")
    assert Hl7Message.objects.get().outcome == "AR"


def test_every_message_is_kept_with_its_ack_and_what_it_touched(clinic):
    send("siu_s12")

    kept = Hl7Message.objects.get()
    assert (kept.direction, kept.sender, kept.message_type, kept.outcome) == ("in", "EPIC^NORTHSIDE", "SIU^S12", "AA")
    assert (kept.mrn, kept.appointment_ref) == ("MRN1001", "FL1001")
    assert kept.appointment == Appointment.objects.get()
    assert "MSA|AA|MSG00001" in kept.ack


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5"])
def test_earlier_versions_are_taken_too(clinic, version):
    assert send("siu_s12", {"MSH.12": version})[0] == "AA"

    assert Appointment.objects.filter(external_id="FL1001").exists()


def test_the_first_booking_of_a_new_patient_is_linked_to_the_patient_in_the_kept_message(clinic):
    send("siu_s12")

    assert Hl7Message.objects.get().patient == Patient.objects.get(external_id="MRN1001")


CONTROL_IDS = itertools.count()
FIELDS = ["MSH.7", "MSH.9", "MSH.12", "SCH.2", "SCH.6", "SCH.9", "SCH.11", "PID.3", "PID.5", "PID.7", "PID.13"]
FIELDS += ["AIS.3", "AIS.4", "AIS.5", "AIS.6", "AIS.7", "AIS.8", "AIL.3", "AIP.3", "MRG.1"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    name=st.sampled_from(["siu_s12", "siu_s13", "siu_s15", "siu_s26", "adt_a04", "adt_a40"]),
    fields=st.dictionaries(
        st.sampled_from(FIELDS),
        st.one_of(
            st.text(alphabet="0123456789-+.:^~&|\\ ADMINSHRX", max_size=24),
            st.sampled_from(["", "20301301250000", "99999999", "-5", "1e9", "P100", "DT", "ORTHO", "SIU^S99"]),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_a_mangled_message_is_answered_and_is_never_a_fault_of_backfills_own(clinic, name, fields):
    segments = {line[:3] for line in sample(name).split("\r")}
    fields = {key: text for key, text in fields.items() if key[:3] in segments}
    ack = receive(sample(name, {**fields, "MSH.10": f"FUZZ{next(CONTROL_IDS)}"}).encode())

    assert ack_fields(ack)[0] in ("AA", "AE", "AR")
    assert "could not apply" not in ack  # inbound.failed: an exception Backfill did not foresee


@pytest.mark.postgres
def test_the_feeds_prepared_reads_find_what_the_orm_finds(clinic):
    _, specialty, provider = clinic
    send("siu_s12")
    booked = Appointment.objects.get(external_id="FL1001")
    WaitlistEntryFactory(patient=booked.patient, specialty=specialty)
    other = AppointmentFactory(provider=provider, start=booked.end)
    send("siu_s15", {"MSH.10": "MSG00003", "MSH.7": "20300105100000-0500"})

    def reads():
        named = queries.named_appointment("FL1001")
        patient = queries.patient_locked("MRN1001", specialty)
        return [
            queries.stored_answer("EPIC^NORTHSIDE", "MSG00003"),
            queries.stored_answer("EPIC^NORTHSIDE", "MSG09999"),
            (named, named.newest_applied, named.provider.location, named.provider.specialty, named.patient),
            queries.named_appointment("FL9999"),
            (patient, patient.waits, patient.first_name, patient.phone),
            queries.patient_locked("MRN9999"),
            queries.clash(provider, patient, other.start, other.end),
            queries.clash(provider, Patient(), other.start, other.end, existing=other),
            queries.clash(provider, patient, booked.start, booked.end),
        ]

    prepared_reads = reads()
    with prepared.reference():
        assert reads() == prepared_reads
    assert prepared_reads[0].startswith("MSH|") and prepared_reads[4][1] is True
    assert (prepared_reads[6], prepared_reads[7]) == (other, None)
