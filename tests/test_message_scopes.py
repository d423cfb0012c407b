"""What messages say is for the staff who talk to patients: their bodies hold the patient's
own links. An integrator sees a message's kind, channel, status and times, never its
subject, body or links (the API and the messages page alike)."""

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def message():
    appointment = AppointmentFactory()
    link = link_for(appointment, "cancel")
    return OutboundEmail.objects.create(
        kind=OutboundEmail.Kind.BACKFILL_CONFIRMATION,
        status=OutboundEmail.Status.SENT,
        patient=appointment.patient,
        appointment=appointment,
        recipient=appointment.patient.email,
        subject="You're booked with Dr. Example",
        text_body=f"Can't come? Cancel: {link}",
        html_body=f'<p><a href="{link}">Cancel this appointment</a></p>',
    )


def account(role, **extra):
    user = User.objects.create_user(role.replace(" ", "-").lower(), **extra)
    user.groups.add(Group.objects.get(name=role))
    return user


def api_as(client, role):
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=account(role)).key}"
    return client


def test_an_integrator_reads_a_messages_metadata_without_its_subject_body_or_links(client, message):
    response = api_as(client, "Integrator").get("/api/messages/")
    [item] = response.json()["results"]
    assert (item["kind"], item["channel"], item["status"]) == ("backfill_confirmation", "email", "sent")
    assert item["created_at"] and item["sent_at"] is None
    assert (item["subject"], item["body"]) == (None, None)
    assert "/appointments/cancel/" not in response.text and "Cancel" not in response.text


def test_an_integrator_reading_one_message_gets_no_body_either(client, message):
    item = api_as(client, "Integrator").get(f"/api/messages/{message.pk}/").json()
    assert (item["subject"], item["body"]) == (None, None)


def test_the_front_desk_reads_what_the_patient_was_sent(client, message):
    [item] = api_as(client, "Front desk").get("/api/messages/").json()["results"]
    assert item["subject"] == "You're booked with Dr. Example"
    assert item["body"] == message.text_body


def test_the_messages_page_shows_an_integrator_no_subject_body_or_link(client, message):
    client.force_login(account("Integrator"))
    page = client.get("/messages/").text
    assert f"Email to {message.patient}" in page
    assert message.get_kind_display() in page
    assert "You're booked" not in page and "You&#x27;re booked" not in page
    assert "Cancel this appointment" not in page
    assert "/appointments/cancel/" not in page


def test_the_messages_page_shows_the_front_desk_the_message_and_its_links(client, message):
    client.force_login(account("Front desk", is_staff=True))
    page = client.get("/messages/").text
    assert "Cancel this appointment" in page
    assert "/appointments/cancel/" in page
    assert "You&#x27;re booked with Dr. Example" in page


def test_an_appointments_page_shows_an_integrator_the_kind_of_each_message_not_its_subject(client, message):
    client.force_login(account("Integrator"))
    page = client.get(f"/schedule/appointments/{message.appointment_id}/")
    assert page.status_code == 200
    assert message.get_kind_display() in page.text
    assert "booked with Dr. Example" not in page.text


def test_an_appointments_page_shows_the_front_desk_each_messages_subject(client, message):
    client.force_login(account("Front desk", is_staff=True))
    page = client.get(f"/schedule/appointments/{message.appointment_id}/")
    assert "You&#x27;re booked with Dr. Example" in page.text
