"""Less in a text: a text names the time, the place and what to do; never a specialty or a
reason; the provider's name only where SMS_NAME_PROVIDER says."""

import pytest

from clinic.factories import PatientFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.messages import queue_email

pytestmark = pytest.mark.django_db

KINDS = [kind for kind in OutboundEmail.Kind.values if kind not in ("slot_offer", "slot_offer_taken")]


def text_of(kind, callbacks):
    patient = PatientFactory(preferred_channel="sms", sms_consent=True)
    appointment = AppointmentFactory(
        patient=patient,
        provider__name="Dr. Ada Oncewell",
        provider__specialty__name="Oncology",
        provider__location__name="Harbor Street",
        status="offered" if kind == "reassignment_offer" else "scheduled",
        cancel_reason="biopsy results discussed",
    )
    with callbacks(execute=True):
        queue_email(kind, appointment, original=appointment, provider_unavailable=True)
    return OutboundEmail.objects.get(channel="sms").text_body


@pytest.mark.parametrize("kind", KINDS)
def test_a_text_names_the_place_and_never_the_specialty_the_reason_or_the_provider(
    kind, django_capture_on_commit_callbacks
):
    body = text_of(kind, django_capture_on_commit_callbacks)

    assert "Harbor Street" in body
    assert "Oncology" not in body and "biopsy" not in body
    assert "Oncewell" not in body


@pytest.mark.parametrize("kind", ["backfill_confirmation", "reassignment_offer", "clinic_cancellation"])
def test_the_provider_is_named_when_the_clinic_says_so(kind, settings, django_capture_on_commit_callbacks):
    settings.SMS_NAME_PROVIDER = True

    body = text_of(kind, django_capture_on_commit_callbacks)

    assert "Dr. Ada Oncewell" in body
    assert "Oncology" not in body and "biopsy" not in body
