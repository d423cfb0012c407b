"""A move to another location names it first and waits for the patient's yes
(docs/reference.md, Reassignment); a move at the same location is kept unless declined."""

from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from clinic import sms
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from ops.sweep import sweep
from scheduling import reassignment
from scheduling.actions import accept_move
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for
from scheduling.models import Appointment
from tests.test_sms_webhooks import reply
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_text_outbox():
    sms.outbox.clear()


@pytest.fixture
def downtown():
    return LocationFactory(name="Downtown")


@pytest.fixture
def riverside():
    location = LocationFactory(name="Riverside")
    location.address, location.phone = "12 River Road, Cambridge", "(617) 555-0142"
    location.save()
    return location


@pytest.fixture
def away(downtown):
    return ProviderFactory(name="Dr. Away", specialty=SpecialtyFactory(name="Orthopedic PT"), location=downtown)


def patient_seen_at(site, provider, **fields):
    """A patient who prefers `site` and has seen `provider` before: 60 points for a move there."""
    patient = PatientFactory(
        first_name="Quinn", preferred_location=site, preferred_channel="both", sms_consent=True, **fields
    )
    AppointmentFactory(
        patient=patient,
        provider=provider,
        status=Appointment.Status.COMPLETED,
        start=timezone.now() - timedelta(days=30),
    )
    return patient


@pytest.fixture
def moved_elsewhere(away, riverside, django_capture_on_commit_callbacks):
    """Quinn's Downtown visit moved to Dr. Lindqvist at Riverside."""
    lindqvist = ProviderFactory(name="Dr. Lindqvist", specialty=away.specialty, location=riverside)
    original = AppointmentFactory(provider=away, patient=patient_seen_at(riverside, lindqvist))
    with django_capture_on_commit_callbacks(execute=True):
        reassignment.mark_provider_unavailable(
            away, timezone.localdate(original.start), timezone.localdate(original.start), ""
        )
    return Appointment.objects.get(replaces=original)


def messages(kind="reassignment_offer"):
    return {message.channel: message for message in OutboundEmail.objects.filter(kind=kind)}


def test_the_subject_and_the_first_line_name_the_new_location_with_its_address_and_phone(moved_elsewhere):
    email = messages()["email"]

    assert "Please confirm" in email.subject and "moves to Riverside" in email.subject
    first_line = email.text_body.split("\n\n")[1]
    assert first_line == (
        "Your appointment has moved to another location: Riverside. 12 River Road, Cambridge ((617) 555-0142)"
    )
    assert "at the same time" not in first_line
    assert "If you do nothing, we keep" not in email.text_body
    assert "Please accept by" in email.text_body


def test_the_text_names_the_other_site_and_asks_for_a_yes(moved_elsewhere):
    text = messages()["sms"].text_body

    assert "ANOTHER SITE: Riverside, 12 River Road, Cambridge" in text and "Reply YES by" in text
    assert sms.is_gsm7(text) and sms.segments(text) <= 2


def test_a_move_elsewhere_is_held_for_the_patients_yes_until_a_deadline(moved_elsewhere):
    assert moved_elsewhere.status == Appointment.Status.OFFERED
    assert moved_elsewhere.waits_for_yes
    hours = (moved_elsewhere.answer_by - timezone.now()).total_seconds() / 3600
    assert 0 < hours <= 24


def test_a_move_elsewhere_unanswered_is_released_and_the_patient_goes_first_on_the_waitlist(
    moved_elsewhere, django_capture_on_commit_callbacks
):
    with freeze_time(moved_elsewhere.answer_by + timedelta(minutes=1)):
        with django_capture_on_commit_callbacks(execute=True):
            result = sweep()

    moved_elsewhere.refresh_from_db()
    assert result["released_moves"] == 1
    assert (moved_elsewhere.status, moved_elsewhere.cancel_reason) == ("cancelled", reassignment.UNANSWERED_REASON)
    entry = WaitlistEntry.objects.get(patient=moved_elsewhere.patient)
    assert (entry.status, entry.reason) == ("waiting", WaitlistEntry.Reason.DECLINED_REASSIGNMENT)
    notice = messages("waitlist_notice")["email"]
    assert "We did not hear from you in time about your appointment at Riverside" in notice.text_body


def test_a_sweep_before_the_deadline_keeps_the_move_waiting(moved_elsewhere):
    with freeze_time(moved_elsewhere.answer_by - timedelta(minutes=1)):
        assert sweep()["released_moves"] == 0
    moved_elsewhere.refresh_from_db()
    assert moved_elsewhere.status == Appointment.Status.OFFERED


