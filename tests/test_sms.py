"""Texts as a second channel: who gets one, what it holds, how it is sent."""

import json

import pytest
from django.core import mail
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse

from clinic import sms
from clinic.email import send_stored_email
from clinic.factories import HighRiskPatientFactory, PatientFactory
from clinic.models import OutboundEmail, Patient
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db

LONG_NAMES = {"first_name": "Maximiliana-Josephine", "last_name": "Featherstonehaugh-Worthington"}


@pytest.fixture(autouse=True)
def empty_text_outbox():
    sms.outbox.clear()
    sms.LocmemBackend.fail_with = None


def texter(**fields):
    return PatientFactory(**{"preferred_channel": Patient.Channel.SMS, "sms_consent": True, **fields})


def queued(django_capture_on_commit_callbacks, patient, kind=OutboundEmail.Kind.BACKFILL_CONFIRMATION, execute=True):
    appointment = AppointmentFactory(patient=patient)
    with django_capture_on_commit_callbacks(execute=execute):
        queue_email(kind, appointment)
    return appointment


@pytest.mark.parametrize(
    ("channel", "consent", "opted_out", "expected"),
    [
        ("email", True, False, ["email"]),
        ("sms", True, False, ["sms"]),
        ("sms", False, False, ["email"]),  # no consent: email rather than silence
        ("both", True, False, ["email", "sms"]),
        ("both", False, False, ["email"]),
        ("both", True, True, ["sms"]),
        ("email", False, True, []),
    ],
)
def test_it_chooses_channels_by_preference_and_consent(channel, consent, opted_out, expected):
    patient = PatientFactory.build(preferred_channel=channel, sms_consent=consent, email_opt_out=opted_out)
    assert patient.message_channels() == expected


def test_a_patient_without_a_phone_gets_email():
    assert PatientFactory.build(preferred_channel="sms", sms_consent=True, phone="").message_channels() == ["email"]


def test_it_stores_and_sends_a_text_after_commit(django_capture_on_commit_callbacks):
    patient = texter()
    queued(django_capture_on_commit_callbacks, patient)

    text = OutboundEmail.objects.get()
    assert (text.channel, text.recipient, text.patient, text.status) == ("sms", str(patient.phone), patient, "sent")
    assert sms.outbox[0]["to"] == str(patient.phone) and sms.outbox[0]["body"] == text.text_body
    assert text.esp_message_id == sms.outbox[0]["sid"]
    assert sms.outbox[0]["status_callback"] == "http://testserver/sms/twilio/status/"
    assert mail.outbox == []


def test_both_sends_an_email_and_a_text(django_capture_on_commit_callbacks):
    queued(django_capture_on_commit_callbacks, texter(preferred_channel="both"))
    assert sorted(OutboundEmail.objects.values_list("channel", flat=True)) == ["email", "sms"]
    assert len(mail.outbox) == 1 and len(sms.outbox) == 1
    # Sent in one batch, each keeps its own provider's id: delivery reports find their message by it.
    email, text = OutboundEmail.objects.order_by("channel")
    assert (email.status, text.status) == ("sent", "sent")
    assert text.esp_message_id == sms.outbox[0]["sid"]
    assert email.esp_message_id == str(mail.outbox[0].anymail_status.message_id)


def test_a_failed_text_stays_queued_and_is_sent_once_on_retry(django_capture_on_commit_callbacks):
    sms.LocmemBackend.fail_with = OSError("carrier down")
    queued(django_capture_on_commit_callbacks, texter())
    text = OutboundEmail.objects.get()
    assert (text.status, text.attempts) == ("queued", 1) and "carrier down" in text.last_error

    sms.LocmemBackend.fail_with = None
    send_stored_email(text.pk)
    send_stored_email(text.pk)
    text.refresh_from_db()
    assert (text.status, text.attempts, len(sms.outbox)) == ("sent", 2, 1)


