"""Twilio's webhooks: delivery status of texts and patients' replies, signatures checked with
twilio's own RequestValidator."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from twilio.request_validator import RequestValidator

from backfill.models import FreedSlot, SlotOffer
from clinic import sms
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import InboundText, OutboundEmail, Patient
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from scheduling.models import Appointment
from waitlist.factories import WaitlistEntryFactory
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db

STATUS_URL = "/sms/twilio/status/"
INBOUND_URL = "/sms/twilio/inbound/"


@pytest.fixture(autouse=True)
def empty_text_outbox():
    sms.outbox.clear()


def signed_post(client, path, data, token=None, captured=None):
    url = "http://testserver" + path
    signature = RequestValidator(token or settings.TWILIO_AUTH_TOKEN).compute_signature(url, data)
    return client.post(path, data, HTTP_X_TWILIO_SIGNATURE=signature)


def reply(client, patient, body, sid="SM1", callbacks=None):
    data = {"MessageSid": sid, "From": str(patient.phone), "To": settings.TWILIO_FROM_NUMBER, "Body": body}
    if callbacks is None:
        return signed_post(client, INBOUND_URL, data)
    with callbacks(execute=True):
        return signed_post(client, INBOUND_URL, data)


def texter(**fields):
    return PatientFactory(**{"preferred_channel": "sms", "sms_consent": True, **fields})


def sent_text(patient, callbacks, kind=OutboundEmail.Kind.BACKFILL_CONFIRMATION, **appointment):
    appointment = AppointmentFactory(patient=patient, **appointment)
    with callbacks(execute=True):
        queue_email(kind, appointment)
    return appointment


def test_a_delivery_callback_marks_the_text_delivered(client, django_capture_on_commit_callbacks):
    sent_text(texter(), django_capture_on_commit_callbacks)
    text = OutboundEmail.objects.get()

    response = signed_post(client, STATUS_URL, {"MessageSid": text.esp_message_id, "MessageStatus": "delivered"})

    assert response.status_code == 204
    text.refresh_from_db()
    assert text.status == OutboundEmail.Status.DELIVERED


def test_an_undelivered_text_is_marked_bounced_with_the_error(client, django_capture_on_commit_callbacks):
    sent_text(texter(), django_capture_on_commit_callbacks)
    text = OutboundEmail.objects.get()
    signed_post(
        client, STATUS_URL, {"MessageSid": text.esp_message_id, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    text.refresh_from_db()
    assert (text.status, text.last_error) == (OutboundEmail.Status.BOUNCED, "30003")


@pytest.mark.parametrize("path", [STATUS_URL, INBOUND_URL])
def test_a_bad_signature_is_refused_and_changes_nothing(client, path, django_capture_on_commit_callbacks):
    patient = texter()
    sent_text(patient, django_capture_on_commit_callbacks)
    text = OutboundEmail.objects.get()
    data = {
        "MessageSid": text.esp_message_id,
        "MessageStatus": "delivered",
        "From": str(patient.phone),
        "Body": "STOP",
    }

    forged = signed_post(client, path, data, token="not-the-clinics-token")
    unsigned = client.post(path, data)

    assert (forged.status_code, unsigned.status_code) == (403, 403)
    text.refresh_from_db()
    patient.refresh_from_db()
    assert (text.status, patient.sms_consent, InboundText.objects.count()) == ("sent", True, 0)


@pytest.fixture
def provider():
    return ProviderFactory(
        name="Dr. Free", specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory(name="Downtown")
    )


@pytest.fixture
def offered(settings, provider, django_capture_on_commit_callbacks):
    """A slot offered by text to one patient on the waitlist."""
    settings.BACKFILL = {**settings.BACKFILL, "OFFER_MODE": True, "OFFER_TOP_N": 1}
    patient = texter(no_show_risk=0.9)
    WaitlistEntryFactory(patient=patient, specialty=provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        AppointmentFactory(provider=provider).cancel("patient called in sick")
    return SlotOffer.objects.get(patient=patient)


@pytest.mark.parametrize("word", ["YES", "y", " Yes! "])
def test_yes_accepts_the_pending_offer(client, offered, word, django_capture_on_commit_callbacks):
    response = reply(client, offered.patient, word, callbacks=django_capture_on_commit_callbacks)

    assert response.status_code == 200 and response["Content-Type"] == "text/xml"
    assert "it's yours" in response.content.decode()
    offered.refresh_from_db()
    assert offered.status == SlotOffer.Status.ACCEPTED
    assert FreedSlot.objects.get().status == FreedSlot.Status.BACKFILLED
    assert Appointment.objects.filter(patient=offered.patient, status="scheduled").exists()


@pytest.mark.parametrize("word", ["NO", "n"])
def test_no_declines_the_pending_offer(client, offered, word, django_capture_on_commit_callbacks):
    response = reply(client, offered.patient, word, callbacks=django_capture_on_commit_callbacks)

    assert "you passed on this time" in response.content.decode()
    offered.refresh_from_db()
    assert offered.status == SlotOffer.Status.DECLINED
    assert WaitlistEntry.objects.get(patient=offered.patient).status == WaitlistEntry.Status.WAITING


def test_a_retried_message_sid_is_handled_once(client, offered, django_capture_on_commit_callbacks):
    first = reply(client, offered.patient, "YES", sid="SMretry", callbacks=django_capture_on_commit_callbacks)
    again = reply(client, offered.patient, "YES", sid="SMretry", callbacks=django_capture_on_commit_callbacks)

    assert again.content == first.content
    assert InboundText.objects.count() == 1
    assert Appointment.objects.filter(patient=offered.patient, status="scheduled").count() == 1


def test_two_open_offers_get_a_helpful_text_and_change_nothing(
    client, offered, provider, django_capture_on_commit_callbacks
):
    AppointmentFactory(
        patient=offered.patient, provider=provider, status="offered", start=timezone.now() + timedelta(days=3)
    )
    response = reply(client, offered.patient, "YES", callbacks=django_capture_on_commit_callbacks)

    assert "more than one offer open" in response.content.decode()
    offered.refresh_from_db()
    assert offered.status == SlotOffer.Status.PENDING
    assert InboundText.objects.get().outcome == "ambiguous"


def test_yes_accepts_a_reassignment_offer(client, django_capture_on_commit_callbacks):
    patient = texter()
    appointment = sent_text(
        patient, django_capture_on_commit_callbacks, kind=OutboundEmail.Kind.REASSIGNMENT_OFFER, status="offered"
    )
    reply(client, patient, "YES", callbacks=django_capture_on_commit_callbacks)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CONFIRMED


def test_no_declines_a_reassignment_offer_and_joins_the_waitlist(client, django_capture_on_commit_callbacks):
    patient = texter()
    appointment = sent_text(
        patient, django_capture_on_commit_callbacks, kind=OutboundEmail.Kind.REASSIGNMENT_OFFER, status="offered"
    )
    reply(client, patient, "NO", callbacks=django_capture_on_commit_callbacks)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED
    assert WaitlistEntry.objects.get(patient=patient).reason == WaitlistEntry.Reason.DECLINED_REASSIGNMENT


def test_cancel_cancels_the_appointment_the_last_text_was_about(client, django_capture_on_commit_callbacks):
    patient = texter()
    older = sent_text(patient, django_capture_on_commit_callbacks)
    latest = sent_text(patient, django_capture_on_commit_callbacks, start=timezone.now() + timedelta(days=4))

    response = reply(client, patient, "cancel", callbacks=django_capture_on_commit_callbacks)

    assert "is cancelled" in response.content.decode()
    latest.refresh_from_db()
    older.refresh_from_db()
    assert (latest.status, older.status) == ("cancelled", "scheduled")
    assert latest.cancel_reason == "patient cancelled by text reply"


def test_cancel_with_nothing_to_cancel_changes_nothing(client, django_capture_on_commit_callbacks):
    patient = texter()
    response = reply(client, patient, "CANCEL", callbacks=django_capture_on_commit_callbacks)
    assert "no upcoming visit to cancel" in response.content.decode()
    assert InboundText.objects.get().outcome == "nothing_to_cancel"


@pytest.mark.parametrize("word", ["STOP", "stopall", "UNSUBSCRIBE", "END", "QUIT", "REVOKE", "OPTOUT"])
def test_stop_and_the_carrier_keywords_opt_out_of_texts(client, word):
    patient = texter()
    response = reply(client, patient, word)
    assert "won't get any more texts" in response.content.decode()
    patient.refresh_from_db()
    assert (patient.sms_consent, patient.sms_consent_source) == (False, Patient.ConsentSource.SMS)
    assert patient.message_channels() == ["email"]


def test_start_opts_back_in(client):
    patient = texter(sms_consent=False)
    reply(client, patient, "START")
    patient.refresh_from_db()
    assert patient.sms_consent is True and patient.sms_consent_at is not None


def test_help_answers_with_the_clinics_phone(client):
    response = reply(client, texter(), "HELP")
    assert settings.CLINIC_PHONE in response.content.decode()


def test_a_reply_that_matches_nothing_gets_a_helpful_text_and_changes_nothing(client, offered):
    response = reply(client, offered.patient, "maybe tomorrow?")
    assert "didn't understand" in response.content.decode()
    offered.refresh_from_db()
    assert offered.status == SlotOffer.Status.PENDING


def test_yes_with_no_open_offer_changes_nothing(client):
    response = reply(client, texter(), "YES")
    assert "no offer waiting" in response.content.decode()


def test_a_number_we_do_not_know_is_told_to_call(client):
    response = signed_post(client, INBOUND_URL, {"MessageSid": "SMx", "From": "+16175559999", "Body": "YES"})
    assert "don't have this number" in response.content.decode()


def test_the_offer_text_fits_two_segments_with_one_short_link(offered):
    text = OutboundEmail.objects.get(kind="slot_offer", channel="sms")
    assert sms.is_gsm7(text.text_body) and sms.segments(text.text_body) <= 2
    assert text.text_body.count("http") == 1 and "Reply YES" in text.text_body
