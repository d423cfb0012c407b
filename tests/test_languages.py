"""Patients read every message and page in their language (docs/reference.md, Languages)."""

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import translation

from backfill.models import FreedSlot, SlotOffer
from backfill.offer_links import link_for as offer_link_for
from clinic import languages, sms, times
from clinic.email import unsubscribe_url
from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for
from scheduling.messages import queue_email
from scheduling.models import Appointment
from tests.test_sms_webhooks import reply
from waitlist import self_service
from waitlist.factories import WaitlistEntryFactory

pytestmark = pytest.mark.django_db

# Words only the Spanish messages use, and only the English ones: a message in the wrong
# language carries one of the other's.
SPANISH = re.compile(r"\b(Hola|su cita|lista de espera|Cuándo|Responda|¿Preguntas\?|Gracias)\b", re.IGNORECASE)
ENGLISH = re.compile(r"\b(Hello|your appointment|waitlist|When|Reply|Questions\?|Thank you)\b", re.IGNORECASE)


@pytest.fixture(autouse=True)
def empty_text_outbox():
    sms.outbox.clear()


def patient_reading(language, **fields):
    return PatientFactory(
        first_name="Lucía", preferred_language=language, preferred_channel="both", sms_consent=True, **fields
    )


def messages_of(patient):
    return list(OutboundEmail.objects.filter(patient=patient))


@pytest.mark.parametrize("kind", [kind for kind, _ in OutboundEmail.Kind.choices if not kind.startswith("slot_offer")])
def test_a_spanish_speaking_patient_gets_every_message_in_spanish(kind, django_capture_on_commit_callbacks):
    patient = patient_reading("es")
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(
            kind, AppointmentFactory(patient=patient), original=AppointmentFactory(), provider_unavailable=True
        )

    email, text = sorted(messages_of(patient), key=lambda message: message.channel)
    for body in (email.subject, email.text_body, email.html_body, text.text_body):
        assert not ENGLISH.search(body.replace("Backfill Clinic", "")), body
    for body in (email.text_body, email.html_body, text.text_body):
        assert SPANISH.search(body), body
    assert email.html_body.startswith('<!doctype html>\n<html lang="es">')
    assert sms.is_gsm7(text.text_body) and sms.segments(text.text_body) <= 2, text.text_body


@pytest.mark.parametrize("kind", [kind for kind, _ in OutboundEmail.Kind.choices if not kind.startswith("slot_offer")])
def test_an_english_patient_sees_no_spanish(kind, django_capture_on_commit_callbacks):
    patient = patient_reading("")
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(
            kind, AppointmentFactory(patient=patient), original=AppointmentFactory(), provider_unavailable=True
        )

    for message in messages_of(patient):
        for body in (message.subject, message.text_body, message.html_body):
            assert not SPANISH.search(body), body


def test_the_times_in_a_spanish_message_are_written_in_spanish(django_capture_on_commit_callbacks):
    patient = patient_reading("es")
    start = datetime(2030, 12, 4, 15, 0, tzinfo=ZoneInfo("America/New_York"))
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(
            OutboundEmail.Kind.BACKFILL_CONFIRMATION,
            AppointmentFactory(patient=patient, start=start, end=start.replace(hour=16)),
        )

    email = OutboundEmail.objects.get(channel="email")
    text = OutboundEmail.objects.get(channel="sms")
    assert "miércoles 4 de diciembre de 2030 a las 3:00 p. m. EST" in email.text_body
    assert "mié 4 de diciembre a las 3:00 p. m." in email.subject
    assert "cita el mié 4 de diciembre a las 3:00 p. m." in text.text_body


