import pytest
from django.core.management import CommandError, call_command

from clinic.models import Patient, Provider
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def snapshot():
    return {
        "providers": list(Provider.objects.order_by("email").values_list("name", "email", "specialty__name", "location__name")),
        "patients": list(Patient.objects.order_by("email").values_list("email", "first_name", "no_show_risk", "available_days")),
        "appointments": list(Appointment.objects.order_by("start", "provider__email").values_list("provider__email", "patient__email", "start", "status")),
        "waitlist": list(WaitlistEntry.objects.order_by("patient__email").values_list("patient__email", "specialty__name", "reason")),
    }


def test_it_builds_a_realistic_clinic(capsys):
    call_command("seed_demo")
    assert Provider.objects.count() == 10
    assert Patient.objects.count() == 200
    assert WaitlistEntry.objects.filter(status="waiting").count() == 50
    assert Appointment.objects.count() > 300
    assert "Staff login: frontdesk / backfill-demo" in capsys.readouterr().out


def test_the_same_seed_builds_the_same_clinic():
    call_command("seed_demo")
    first = snapshot()
    call_command("seed_demo", "--reset")
    assert snapshot() == first


def test_another_seed_builds_another_clinic():
    call_command("seed_demo")
    first = snapshot()
    call_command("seed_demo", "--reset", "--seed", "7")
    assert snapshot() != first


def test_it_refuses_to_overwrite_a_clinic_without_reset():
    call_command("seed_demo")
    with pytest.raises(CommandError, match="already has a clinic"):
        call_command("seed_demo")


def test_it_scales_the_waitlist_for_benchmarks():
    call_command("seed_demo", "--waitlist", "1500", "--patients", "10", "--days", "1")
    assert WaitlistEntry.objects.count() == 1500
    assert Patient.objects.count() == 1500
