"""The audit trail: who changed what, from where, in the same transaction; who looked at a
patient's record; nobody edits the trail, and only Clinic managers read it."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from twilio.request_validator import RequestValidator

from audit import context
from audit.models import AuditEvent
from audit.retention import prune_audit_trail
from clinic import sms
from clinic.factories import HighRiskPatientFactory, PatientFactory, ProviderFactory
from clinic.models import OutboundEmail
from integrations.hl7.inbound import receive
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for
from scheduling.messages import queue_email
from tests.hl7_feed import ehr_clinic, sample
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db


def staff(role, username):
    user = User.objects.create_user(username, password="a-long-pass-phrase", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def cancellation_of(appointment):
    return AuditEvent.objects.get(
        object_type="appointment", object_id=str(appointment.pk), action="update", changes__has_key="status"
    )


def test_a_front_desk_cancellation_names_the_user_and_the_page(client, roles):
    appointment = AppointmentFactory()
    client.force_login(staff("Front desk", "dana"))

    client.post(f"/schedule/appointments/{appointment.pk}/cancel/", {"reason": "patient moved away", "confirm": "1"})

    entry = cancellation_of(appointment)
    assert (entry.actor, entry.channel, entry.patient_id) == ("dana", "staff_page", appointment.patient_id)
    assert entry.changes["status"] == ["scheduled", "cancelled"]
    assert entry.changes["cancel_reason"] == ["", "patient moved away"]


def test_a_cancellation_by_an_api_token_names_the_token(client, roles):
    appointment = AppointmentFactory()
    token = Token.objects.create(user=staff("Integrator", "ehr-sync"))

    response = client.post(
        f"/api/appointments/{appointment.pk}/cancel/",
        {"reason": "patient called in sick"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )

    assert response.status_code == 200
    entry = cancellation_of(appointment)
    assert (entry.actor, entry.channel, entry.user_id) == ("ehr-sync (API token)", "api", token.user_id)


def test_a_cancellation_through_the_patients_link_names_the_link(client):
    appointment = AppointmentFactory()

    client.post(link_for(appointment, "cancel").removeprefix("http://testserver"))

    entry = cancellation_of(appointment)
    assert (entry.channel, entry.user_id, entry.patient_id) == ("patient_link", None, appointment.patient_id)
    assert "patient" in entry.actor


def test_a_cancellation_by_text_names_the_text(client, django_capture_on_commit_callbacks):
    sms.outbox.clear()
    patient = PatientFactory(preferred_channel="sms", sms_consent=True)
    appointment = AppointmentFactory(patient=patient)
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)
    data = {"MessageSid": "SM1", "From": str(patient.phone), "To": settings.TWILIO_FROM_NUMBER, "Body": "CANCEL"}
    signature = RequestValidator(settings.TWILIO_AUTH_TOKEN).compute_signature(
        "http://testserver/sms/twilio/inbound/", data
    )

    client.post("/sms/twilio/inbound/", data, HTTP_X_TWILIO_SIGNATURE=signature)

    entry = cancellation_of(appointment)
    assert (entry.channel, entry.patient_id) == ("text_reply", patient.pk)


def test_the_backfill_job_that_books_a_waiting_patient_names_itself(django_capture_on_commit_callbacks):
    provider = ProviderFactory()
    entry = WaitlistEntryFactory(patient=HighRiskPatientFactory(), specialty=provider.specialty)
    appointment = AppointmentFactory(provider=provider)

    with django_capture_on_commit_callbacks(execute=True), context.acting("dana", context.Channel.STAFF_PAGE):
        appointment.cancel("patient called in sick")

    booked = AuditEvent.objects.get(object_type="appointment", action="create", patient_id=entry.patient_id)
    assert booked.channel == "job"
    assert booked.actor.startswith("job: backfill.tasks.")
    assert cancellation_of(appointment).actor == "dana"


def test_a_raw_sql_update_is_audited_with_who_was_acting():
    patient = PatientFactory(first_name="Maya")

    with context.acting("dana", context.Channel.STAFF_PAGE), connection.cursor() as cursor:
        cursor.execute("UPDATE clinic_patient SET first_name = %s WHERE id = %s", ["Mia", patient.pk])

    entry = AuditEvent.objects.get(object_type="patient", object_id=str(patient.pk), action="update")
    assert (entry.actor, entry.changes) == ("dana", {"first_name": ["Maya", "Mia"]})


def test_one_transaction_with_two_actors_names_each_for_their_own_change():
    maya, noah = PatientFactory(first_name="Maya"), PatientFactory(first_name="Noah")

    with transaction.atomic():
        with context.acting("dana", context.Channel.STAFF_PAGE):
            maya.first_name = "Mia"
            maya.save()
        with context.acting("eli", context.Channel.ADMIN):
            noah.first_name = "Noa"
            noah.save()
        maya.last_name = "Stone"
        maya.save()

    updates = AuditEvent.objects.filter(action="update", object_type="patient").order_by("pk")
    assert [(entry.object_id, entry.actor) for entry in updates] == [
        (str(maya.pk), "dana"),
        (str(noah.pk), "eli"),
        (str(maya.pk), context.fallback().actor),
    ]


def test_after_a_rolled_back_savepoint_the_next_change_still_names_who_acts():
    # A savepoint's rollback undoes the actor sent inside it too: the next write must send it again.
    maya, noah = PatientFactory(first_name="Maya"), PatientFactory(first_name="Noah")

    with context.acting("dana", context.Channel.STAFF_PAGE), transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            maya.first_name = "Mia"
            maya.save()
            raise RuntimeError
        noah.first_name = "Noa"
        noah.save()

    entry = AuditEvent.objects.get(action="update", object_type="patient")
    assert (entry.object_id, entry.actor) == (str(noah.pk), "dana")


def test_an_update_that_changes_nothing_writes_no_entry():
    patient = PatientFactory()
    before = AuditEvent.objects.count()

    patient.save()

    assert AuditEvent.objects.count() == before


def test_a_secret_is_recorded_as_changed_without_its_value():
    user = User.objects.create_user("dana", password="a-long-pass-phrase")

    user.set_password("another-long-pass-phrase")
    user.save()

    entry = AuditEvent.objects.get(object_type="user", object_id=str(user.pk), action="update")
    assert entry.changes == {"password": ["(hidden)", "(hidden)"]}


def test_a_role_given_to_a_user_is_audited(roles):
    user = staff("Clinic manager", "morgan")

    entry = AuditEvent.objects.get(object_type="user's role", object_id=str(user.pk))
    assert (entry.action, entry.changes["group_id"]) == ("create", [None, Group.objects.get(name="Clinic manager").pk])


def test_a_change_rolled_back_leaves_no_entry():
    patient = PatientFactory(first_name="Maya")

    with pytest.raises(RuntimeError), transaction.atomic():
        patient.first_name = "Mia"
        patient.save()
        raise RuntimeError

    assert not AuditEvent.objects.filter(action="update", object_id=str(patient.pk)).exists()


@pytest.mark.parametrize("statement", ["UPDATE audit_auditevent SET actor = 'nobody'", "DELETE FROM audit_auditevent"])
def test_the_database_refuses_to_change_or_delete_an_entry(statement):
    PatientFactory()

    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)

    assert AuditEvent.objects.filter(object_type="patient", action="create").exists()


def test_the_prune_deletes_only_entries_past_the_retention():
    PatientFactory()
    kept = AuditEvent.objects.count()

    later = timezone.now() + timedelta(days=settings.AUDIT_RETENTION_DAYS)
    assert prune_audit_trail(now=later - timedelta(minutes=5)) == 0
    assert AuditEvent.objects.count() == kept
    assert prune_audit_trail(now=later + timedelta(minutes=5)) == kept
    assert AuditEvent.objects.count() == 0


def test_only_clinic_managers_read_the_trail(client, roles):
    PatientFactory()
    for role, status in [("Front desk", 403), ("Integrator", 403), ("Clinic manager", 200)]:
        client.force_login(staff(role, role.replace(" ", "-").lower()))
        assert client.get("/api/audit-events/").status_code == status, role
    client.force_login(User.objects.create_user("nobody", password="a-long-pass-phrase", is_staff=True))
    assert client.get("/api/audit-events/").status_code == 403


def test_the_trail_filters_by_patient_and_shows_who_did_what(client, roles):
    patient, other = PatientFactory(), PatientFactory()
    appointment = AppointmentFactory(patient=patient)
    AppointmentFactory(patient=other)
    client.force_login(staff("Clinic manager", "morgan"))

    items = client.get("/api/audit-events/", {"patient": patient.pk, "object_type": "appointment"}).json()["results"]

    assert [(item["action"], item["object_id"]) for item in items] == [("create", str(appointment.pk))]
    assert set(items[0]) >= {"at", "actor", "channel", "action", "object_type", "object_id", "changes"}


def views_of(object_type):
    return AuditEvent.objects.filter(action="view", object_type=object_type)


def test_opening_an_appointments_page_is_recorded_as_a_view(client, roles):
    appointment = AppointmentFactory()
    client.force_login(staff("Front desk", "dana"))

    client.get(f"/schedule/appointments/{appointment.pk}/")

    entry = views_of("appointment").get()
    assert (entry.object_id, entry.patient_id, entry.actor, entry.channel) == (
        str(appointment.pk),
        appointment.patient_id,
        "dana",
        "staff_page",
    )


def test_a_patients_admin_page_is_recorded_as_a_view(client, roles):
    patient = PatientFactory()
    client.force_login(staff("Front desk", "dana"))

    assert client.get(f"/admin/clinic/patient/{patient.pk}/change/").status_code == 200

    assert list(views_of("patient").values_list("patient_id", "channel")) == [(patient.pk, "admin")]


def test_api_reads_of_patients_and_their_messages_are_recorded(client, roles, django_capture_on_commit_callbacks):
    patient, other = PatientFactory(), PatientFactory()
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, AppointmentFactory(patient=patient))
    token = Token.objects.create(user=staff("Integrator", "ehr-sync"))
    auth = {"HTTP_AUTHORIZATION": f"Token {token.key}"}

    client.get(f"/api/patients/{patient.pk}/", **auth)
    client.get("/api/patients/", **auth)
    client.get("/api/messages/", {"patient": patient.pk}, **auth)

    assert sorted(views_of("patient").values_list("patient_id", flat=True)) == sorted(
        [patient.pk, patient.pk, other.pk]
    )
    messages = views_of("message")
    assert messages.count() == OutboundEmail.objects.filter(patient=patient).count() > 0
    assert set(messages.values_list("patient_id", "actor")) == {(patient.pk, "ehr-sync (API token)")}


def test_nothing_is_recorded_for_a_page_not_about_a_patient(client, roles):
    client.force_login(staff("Front desk", "dana"))

    client.get("/api/providers/")

    assert not AuditEvent.objects.filter(action="view").exists()


def test_a_cancellation_from_the_feed_names_the_feed():
    ehr_clinic()
    receive(sample("siu_s12").encode(), peer="10.0.0.5")
    receive(sample("siu_s15").encode(), peer="10.0.0.5")

    entry = AuditEvent.objects.get(object_type="appointment", action="update", changes__has_key="status")
    assert (entry.actor, entry.channel) == ("HL7 feed (10.0.0.5)", "feed")