def test_texts_carry_the_phone_of_the_site_or_else_the_clinics(settings, django_capture_on_commit_callbacks):
    with_phone = AppointmentFactory(
        patient=patient_reading(""), provider=ProviderFactory(location=LocationFactory(name="Riverside"))
    )
    with_phone.provider.location.phone = "(617) 555-0142"
    with_phone.provider.location.save()
    without_phone = AppointmentFactory(patient=patient_reading(""))
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(OutboundEmail.Kind.CLINIC_CANCELLATION, with_phone)
        queue_email(OutboundEmail.Kind.BACKFILL_CONFIRMATION, without_phone)

    texts = OutboundEmail.objects.filter(channel="sms")
    assert "(617) 555-0142" in texts.get(patient=with_phone.patient).text_body
    assert settings.CLINIC_PHONE in texts.get(patient=without_phone.patient).text_body


@pytest.fixture
def offered_in_spanish(settings, django_capture_on_commit_callbacks):
    settings.BACKFILL = {**settings.BACKFILL, "OFFER_MODE": True, "OFFER_TOP_N": 1}
    provider = ProviderFactory(specialty=SpecialtyFactory(name="Orthopedic PT"), location=LocationFactory())
    patient = patient_reading("es", no_show_risk=0.9)
    WaitlistEntryFactory(patient=patient, specialty=provider.specialty)
    with django_capture_on_commit_callbacks(execute=True):
        AppointmentFactory(provider=provider).cancel("patient called in sick")
    return SlotOffer.objects.get(patient=patient)


def test_the_offer_text_is_in_spanish_and_asks_for_si(offered_in_spanish):
    text = OutboundEmail.objects.get(kind="slot_offer", channel="sms")
    assert "Responda SI para reservar" in text.text_body


@pytest.mark.parametrize("word", ["SI", "sí", "Sí.", "SÍ"])
def test_a_spanish_yes_books_the_slot_and_is_answered_in_spanish(
    client, offered_in_spanish, word, django_capture_on_commit_callbacks
):
    response = reply(client, offered_in_spanish.patient, word, callbacks=django_capture_on_commit_callbacks)

    assert "es suyo" in response.content.decode()
    assert FreedSlot.objects.get().status == FreedSlot.Status.BACKFILLED
    assert Appointment.objects.filter(patient=offered_in_spanish.patient, status="scheduled").exists()
    confirmation = OutboundEmail.objects.get(kind="backfill_confirmation", channel="email")
    assert confirmation.subject.startswith("Se liberó una cita antes")


@pytest.mark.parametrize(("word", "answer"), [("PARAR", "ya no le enviaremos"), ("AYUDA", "para recibir ayuda")])
def test_spanish_keywords_are_understood_and_answered_in_spanish(client, word, answer):
    patient = patient_reading("")
    response = reply(client, patient, word)

    assert answer in response.content.decode()
    patient.refresh_from_db()
    assert patient.sms_consent is (word != "PARAR")


def test_an_english_patient_is_answered_in_english_whatever_word_they_use(client):
    response = reply(client, patient_reading("en"), "AYUDA")
    assert "for help call" in response.content.decode()


def test_a_patients_page_is_in_their_language_unless_the_link_asks_for_another(client):
    appointment = AppointmentFactory(patient=patient_reading("es"))
    path = link_for(appointment, "cancel").removeprefix("http://testserver")

    spanish = client.get(path).content.decode()
    english = client.get(path + "?lang=en").content.decode()

    assert '<html lang="es">' in spanish and "Cancelar mi cita" in spanish and "Cuándo" in spanish
    assert '<html lang="en">' in english and "Cancel my appointment" in english
    assert 'href="?lang=en"' in spanish and 'href="?lang=es"' in english


def test_a_spanish_patient_cancels_from_their_page_and_reads_the_outcome_in_spanish(client):
    appointment = AppointmentFactory(patient=patient_reading("es"))
    path = link_for(appointment, "cancel").removeprefix("http://testserver")

    page = client.post(path).content.decode()

    assert "Su cita está cancelada" in page and "Cancelada" in page
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED


def test_a_broken_link_answers_in_the_browsers_language(client):
    response = client.get("/appointments/cancel/forged/", HTTP_ACCEPT_LANGUAGE="es-MX,es;q=0.9")

    assert response.status_code == 400
    assert "Este enlace no es válido" in response.content.decode()
    assert "Accept-Language" in response["Vary"]


