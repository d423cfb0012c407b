import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule
from django_q.scheduler import scheduler
from sklearn.metrics import brier_score_loss, roc_auc_score

from clinic.models import Patient
from scheduling.models import NoShowModel, StaleNoShowModel
from scheduling.no_show import train_and_apply
from tests.no_show_history import generate_history, known_rule
from waitlist.models import WaitlistEntry

pytestmark = pytest.mark.django_db


def patients_state():
    return list(
        Patient.objects.order_by("pk").values_list("pk", "no_show_risk", "no_show_risk_source", "no_show_risk_model")
    )


@pytest.fixture
def history_with_a_pattern():
    return generate_history(known_rule)


@pytest.fixture
def history_without_signal():
    return generate_history(lambda visit: 0.2)


def test_it_ranks_held_out_visits_about_as_well_as_the_true_chances(history_with_a_pattern):
    chances, missed = zip(*history_with_a_pattern, strict=False)

    model = train_and_apply().trained

    assert model.heldout_rows == len(history_with_a_pattern)
    true_auc = roc_auc_score(missed, chances)
    assert true_auc > 0.7
    assert abs(model.auc - true_auc) < 0.05
    assert model.brier < brier_score_loss(missed, chances) + 0.01
    assert model.metrics["calibration_error"] < 0.06
    assert len(model.metrics["calibration"]) == 10
    assert NoShowModel.objects.in_use() == model


def test_a_history_without_signal_gives_a_model_that_is_not_used(history_without_signal):
    before = patients_state()

    outcome = train_and_apply()

    assert 0.4 < outcome.trained.auc < 0.6
    assert outcome.in_use is None
    assert NoShowModel.objects.in_use() is None
    assert patients_state() == before


def test_it_sets_model_risks_with_reasons(history_with_a_pattern):
    train_and_apply()

    patients = Patient.objects.all()
    assert all(patient.no_show_risk == patient.no_show_risk_model for patient in patients)
    riskiest = max(patients, key=lambda patient: patient.no_show_risk_model)
    assert riskiest.no_show_risk > 0.4
    assert any("no-show" in reason for reason in riskiest.no_show_risk_reasons)


def test_the_command_says_when_the_model_is_used(history_with_a_pattern, capsys):
    call_command("train_no_show_model")

    out = capsys.readouterr().out
    assert "visits, the newest" in out and "held out: AUC 0." in out
    assert "In use: it sets the no-show risk of 250 patients" in out


def test_the_command_says_when_the_model_is_not_good_enough(history_without_signal, capsys):
    call_command("train_no_show_model")

    out = capsys.readouterr().out
    assert "Not used: held-out AUC 0." in out and "is below 0.60" in out
    assert "No patient's risk changed; no model is in use." in out


def test_the_command_says_when_there_is_not_enough_history(capsys):
    generate_history(known_rule, days=3, patients=20, providers=2)

    call_command("train_no_show_model")

    assert "Not enough history to learn from" in capsys.readouterr().out
    assert not NoShowModel.objects.exists()


def test_a_worse_model_trained_later_leaves_the_good_one_in_use(history_with_a_pattern):
    good = train_and_apply().trained
    NoShowModel.objects.create(
        algorithm="logistic regression",
        training_rows=100,
        heldout_rows=25,
        auc=0.52,
        brier=0.2,
        base_rate=0.2,
        sklearn_version=good.sklearn_version,
        estimator=b"",
    )

    assert NoShowModel.objects.in_use() == good


def test_a_model_pickled_by_another_scikit_learn_is_ignored(history_with_a_pattern):
    model = train_and_apply().trained
    NoShowModel.objects.filter(pk=model.pk).update(sklearn_version="0.24.2")
    model.refresh_from_db()

    assert NoShowModel.objects.in_use() is None
    assert "scikit-learn 0.24.2" in NoShowModel.objects.why_none_in_use()
    with pytest.raises(StaleNoShowModel):
        model.load_estimator()


def test_the_nightly_schedule_exists_after_migrate():
    schedule = Schedule.objects.get(name="no-show-model-nightly")

    assert schedule.func == "scheduling.no_show.train_nightly"
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1
    assert timezone.localtime(schedule.next_run).hour == 3


def test_the_nightly_schedule_trains_it_when_due(history_with_a_pattern):
    last_night = timezone.localtime().replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=1)
    Schedule.objects.filter(name="no-show-model-nightly").update(next_run=last_night)

    scheduler(broker=get_broker())  # what a qcluster does; test settings run the task in-process

    assert NoShowModel.objects.in_use() is not None
    assert timezone.localtime(Schedule.objects.get(name="no-show-model-nightly").next_run).hour == 3


def test_seed_demo_trains_a_usable_model_that_sets_the_waiting_patients_risks():
    call_command("seed_demo", stdout=io.StringIO())

    model = NoShowModel.objects.in_use()
    assert model.auc >= 0.6
    assert Patient.objects.risk_set_by_model().count() == Patient.objects.count()
    waiting = WaitlistEntry.objects.filter(status=WaitlistEntry.Status.WAITING).select_related("patient")
    assert all(entry.patient.risk_is_learned for entry in waiting)
    by_standing = sorted(waiting, key=lambda entry: entry.patient.no_show_risk_standing)
    assert [entry.ranking_risk for entry in by_standing] == sorted(entry.ranking_risk for entry in waiting)
    assert sum(entry.ranking_risk >= 0.6 for entry in waiting) >= len(waiting) / 2


def test_seed_demo_can_keep_its_risks_typed():
    call_command("seed_demo", "--risks", "typed", stdout=io.StringIO())

    assert not NoShowModel.objects.exists()
    assert not Patient.objects.exclude(no_show_risk_source=Patient.RiskSource.MANUAL).exists()
    assert not WaitlistEntry.objects.exclude(ranking_risk=F("patient__no_show_risk")).exists()


def test_staff_see_each_training_in_the_admin(staff_client, history_with_a_pattern):
    model = train_and_apply().trained

    listing = staff_client.get("/admin/scheduling/noshowmodel/").content.decode()
    page = staff_client.get(f"/admin/scheduling/noshowmodel/{model.pk}/change/")

    assert model.algorithm in listing and str(model.auc) in listing
    assert page.status_code == 200 and "calibration_error" in page.content.decode()
