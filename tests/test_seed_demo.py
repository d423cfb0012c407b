import pytest
from django.contrib.auth.models import User
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
    out = capsys.readouterr().out
    assert "Front desk login: frontdesk / " in out
    assert "Integrator login: ehr / " in out and "API token: " in out


def test_each_demo_login_gets_its_own_random_password_and_role(capsys):
    call_command("seed_demo")
    first = capsys.readouterr().out
    call_command("seed_demo", "--reset")
    second = capsys.readouterr().out
    frontdesk = User.objects.get(username="frontdesk")
    password = second.split("frontdesk / ")[1].split()[0]
    assert frontdesk.check_password(password)
    assert first.split("frontdesk / ")[1].split()[0] != password
    assert list(frontdesk.groups.values_list("name", flat=True)) == ["Front desk"]
    assert not frontdesk.is_superuser


def test_it_creates_no_login_in_a_database_that_holds_data(capsys):
    call_command("seed_demo")
    User.objects.filter(username__in=["frontdesk", "manager", "ehr"]).delete()
    call_command("seed_demo", "--if-empty")
    assert "leaving it" in capsys.readouterr().out
    assert not User.objects.filter(username__in=["frontdesk", "manager", "ehr"]).exists()


def test_it_refuses_a_database_that_has_accounts_but_no_clinic():
    User.objects.create_user("admin", password="an-operators-own-password")
    with pytest.raises(CommandError, match="has user accounts"):
        call_command("seed_demo", "--if-empty")
    assert not User.objects.filter(username="frontdesk").exists()


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