def test_a_yes_in_time_keeps_it_and_the_sweep_leaves_it_alone(client, moved_elsewhere):
    response = reply(client, moved_elsewhere.patient, "YES")
    assert "you're confirmed" in response.content.decode()

    with freeze_time(moved_elsewhere.answer_by + timedelta(hours=1)):
        assert sweep()["released_moves"] == 0
    moved_elsewhere.refresh_from_db()
    assert moved_elsewhere.status == Appointment.Status.CONFIRMED


def test_the_accept_link_after_the_release_says_so_and_changes_nothing(client, moved_elsewhere):
    path = link_for(moved_elsewhere, "accept").removeprefix("http://testserver")
    with freeze_time(moved_elsewhere.answer_by + timedelta(minutes=1)):
        sweep()
        response = client.post(path)

    assert response.status_code == 409
    assert "We did not hear from you in time" in response.content.decode()
    moved_elsewhere.refresh_from_db()
    assert moved_elsewhere.status == Appointment.Status.CANCELLED


def test_the_accept_page_says_the_visit_is_at_another_location(client, moved_elsewhere):
    page = client.get(link_for(moved_elsewhere, "accept").removeprefix("http://testserver")).content.decode()
    assert "This appointment is at another location: Riverside." in page


def test_a_move_at_the_same_location_is_kept_by_default_as_before(away, downtown, django_capture_on_commit_callbacks):
    ProviderFactory(name="Dr. Near", specialty=away.specialty, location=downtown)
    original = AppointmentFactory(provider=away, patient=PatientFactory(preferred_location=downtown))
    with django_capture_on_commit_callbacks(execute=True):
        reassignment.mark_provider_unavailable(
            away, timezone.localdate(original.start), timezone.localdate(original.start), ""
        )
    offer = Appointment.objects.get(replaces=original)

    assert offer.answer_by is None and not offer.waits_for_yes
    email = messages()["email"]
    assert "has moved to Dr. Near" in email.subject
    assert "If you do nothing, we keep the new appointment for you." in email.text_body
    with freeze_time(offer.start - timedelta(minutes=5)):
        assert sweep()["released_moves"] == 0


def test_the_front_desk_sees_which_kind_each_move_is(staff_client, moved_elsewhere):
    appointment_page = staff_client.get(f"/schedule/appointments/{moved_elsewhere.pk}/").content.decode()
    outbox = staff_client.get("/messages/").content.decode()

    assert "Moved to another location: released unless the patient says yes in time by" in appointment_page
    assert "Moved to another location" in outbox
    accept_move(moved_elsewhere, by="patient", channel="patient_link")
    assert "Moved to another location" in staff_client.get("/messages/").content.decode()


def test_a_spanish_speaking_patient_reads_the_move_in_spanish(away, riverside, django_capture_on_commit_callbacks):
    lindqvist = ProviderFactory(name="Dr. Lindqvist", specialty=away.specialty, location=riverside)
    original = AppointmentFactory(
        provider=away, patient=patient_seen_at(riverside, lindqvist, preferred_language="es")
    )
    with django_capture_on_commit_callbacks(execute=True):
        reassignment.mark_provider_unavailable(
            away, timezone.localdate(original.start), timezone.localdate(original.start), ""
        )

    email, text = messages()["email"], messages()["sms"]
    assert email.subject.startswith("Confirme, por favor: su cita del") and "cambia a Riverside" in email.subject
    assert "Su cita cambió de lugar: ahora es en Riverside." in email.text_body
    assert "OTRO LUGAR: Riverside" in text.text_body
    assert sms.is_gsm7(text.text_body) and sms.segments(text.text_body) <= 2


def test_the_workflows_summary_says_the_move_waits_for_a_yes(away, riverside, django_capture_on_commit_callbacks):
    lindqvist = ProviderFactory(name="Dr. Lindqvist", specialty=away.specialty, location=riverside)
    original = AppointmentFactory(provider=away, patient=patient_seen_at(riverside, lindqvist))
    day = timezone.localdate(original.start)
    with django_capture_on_commit_callbacks(execute=True):
        summary = reassignment.mark_provider_unavailable(away, day, day, "")

    assert (
        "offered to Dr. Lindqvist at the same time at Riverside, another location: released unless"
        in (summary.lines()[1])
    )
