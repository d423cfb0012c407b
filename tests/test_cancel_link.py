"""The "can't make it" link in a backfill confirmation (docs/reference.md, Messages)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from backfill.models import FreedSlot
from clinic.factories import PatientFactory
from scheduling.factories import AppointmentFactory
from scheduling.links import link_for, make_token
from scheduling.models import Appointment

pytestmark = pytest.mark.django_db


def path_of(url):
    return url.removeprefix("http://testserver")


@pytest.fixture
def appointment():
    return AppointmentFactory(source=Appointment.Source.BACKFILL)


def test_get_shows_the_appointment_and_changes_nothing(client, appointment):
    response = client.get(path_of(link_for(appointment, "cancel")))
    appointment.refresh_from_db()
    assert response.status_code == 200
    assert "Cancel my appointment" in response.content.decode()
    assert appointment.status == Appointment.Status.SCHEDULED


def test_post_cancels_and_frees_the_slot(client, appointment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(path_of(link_for(appointment, "cancel")))
    appointment.refresh_from_db()
    assert response.status_code == 200
    assert "Your appointment is cancelled" in response.content.decode()
    assert (appointment.status, appointment.cancelled_by) == (Appointment.Status.CANCELLED, "patient")
    assert FreedSlot.objects.filter(appointment=appointment).exists()


def test_a_second_post_shows_the_outcome_and_changes_nothing(client, appointment):
    url = path_of(link_for(appointment, "cancel"))
    client.post(url)
    before = Appointment.objects.get(pk=appointment.pk).updated_at
    response = client.post(url)
    assert response.status_code == 200
    assert "already done" in response.content.decode()
    assert Appointment.objects.get(pk=appointment.pk).updated_at == before
    assert FreedSlot.objects.count() == 1


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), lambda t: "x" + t, lambda t: "garbage"]
)
def test_a_forged_or_altered_token_gets_a_400_page(client, appointment, mangle):
    token = mangle(make_token(appointment, "cancel"))
    response = client.post(f"/appointments/cancel/{token}/")
    appointment.refresh_from_db()
    assert response.status_code == 400
    assert "This link is not valid" in response.content.decode()
    assert appointment.status == Appointment.Status.SCHEDULED


def test_a_token_for_another_action_is_refused(client, appointment):
    response = client.post(f"/appointments/cancel/{make_token(appointment, 'decline')}/")
    appointment.refresh_from_db()
    assert response.status_code == 400
    assert appointment.status == Appointment.Status.SCHEDULED


def test_a_link_expires_when_the_appointment_starts(client, appointment):
    url = path_of(link_for(appointment, "cancel"))
    with freeze_time(appointment.start + timedelta(minutes=1)):
        response = client.post(url)
    appointment.refresh_from_db()
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert appointment.status == Appointment.Status.SCHEDULED


def test_a_link_for_a_moved_appointment_is_refused(client, appointment):
    url = path_of(link_for(appointment, "cancel"))
    Appointment.objects.filter(pk=appointment.pk).update(
        start=appointment.start + timedelta(hours=2), end=appointment.end + timedelta(hours=2)
    )
    response = client.post(url)
    assert response.status_code == 400
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.SCHEDULED


def test_an_unknown_action_is_a_400(client, appointment):
    response = client.get(f"/appointments/reschedule/{make_token(appointment, 'cancel')}/")
    assert response.status_code == 400
    assert timezone.now() < appointment.start


def test_a_link_sent_to_a_patient_is_refused_once_the_appointment_is_someone_elses(client, appointment):
    url = path_of(link_for(appointment, "cancel"))
    Appointment.objects.filter(pk=appointment.pk).update(patient=PatientFactory())
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 400
        assert b"no longer matches an appointment" in response.content
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.SCHEDULED


def test_patient_link_pages_are_throttled_per_client(client, appointment, settings):
    settings.PATIENT_LINK_THROTTLE_RATE = "3/minute"
    url = path_of(link_for(appointment, "cancel"))
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    response = client.post(url)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 61
    assert b"Too many tries" in response.content
    assert Appointment.objects.get(pk=appointment.pk).status == Appointment.Status.SCHEDULED


def test_links_signed_with_the_previous_key_keep_working_during_a_rotation(client, appointment, settings):
    url = path_of(link_for(appointment, "cancel"))
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-after-rotation-" + "x" * 30
    assert client.get(url).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert client.get(url).status_code == 400
