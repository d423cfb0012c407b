"""Patients read their emails and link pages on phones, and can call the site."""

import re

import pytest

from clinic.factories import LocationFactory, PatientFactory, ProviderFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.links import make_token
from scheduling.messages import queue_email

pytestmark = pytest.mark.django_db


@pytest.fixture
def appointment():
    northside = LocationFactory(name="Northside", address="48 Oak Ave, Springfield", phone="(555) 010-3000")
    return AppointmentFactory(
        provider=ProviderFactory(name="Dr. Carmen Novak", location=northside),
        patient=PatientFactory(first_name="Isla"),
    )


def test_the_email_lays_out_for_a_phone(appointment):
    email = queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)

    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in email.html_body
    assert "max-width:560px" in email.html_body
    assert "font-size:16px" in email.html_body
    assert not re.search(r'width="?\d{3,}', email.html_body)  # no fixed width wider than a phone


def test_the_email_names_the_sites_address_and_phone(appointment):
    email = queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, appointment)

    assert "Northside, 48 Oak Ave, Springfield" in email.html_body
    assert 'href="tel:5550103000"' in email.html_body
    assert "Phone: (555) 010-3000" in email.text_body


def test_the_patient_page_names_the_sites_address_and_phone(client, appointment):
    text = client.get(f"/appointments/cancel/{make_token(appointment, 'cancel')}/").text

    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert "48 Oak Ave, Springfield" in text
    assert '<a href="tel:5550103000">(555) 010-3000</a>' in text


def test_the_patient_reads_the_time_as_a_sentence(client, appointment):
    text = client.get(f"/appointments/cancel/{make_token(appointment, 'cancel')}/").text

    assert re.search(r"\w+day, \w+ \d{1,2}, \d{4} at 10:00 AM E[SD]T", text)
