from datetime import timedelta
from html import unescape

import pytest
from django.utils import timezone

from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email

pytestmark = pytest.mark.django_db


def stored_email(
    subject, kind=OutboundEmail.Kind.BACKFILL_CONFIRMATION, status=OutboundEmail.Status.SENT, minutes_ago=0
):
    return OutboundEmail.objects.create(
        kind=kind,
        status=status,
        recipient="pat@mail.example",
        subject=subject,
        text_body=f"{subject} text",
        html_body=f"<p>{subject} html</p>",
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_it_lists_the_newest_message_first(staff_client):
    stored_email("Older message", minutes_ago=30)
    stored_email("Newer message", minutes_ago=1)

    text = staff_client.get("/emails/").text

    assert text.index("Newer message") < text.index("Older message")


def test_it_filters_by_kind_and_status(staff_client):
    stored_email("Booked from waitlist")
    stored_email("Offer that failed", kind=OutboundEmail.Kind.REASSIGNMENT_OFFER, status=OutboundEmail.Status.FAILED)
    stored_email("Offer sent", kind=OutboundEmail.Kind.REASSIGNMENT_OFFER)

    text = staff_client.get("/emails/?kind=reassignment_offer&status=failed").text

    assert "Offer that failed" in text
    assert "Offer sent" not in text and "Booked from waitlist" not in text


def test_it_refuses_a_kind_it_does_not_know(staff_client):
    stored_email("Booked from waitlist")

    response = staff_client.get("/emails/?kind=spam")

    assert response.status_code == 400
    assert "Kind: Select a valid choice. spam is not one of the available choices." in unescape(response.text)
    assert "Booked from waitlist" not in response.text


def test_it_pages_through_a_long_outbox_keeping_the_filter(staff_client):
    for number in range(25):
        stored_email(f"Message {number:02d}", minutes_ago=number)

    first = staff_client.get("/emails/?status=sent").text
    second = staff_client.get("/emails/?status=sent&page=2").text

    assert "Message 00" in first and "Message 19" in first and "Message 20" not in first
    assert "Message 20" in second and "Message 24" in second and "Message 19" not in second
    assert 'href="?status=sent&amp;page=2" rel="next"' in first
    assert "Page 2 of 2 (25 messages)" in second


def test_it_renders_the_message_as_the_patient_sees_it_with_working_links(staff_client):
    appointment = AppointmentFactory()
    email = queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)

    response = staff_client.get("/emails/")

    frame = unescape(response.text.split('srcdoc="', 1)[1].split('"></iframe>', 1)[0])
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in response.text
    assert frame == '<base target="_blank">' + email.html_body
    assert 'href="http://testserver/appointments/cancel/' in frame


def test_it_keeps_a_messages_markup_from_breaking_out_of_its_frame(staff_client):
    stored_email('"><script>alert(1)</script>')

    text = staff_client.get("/emails/").text

    assert "<script>" not in text


def test_it_says_when_nothing_matches(staff_client):
    response = staff_client.get("/emails/?kind=waitlist_notice")

    assert response.status_code == 200
    assert "No messages match these filters." in response.text


def test_it_loads_a_full_page_of_messages_in_a_few_queries(staff_client, django_assert_max_num_queries):
    for number in range(30):
        stored_email(f"Message {number}")

    # Session, user, count, page, and one for the patients the page's messages went to.
    with django_assert_max_num_queries(5):
        staff_client.get("/emails/")


def test_the_outbox_names_the_patient_beside_their_address_and_the_appointment_in_words(staff_client):
    from clinic.factories import PatientFactory, ProviderFactory

    appointment = AppointmentFactory(
        patient=PatientFactory(first_name="Rosalind", last_name="Franklin", email="rosalind@mail.example"),
        provider=ProviderFactory(name="Dr. Ito"),
    )
    queue_email(OutboundEmail.Kind.CANCEL_CONFIRMATION, appointment)

    page = staff_client.get("/emails/").content.decode()
    admin_list = staff_client.get("/admin/clinic/outboundemail/").content.decode()
    when = timezone.localtime(appointment.start)
    assert "To Rosalind Franklin &lt;rosalind@mail.example&gt;" in page
    assert f"Appointment {when:%a %-d %b %Y, %H:%M} with Dr. Ito" in page
    assert "Rosalind Franklin &lt;rosalind@mail.example&gt;" in admin_list
    assert f"{when:%a %-d %b %Y, %H:%M} with Dr. Ito" in admin_list
    assert f"#{appointment.pk}<" not in admin_list and "Appointment #" not in page
