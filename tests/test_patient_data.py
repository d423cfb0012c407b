"""A patient's own data: everything exported as one FHIR R4 Bundle and a summary; erasure
that leaves nothing identifying and refills their freed slots; old messages purged."""

import io
import zipfile
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle

from audit.models import AuditEvent
from backfill.models import FreedSlot
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory
from clinic.models import Event, InboundText, OutboundEmail, Patient
from privacy.retention import purge_old_messages
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def manager(client):
    user = User.objects.create_user("morgan", password="a-long-pass-phrase", is_staff=True)
    user.groups.add(Group.objects.get(name="Clinic manager"))
    client.force_login(user)
    return user


@pytest.fixture
def maya(django_capture_on_commit_callbacks):
    patient = PatientFactory(first_name="Maya", last_name="Patel", phone="+16175550123", sms_consent=True)
    appointment = AppointmentFactory(patient=patient)
    WaitlistEntryFactory(patient=patient)
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)
    InboundText.objects.create(message_sid="SM1", from_number=str(patient.phone), patient=patient, body="YES")
    return patient


def test_a_manager_exports_everything_as_an_r4_bundle_and_a_summary(client, roles, maya):
    manager(client)

    response = client.get(f"/api/patients/{maya.pk}/export/")

    assert response.status_code == 200
    bundle = Bundle.model_validate(response.json()["bundle"])
    kinds = [entry.resource.__resource_type__ for entry in bundle.entry]
    assert kinds[0] == "Patient"
    assert {"Appointment", "Basic", "Communication", "AuditEvent"} <= set(kinds)
    summary = response.json()["summary"]
    assert "Everything Backfill holds about Maya Patel" in summary
    assert "Texts received (1)" in summary
    assert AuditEvent.objects.filter(action="view", object_type="patient export", patient_id=maya.pk).exists()


@pytest.mark.parametrize("role", ["Front desk", "Integrator"])
def test_other_roles_cannot_export(client, roles, maya, role):
    user = User.objects.create_user("dana", password="a-long-pass-phrase", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)

    assert client.get(f"/api/patients/{maya.pk}/export/").status_code == 403


def test_the_admin_exports_a_zip_of_the_bundle_and_the_summary(client, roles, maya):
    manager(client)

    response = client.post("/admin/privacy/patientdata/", {"action": "export", "_selected_action": [maya.pk]})

    files = zipfile.ZipFile(io.BytesIO(response.content))
    bundle, summary = sorted(files.namelist())
    assert bundle == f"maya-patel-{maya.pk}.fhir.json"
    assert Bundle.model_validate_json(files.read(bundle)).entry[0].resource.name[0].family == "Patel"
    assert "Maya Patel" in files.read(summary).decode()


def test_erasure_leaves_nothing_identifying_and_refills_the_freed_slot(
    client, roles, django_capture_on_commit_callbacks, caplog
):
    provider = ProviderFactory()
    leaving = PatientFactory(first_name="Maya", last_name="Patel", phone="+16175550123", sms_consent=True)
    upcoming = AppointmentFactory(patient=leaving, provider=provider)
    entry = WaitlistEntryFactory(patient=leaving)
    waiting = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, upcoming)
    manager(client)

    with django_capture_on_commit_callbacks(execute=True), caplog.at_level("INFO", logger="waitlist"):
        client.post(
            "/admin/privacy/patientdata/",
            {"action": "erase", "_selected_action": [leaving.pk], "confirmed": "yes"},
        )

    leaving.refresh_from_db()
    assert (leaving.first_name, leaving.phone, leaving.sms_consent, leaving.external_id) == ("Erased", "", False, None)
    assert "Maya" not in leaving.email and "Patel" not in str(leaving)
    assert not OutboundEmail.objects.filter(patient=leaving, text_body__contains="Maya").exists()
    upcoming.refresh_from_db()
    assert upcoming.status == Appointment.Status.CANCELLED
    assert WaitlistEntry.objects.get(pk=entry.pk).status == WaitlistEntry.Status.REMOVED
    # Taken off by the same action as the patient's own page and the admin: its event, who and which door.
    assert Event.objects.filter(type="waitlist_entry.removed", subject=f"waitlist_entry:{entry.pk}").exists()
    assert f"action.leave_waitlist entry={entry.pk} removed=True by=morgan channel=admin" in caplog.text
    assert FreedSlot.objects.get(appointment=upcoming).filled_by.patient_id == waiting.patient_id
    erased = AuditEvent.objects.get(object_type="patient", object_id=str(leaving.pk), actor="morgan", action="update")
    assert erased.changes["first_name"] == ["(concealed)", "(concealed)"]


def test_erasure_asks_first(client, roles, maya):
    manager(client)

    response = client.post("/admin/privacy/patientdata/", {"action": "erase", "_selected_action": [maya.pk]})

    assert "This cannot be undone" in response.text
    assert Patient.objects.get(pk=maya.pk).first_name == "Maya"


def test_the_nightly_purge_deletes_messages_and_texts_past_the_retention(maya, settings):
    later = timezone.now() + timedelta(days=settings.MESSAGE_RETENTION_DAYS, minutes=5)
    sent = OutboundEmail.objects.count()

    assert purge_old_messages(now=later - timedelta(minutes=10)) == {"messages": 0, "texts": 0, "feed": 0}
    assert purge_old_messages(now=later) == {"messages": sent, "texts": 1, "feed": 0}
    assert not OutboundEmail.objects.exists() and not InboundText.objects.exists()