def test_staff_pages_stay_in_english_whatever_the_browser_asks(staff_client):
    page = staff_client.get("/schedule/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert '<html lang="en"' in page or "Schedule" in page
    assert not SPANISH.search(page)


def test_the_unsubscribe_page_speaks_the_patients_language(client):
    patient = patient_reading("es")
    page = client.get(unsubscribe_url(patient.pk).removeprefix("http://testserver")).content.decode()
    assert "¿Quiere dejar de recibir nuestros correos?" in page


@pytest.mark.parametrize(
    ("sent", "read"),
    [("es", "es"), ("es-MX", "es"), ("SPA", "es"), ("Spanish", "es"), ("español", "es"), ("ENG", "en"), ("fr", "")],
)
def test_the_language_a_sender_names_is_read_as_one_the_clinic_writes(sent, read):
    assert languages.supported(sent) == read


@override_settings(LANGUAGE_CODE="es")
def test_a_patient_with_a_language_the_clinic_does_not_write_reads_the_clinics_default():
    assert languages.language_of(PatientFactory.build(preferred_language="fr")) == "es"


def test_one_sentence_per_language_for_a_time():
    moment = datetime(2026, 12, 2, 13, 5, tzinfo=ZoneInfo("America/New_York"))
    with translation.override("es"):
        assert times.patient_datetime(moment) == "miércoles 2 de diciembre de 2026 a la 1:05 p. m. EST"
        assert times.patient_short(moment.replace(hour=9)) == "mié 2 de diciembre a las 9:05 a. m."
    with translation.override("en"):
        assert times.patient_datetime(moment) == "Wednesday, December 2, 2026 at 1:05 PM EST"


def test_an_integrator_sets_the_language_through_the_api(staff_client):
    patient = PatientFactory()

    response = staff_client.patch(
        f"/api/patients/{patient.pk}/", {"preferred_language": "es-MX"}, content_type="application/json"
    )

    assert response.status_code == 200 and response.json()["preferred_language"] == "es-MX"
    patient.refresh_from_db()
    assert languages.language_of(patient) == "es"


def test_the_admin_offers_the_languages_the_clinic_writes_and_keeps_a_feeds_code(staff_client):
    patient = PatientFactory(preferred_language="SPA")

    page = staff_client.get(f"/admin/clinic/patient/{patient.pk}/change/").content.decode()

    assert '<option value="es">Español</option>' in page
    assert '<option value="SPA" selected>SPA (sent by a feed: reads Español)</option>' in page


def test_the_self_service_page_is_in_spanish_with_spanish_day_names(client):
    patient = patient_reading("es")
    WaitlistEntryFactory(patient=patient, specialty=SpecialtyFactory(name="Orthopedic PT"))
    path = self_service.link_for(patient).removeprefix("http://testserver")

    page = client.get(path).content.decode()

    assert "Su lista de espera" in page and "Días en que puede venir" in page and "miércoles" in page
    assert "Correo electrónico y mensaje de texto" in page
    assert not ENGLISH.search(page.replace("Backfill Clinic", "").replace("Orthopedic PT", ""))


def test_the_slot_offer_page_is_in_spanish(offered_in_spanish, client):
    path = offer_link_for(offered_in_spanish, "accept").removeprefix("http://testserver")

    page = client.get(path).content.decode()

    assert "Aceptar este horario" in page and "Pendiente, abierta hasta el" in page


def test_a_page_that_is_not_there_answers_in_the_patients_browser_language(client):
    response = client.get("/l/nothing-here/", HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 404 and "Página no encontrada" in response.content.decode()


def test_the_slot_offer_email_is_in_spanish(offered_in_spanish):
    email = OutboundEmail.objects.get(kind="slot_offer", channel="email")
    assert email.subject.startswith("Se liberó una cita el") and "Acepte este horario" in email.text_body
    assert not ENGLISH.search(email.text_body.replace("Backfill Clinic", "").replace("Orthopedic PT", ""))