@pytest.mark.parametrize(
    "kind", [kind for kind in OutboundEmail.Kind.values if kind not in ("slot_offer", "slot_offer_taken")]
)
def test_every_appointment_message_fits_two_gsm_segments_with_one_short_link(kind, django_capture_on_commit_callbacks):
    patient = texter(**LONG_NAMES)
    appointment = AppointmentFactory(
        patient=patient,
        provider__name="Dr. Bartholomew Featherstonehaugh-Smythe",
        status="offered" if kind == "reassignment_offer" else "scheduled",
    )
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(
            kind,
            appointment,
            original=appointment,
            slot_news="Good news! We found another patient for this time slot.",
        )
    body = OutboundEmail.objects.get().text_body
    assert sms.is_gsm7(body), body
    assert sms.segments(body) <= 2, body
    assert body.count("http") <= 1


def test_a_short_link_leads_to_the_signed_patient_link(client, django_capture_on_commit_callbacks):
    queued(django_capture_on_commit_callbacks, texter(), kind=OutboundEmail.Kind.BACKFILL_CONFIRMATION)
    short = next(word for word in OutboundEmail.objects.get().text_body.split() if "/l/" in word)
    assert len(short) < 40

    response = client.get(short.removeprefix("http://testserver"))
    assert response.status_code == 302
    assert "/my/" in response["Location"]
    assert client.get(response["Location"]).status_code == 200


def test_an_unknown_short_link_is_not_found(client):
    assert client.get("/l/nothing/").status_code == 404


def test_it_counts_segments_as_carriers_do():
    assert sms.segments("a" * 160) == 1
    assert sms.segments("a" * 161) == 2
    assert sms.segments("a" * 306) == 2 and sms.segments("a" * 307) == 3
    assert sms.segments("é" * 160) == 1  # é is in GSM-7
    assert sms.segments("ł" * 71) == 2  # one character outside GSM-7 makes it UCS-2
    assert sms.gsm_friendly("you’re – ok") == "you're - ok"


