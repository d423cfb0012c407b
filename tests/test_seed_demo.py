from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone
from freezegun import freeze_time

from backfill.models import FreedSlot, MatchLog, SlotOffer
from clinic.models import Patient, Provider
from demo.management.commands import seed_demo
from scheduling.models import Appointment
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def snapshot():
    return {
        "providers": list(
            Provider.objects.order_by("email").values_list("name", "email", "specialty__name", "location__name")
        ),
        "patients": list(
            Patient.objects.order_by("email").values_list("email", "first_name", "no_show_risk", "available_days")
        ),
        "appointments": list(
            Appointment.objects.order_by("start", "provider__email", "patient__email", "status").values_list(
                "provider__email", "patient__email", "start", "status"
            )
        ),
        "waitlist": list(
            WaitlistEntry.objects.order_by("patient__email", "created_at").values_list(
                "patient__email", "specialty__name", "reason", "status"
            )
        ),
        "freed slots": list(
            FreedSlot.objects.order_by("start", "provider__email", "status").values_list(
                "provider__email", "start", "status", "filled_by__patient__email"
            )
        ),
        "match logs": list(
            MatchLog.objects.order_by("slot__start", "slot__provider__email", "slot__status", "rank").values_list(
                "patient__email", "score", "outcome"
            )
        ),
    }


def test_it_builds_a_realistic_clinic(capsys):
    call_command("seed_demo")
    assert Provider.objects.count() == 24
    assert Patient.objects.count() == 400
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
    # At the same moment: which of today's visits are already history (and so what the
    # no-show model learns from) moves with the clock, and a slow run crossed a visit's start.
    with freeze_time(timezone.now()):
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


def test_reset_deletes_a_clinic_in_chunks_and_what_refers_to_it(monkeypatch):
    call_command("seed_demo", "--waitlist", "300", "--patients", "10", "--days", "1", stdout=open("/dev/null", "w"))
    chunks = []
    real = seed_demo.delete_all
    monkeypatch.setattr(seed_demo, "delete_all", lambda model: chunks.append(model) or real(model, chunk=40))
    call_command(
        "seed_demo", "--reset", "--waitlist", "100", "--patients", "10", "--days", "1", stdout=open("/dev/null", "w")
    )
    assert Patient in chunks
    assert Patient.objects.count() == 100  # the first clinic's 300 are gone, cascades and all
    assert WaitlistEntry.objects.filter(status="waiting").count() == 100


def test_it_scales_the_waitlist_for_benchmarks():
    call_command("seed_demo", "--waitlist", "1500", "--patients", "10", "--days", "1")
    assert WaitlistEntry.objects.filter(status="waiting").count() == 1500
    assert Patient.objects.count() == 1500


@pytest.fixture
def demo():
    call_command("seed_demo", stdout=open("/dev/null", "w"))


def test_it_has_two_providers_of_each_specialty_at_each_location_and_names_of_their_own(demo):
    per_site = Provider.objects.values("location__name", "specialty__name").annotate(n=Count("id"))
    assert len(per_site) == 12
    assert {row["n"] for row in per_site} == {2}
    patients = Counter(Patient.objects.values_list("first_name", "last_name"))
    providers = set(Provider.objects.values_list("name", flat=True))
    assert max(patients.values()) == 1
    assert len(providers) == Provider.objects.count()
    patient_words = {word for name in patients for word in name}
    assert not any(word in patient_words for name in providers for word in name.removeprefix("Dr. ").split())


def test_it_has_90_days_of_visits_cancellations_and_their_backfills_and_nobody_twice_a_day(demo):
    days = Counter(
        (a.patient_id, timezone.localdate(a.start)) for a in Appointment.objects.exclude(status="cancelled")
    )
    assert max(days.values()) == 1
    today = timezone.localdate()
    past = Appointment.objects.filter(start__lt=timezone.now())
    assert timezone.localdate(past.earliest("start").start) <= today - timedelta(days=88)
    statuses = set(past.values_list("status", flat=True))
    assert {"completed", "no_show", "cancelled"} <= statuses
    backfilled = FreedSlot.objects.filter(status="backfilled", start__lt=timezone.now())
    assert backfilled.count() > 100
    assert FreedSlot.objects.filter(status="no_match").exists()
    slot = backfilled.first()
    assert slot.filled_by.source == "backfill"
    assert slot.match_logs.get(outcome="booked").patient == slot.filled_by.patient
    weeks = {timezone.localdate(start).isocalendar()[1] for start in backfilled.values_list("start", flat=True)}
    assert len(weeks) >= 12


def test_in_offer_mode_the_past_backfills_went_through_offers(settings):
    settings.BACKFILL = {**settings.BACKFILL, "OFFER_MODE": True}
    call_command("seed_demo", "--days", "1", "--history-days", "20", "--reset", stdout=open("/dev/null", "w"))
    offers = SlotOffer.objects.all()
    assert offers.filter(status="accepted").count() == FreedSlot.objects.filter(status="backfilled").count() > 0
    assert offers.filter(status__in=["declined", "expired"]).exists()
    accepted = offers.filter(status="accepted").first()
    assert accepted.slot.filled_by.patient == accepted.patient
