"""manage.py provider_unavailable and the provider admin action: same workflow, thin callers."""

from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.utils import timezone

from clinic.factories import LocationFactory, PatientFactory, ProviderFactory, SpecialtyFactory
from clinic.models import OutboundEmail
from scheduling.factories import AppointmentFactory
from scheduling.models import Appointment, ProviderUnavailability

pytestmark = pytest.mark.django_db


@pytest.fixture
def away():
    downtown = LocationFactory(name="Downtown")
    provider = ProviderFactory(
        name="Dr. Away", email="away@clinic.example", specialty=SpecialtyFactory(), location=downtown
    )
    ProviderFactory(name="Dr. Stand-in", specialty=provider.specialty, location=downtown)
    return provider


@pytest.fixture
def appointment(away):
    return AppointmentFactory(provider=away, patient=PatientFactory(preferred_location=away.location))


@pytest.fixture
def day(appointment):
    return timezone.localdate(appointment.start).isoformat()


def command(*args, capture):
    out = StringIO()
    with capture(execute=True):
        call_command("provider_unavailable", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_summary(away, appointment, day, django_capture_on_commit_callbacks):
    out = command(
        str(away.pk), "--start", day, "--end", day, "--reason", "sick", capture=django_capture_on_commit_callbacks
    )

    unavailability = ProviderUnavailability.objects.get()
    when = timezone.localtime(appointment.start)
    assert out.splitlines() == [
        f"Dr. Away is unavailable on {when:%a %-d %b %Y}: "
        "1 appointment affected, 1 reassigned, 0 waitlisted, 0 skipped.",
        f"{appointment.patient} ({when:%a %-d %b %Y}, 10:00): offered to Dr. Stand-in at the same time "
        "(80 points: same location +40 · patient's preferred location +20 · free at the same time +20).",
    ]
    assert unavailability.reason == "sick"


def test_a_second_run_changes_nothing(away, appointment, day, django_capture_on_commit_callbacks):
    command("away@clinic.example", "--start", day, capture=django_capture_on_commit_callbacks)
    before = (Appointment.objects.count(), OutboundEmail.objects.count(), ProviderUnavailability.objects.count())

    out = command("away@clinic.example", "--start", day, capture=django_capture_on_commit_callbacks)

    assert "0 appointments affected" in out
    assert (
        Appointment.objects.count(),
        OutboundEmail.objects.count(),
        ProviderUnavailability.objects.count(),
    ) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["999999", "--start", "2099-01-01"], "No provider with id or email '999999'."),
        (["away@clinic.example", "--start", "21/11/2099"], "'21/11/2099' is not a date in the form YYYY-MM-DD"),
        (
            ["away@clinic.example", "--start", "2099-01-02", "--end", "2099-01-01"],
            "The end date must not be before the start date.",
        ),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(away, appointment, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("provider_unavailable", *args, stdout=StringIO())

    appointment.refresh_from_db()
    assert ProviderUnavailability.objects.count() == 0
    assert appointment.status == Appointment.Status.SCHEDULED


def admin_action(client, provider, **data):
    return client.post(
        "/admin/clinic/provider/", {"action": "mark_unavailable", "_selected_action": [provider.pk], **data}
    )


def test_the_admin_action_asks_for_the_days_first(staff_client, away, appointment):
    response = admin_action(staff_client, away)

    assert response.status_code == 200
    assert "Mark unavailable and reassign" in response.content.decode()
    assert 'name="start_date"' in response.content.decode()
    assert ProviderUnavailability.objects.count() == 0


def test_the_admin_action_runs_the_workflow_and_shows_the_summary(
    staff_client, away, appointment, day, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_action(staff_client, away, apply="1", start_date=day, end_date=day, reason="sick")

    appointment.refresh_from_db()
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert response.status_code == 302
    assert appointment.status == Appointment.Status.CANCELLED
    assert Appointment.objects.get(replaces=appointment).cancelled_by == ""
    assert appointment.cancelled_by == "frontdesk"
    assert shown[0].startswith(f"Dr. Away is unavailable on {timezone.localtime(appointment.start):%a %-d %b %Y}: ")
    assert "offered to Dr. Stand-in" in shown[1]


def test_the_admin_action_refuses_an_end_before_the_start(staff_client, away, appointment):
    response = admin_action(staff_client, away, apply="1", start_date="2099-01-02", end_date="2099-01-01")

    assert response.status_code == 200
    assert "The end date must not be before the start date." in response.content.decode()
    assert ProviderUnavailability.objects.count() == 0


def test_the_admin_action_reports_a_workflow_error(staff_client, away, appointment):
    response = admin_action(staff_client, away, apply="1", start_date="2000-01-01", end_date="2000-01-02")

    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == ["Dr. Away: The end date has passed; there are no appointments left to reassign."]
    assert ProviderUnavailability.objects.count() == 0