def test_the_api_stores_a_phone_number_in_e164(staff_client):
    patient = PatientFactory()
    response = staff_client.patch(
        f"/api/patients/{patient.pk}/", {"phone": "617 555 0142", "sms_consent": True}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["phone"] == "+16175550142"
    patient.refresh_from_db()
    assert (str(patient.phone), patient.sms_consent, patient.sms_consent_source) == ("+16175550142", True, "api")
    assert patient.sms_consent_at is not None


def test_the_api_refuses_an_invalid_phone_number_and_changes_nothing(staff_client):
    patient = PatientFactory(phone="+16175550100")
    response = staff_client.patch(
        f"/api/patients/{patient.pk}/", {"phone": "555-0100"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == {"phone": ["The phone number entered is not valid."]}
    patient.refresh_from_db()
    assert str(patient.phone) == "+16175550100"


class FakeTwilioHttp(HttpClient):
    """Twilio's own HTTP-client hook: records the request the library makes, answers as Twilio does."""

    def __init__(self):
        super().__init__(logger=None, is_async=False)
        self.requests = []

    def request(
        self, method, uri, params=None, data=None, headers=None, auth=None, timeout=None, allow_redirects=False
    ):
        self.requests.append({"method": method, "uri": uri, "data": data, "auth": auth})
        return TwilioResponse(201, json.dumps({"sid": "SM" + "a" * 32, "status": "queued"}))


def test_the_twilio_backend_posts_the_message_to_twilio(settings):
    http = FakeTwilioHttp()
    sid = sms.TwilioBackend(http_client=http).send(
        "+16175550100", "Hello", status_callback="http://testserver/sms/twilio/status/"
    )

    assert sid == "SM" + "a" * 32
    request = http.requests[0]
    assert request["method"] == "POST"
    assert request["uri"] == f"https://api.twilio.com/2010-04-01/Accounts/{settings.TWILIO_ACCOUNT_SID}/Messages.json"
    assert request["data"] == {
        "To": "+16175550100",
        "Body": "Hello",
        "From": "+16175550199",
        "StatusCallback": "http://testserver/sms/twilio/status/",
    }
    assert request["auth"] == (settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)


def test_the_twilio_backend_uses_a_messaging_service_when_set(settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "b" * 32
    http = FakeTwilioHttp()
    sms.TwilioBackend(http_client=http).send("+16175550100", "Hello")
    assert http.requests[0]["data"]["MessagingServiceSid"] == "MG" + "b" * 32
    assert "From" not in http.requests[0]["data"]


def test_a_dotted_path_names_a_backend(settings):
    settings.SMS_BACKEND = "clinic.sms.LocmemBackend"
    assert isinstance(sms.get_backend(), sms.LocmemBackend)


def test_the_api_lists_stored_messages_filtered_by_channel_and_patient(
    staff_client, django_capture_on_commit_callbacks
):
    patient = texter(preferred_channel="both")
    queued(django_capture_on_commit_callbacks, patient)
    queued(django_capture_on_commit_callbacks, PatientFactory())

    texts = staff_client.get(f"/api/messages/?channel=sms&patient={patient.pk}").json()
    everything = staff_client.get("/api/messages/?kind=backfill_confirmation&status=sent").json()

    assert everything["count"] == 3
    [text] = texts["results"]
    assert (text["channel"], text["patient"], text["recipient"], text["subject"]) == (
        "sms",
        patient.pk,
        str(patient.phone),
        "",
    )
    assert text["body"].startswith("Backfill Clinic: a time opened up")
    assert staff_client.get("/api/messages/?channel=fax").status_code == 400


@pytest.mark.parametrize(("role", "status"), [("Front desk", 200), ("Integrator", 200), (None, 403)])
def test_reading_messages_in_the_api_needs_the_role(client, django_user_model, role, status):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="someone", password="pw", is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    assert client.get("/api/messages/").status_code == status


def test_the_migration_rewrites_phones_typed_before_in_e164():
    from importlib import import_module

    from django.apps import apps
    from django.db import connection

    migration = import_module("clinic.migrations.0012_sms_channel_contact_rules")
    typed, unreadable = PatientFactory(), PatientFactory()
    with connection.cursor() as cursor:  # as stored before the field was a phone number field
        cursor.execute("UPDATE clinic_patient SET phone = %s WHERE id = %s", ["(617) 555-0123", typed.pk])
        cursor.execute("UPDATE clinic_patient SET phone = %s WHERE id = %s", ["555-0100", unreadable.pk])

    migration.phones_in_e164(apps, None)

    assert str(Patient.objects.get(pk=typed.pk).phone) == "+16175550123"
    assert Patient.objects.get(pk=unreadable.pk).phone.raw_input == "555-0100"


@pytest.mark.parametrize(
    ("fields", "reachable", "why_not"),
    [
        ({}, True, None),
        ({"email_opt_out": True}, False, "has opted out of email and not agreed to texts"),
        ({"email_opt_out": True, "sms_consent": True}, True, None),
        (
            {"email_opt_out": True, "sms_consent": True, "phone": ""},
            False,
            "has opted out of email and has no number for the texts they agreed to",
        ),
        ({"email": "", "sms_consent": True}, True, None),
        ({"email": ""}, False, "has no email address and not agreed to texts"),
    ],
)
def test_reachable_means_the_same_to_the_sender_the_orm_and_the_matcher(fields, reachable, why_not):
    from django.db import connection

    from backfill.explanation import explain
    from backfill.rules import REACHABLE, SlotFacts

    patient = PatientFactory(**fields)
    entry = WaitlistEntryFactory(patient=patient)
    appointment = AppointmentFactory(provider__specialty=entry.specialty)

    assert patient.is_reachable == bool(patient.message_channels()) == reachable
    assert Patient.objects.reachable().filter(pk=patient.pk).exists() == reachable
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM clinic_patient p WHERE p.id = %s AND {REACHABLE}", [patient.pk])
        assert cursor.fetchone()[0] == reachable
    provider = appointment.provider
    slot = SlotFacts(provider.pk, provider.specialty_id, provider.location_id, appointment.start, appointment.end)
    reasons = explain(entry, slot).reasons
    assert (why_not in reasons) if why_not else not any("texts" in reason for reason in reasons)


def test_a_patient_who_opted_out_of_email_but_takes_texts_gets_the_text():
    patient = PatientFactory.build(preferred_channel="email", email_opt_out=True, sms_consent=True)
    assert patient.message_channels() == ["sms"]


def test_the_backfill_books_and_texts_a_patient_reachable_only_by_text(django_capture_on_commit_callbacks):
    texter = HighRiskPatientFactory(email_opt_out=True, sms_consent=True)
    appointment = AppointmentFactory()
    WaitlistEntryFactory(patient=texter, specialty=appointment.provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        appointment.cancel("sick")

    booked = texter.appointments.get()
    assert [(message.channel, message.status) for message in booked.emails.all()] == [("sms", "sent")]
