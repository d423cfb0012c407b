"""The patient's own page and one-click unsubscribe."""

import re
from datetime import date

import pytest
from django.core import mail

from clinic.email import unsubscribe_token
from clinic.factories import LocationFactory, PatientFactory
from clinic.models import OutboundEmail, Patient
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry
from waitlist.self_service import make_token

pytestmark = pytest.mark.django_db


def emailed(django_capture_on_commit_callbacks, kind=OutboundEmail.Kind.BACKFILL_CONFIRMATION, **patient):
    appointment = AppointmentFactory(**{f"patient__{name}": value for name, value in patient.items()})
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(kind, appointment)
    return appointment, mail.outbox[-1]


def test_every_email_carries_one_click_unsubscribe_headers(client, django_capture_on_commit_callbacks):
    appointment, message = emailed(django_capture_on_commit_callbacks)
    [url] = re.findall(r"<http://testserver(/unsubscribe/\S+/)>", message.extra_headers["List-Unsubscribe"])
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url in message.body  # and the footer link

    response = client.post(url, {"List-Unsubscribe": "One-Click"})  # no cookie, no CSRF token: RFC 8058

    assert response.status_code == 200
    appointment.patient.refresh_from_db()
    assert appointment.patient.email_opt_out is True


def test_get_on_the_unsubscribe_link_only_shows_a_page(client):
    patient = PatientFactory()
    response = client.get(f"/unsubscribe/{unsubscribe_token(patient.pk)}/")
    assert response.status_code == 200 and b"Unsubscribe from our emails?" in response.content
    patient.refresh_from_db()
    assert patient.email_opt_out is False


def test_a_forged_unsubscribe_link_gets_the_400_page(client):
    patient = PatientFactory()
    response = client.post(f"/unsubscribe/{unsubscribe_token(patient.pk)}x/")
    assert response.status_code == 400
    patient.refresh_from_db()
    assert patient.email_opt_out is False


@pytest.mark.parametrize("kind", ["backfill_confirmation", "waitlist_notice", "accept_confirmation"])
def test_notices_and_confirmations_link_the_patients_page(client, kind, django_capture_on_commit_callbacks):
    _, message = emailed(django_capture_on_commit_callbacks, kind=kind)
    [url] = set(re.findall(r"http://testserver(/my/\S+/)", message.body))
    assert client.get(url).status_code == 200


@pytest.fixture
def entry():
    return WaitlistEntryFactory(patient=PatientFactory(first_name="Maria"), available_days=["mon"])


def page(entry):
    return f"/my/{make_token(entry.patient)}/"


def test_the_page_shows_the_patients_waitlist(client, entry):
    text = client.get(page(entry)).content.decode()
    assert "Hello Maria" in text and str(entry.specialty) in text
    assert 'value="mon" checked' in text.replace("\n", " ") or "checked" in text


def test_the_patient_edits_an_entry(client, entry):
    north = LocationFactory(name="Northside")
    prefix = f"e{entry.pk}"
    response = client.post(
        page(entry),
        {
            "action": "save",
            "entry": entry.pk,
            f"{prefix}-available_days": ["tue", "thu"],
            f"{prefix}-time_windows": "08:00-12:00",
            f"{prefix}-earliest_date": "2026-12-07",
            f"{prefix}-latest_date": "2026-12-31",
            f"{prefix}-preferred_location": north.pk,
        },
    )
    assert response.status_code == 200 and b"Saved your choices" in response.content
    entry.refresh_from_db()
    assert entry.available_days == ["tue", "thu"]
    assert (entry.earliest_date, entry.latest_date, entry.preferred_location) == (
        date(2026, 12, 7),
        date(2026, 12, 31),
        north,
    )


def test_a_bad_edit_gets_400_and_changes_nothing(client, entry):
    prefix = f"e{entry.pk}"
    response = client.post(
        page(entry),
        {
            "action": "save",
            "entry": entry.pk,
            f"{prefix}-available_days": ["mon"],
            f"{prefix}-earliest_date": "2026-12-31",
            f"{prefix}-latest_date": "2026-12-01",
        },
    )
    assert response.status_code == 400
    assert b"The latest date must not be before the earliest date." in response.content
    entry.refresh_from_db()
    assert entry.earliest_date is None


def test_the_patient_leaves_the_waitlist(client, entry):
    response = client.post(page(entry), {"action": "leave", "entry": entry.pk})
    assert b"You have left the waitlist" in response.content
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.REMOVED


def test_another_patients_entry_cannot_be_touched(client, entry):
    other = WaitlistEntryFactory()
    response = client.post(page(entry), {"action": "leave", "entry": other.pk})
    assert response.status_code == 400
    other.refresh_from_db()
    assert other.status == WaitlistEntry.Status.WAITING


def test_the_patient_resumes_paused_offers(client, entry):
    entry.patient.pause_offers()
    assert b"Resume offers" in client.get(page(entry)).content
    client.post(page(entry), {"action": "resume"})
    entry.patient.refresh_from_db()
    assert entry.patient.offers_paused_at is None


def test_the_patient_chooses_texts_and_consents(client, entry):
    client.post(page(entry), {"action": "contact", "preferred_channel": "sms", "sms_consent": "on"})
    patient = Patient.objects.get(pk=entry.patient_id)
    assert (patient.preferred_channel, patient.sms_consent, patient.sms_consent_source) == ("sms", True, "patient")


def test_get_changes_nothing(client, entry):
    client.get(page(entry) + f"?action=leave&entry={entry.pk}")
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.WAITING


@pytest.mark.parametrize("token", ["nonsense", "altered"])
def test_a_bad_link_gets_the_400_page(client, entry, token):
    bad = make_token(entry.patient)[:-2] + "xx" if token == "altered" else token
    response = client.post(f"/my/{bad}/", {"action": "leave", "entry": entry.pk})
    assert response.status_code == 400 and b"This link can" in response.content
    entry.refresh_from_db()
    assert entry.status == WaitlistEntry.Status.WAITING


def test_an_expired_link_gets_the_400_page(client, entry):
    from freezegun import freeze_time

    with freeze_time("2026-01-01"):
        token = make_token(entry.patient)
    with freeze_time("2026-04-01"):
        response = client.get(f"/my/{token}/")
    assert response.status_code == 400 and b"expired" in response.content
