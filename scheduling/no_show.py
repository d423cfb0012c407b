"""The no-show model (docs/reference.md, No-show model): learned from the clinic's own visits, it sets the no-show
risk of every patient whose risk source is "model".

A visit is an appointment that was kept or missed: completed or no_show. Cancelled
appointments are not visits (the patient told the clinic, and the slot was freed for the
waitlist), so they are never counted as no-shows; how often a patient cancels is part of
their history, though.

Every feature is something the clinic knew before the visit: the patient's visits and
cancellations before it, how far ahead it was booked, when and where it is, how it was
booked and how long the patient waited on the waitlist for it. Training and scoring build
features with the same function (`visit_features`), from the same sorted history, so a
patient is scored exactly as the visits the model learned from were described.

The held-out set is the newest 20% of visits by start: the model is judged on visits that
came after everything it learned from, as it will be used.
"""

import json
import logging
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay
from django.utils import timezone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from clinic import risk_scale
from clinic.models import Location, Patient, Specialty
from scheduling.models import Appointment, NoShowModel, installed_sklearn_version
from waitlist.models import WaitlistEntry

log = logging.getLogger("scheduling")

VISITED = (Appointment.Status.COMPLETED, Appointment.Status.NO_SHOW)
HELD_OUT_FRACTION = 0.2
RECENT_VISITS = 6
DAY = 86400.0
# scikit-learn's trees split work across OpenMP threads that spin while they wait: on this
# shared 2-core machine, two threads took 12.8 s to train on the demo's 3,640 visits and one
# thread 0.2 s. Training and scoring run in one thread.
THREADS = 1
NEVER_DAYS = 365.0  # "no visit yet" reads as a long gap; longer gaps are capped to it
# History keys are patient id * KEY_SPAN + epoch seconds, one sorted int64 array per kind of
# event, so "this patient's events before t" is two binary searches for every visit at once.
KEY_SPAN = 10**10
SOURCES = list(Appointment.Source.values)
WEEKDAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

NUMERIC = [
    "past_visits",
    "first_visit",
    "days_since_last_visit",
    "past_no_shows",
    "no_show_rate",
    "recent_no_shows",
    "days_since_last_no_show",
    "past_cancellations",
    "cancellation_rate",
    "lead_days_log",
    "waitlist_days_log",
]
CATEGORICAL = ["weekday", "hour", "source", "location", "specialty"]
FEATURES = NUMERIC + CATEGORICAL
COLUMN = {name: index for index, name in enumerate(FEATURES)}

# Features explained together, in the words staff read on the patient's page.
REASON_GROUPS = {
    "no_shows": ["past_no_shows", "no_show_rate", "recent_no_shows", "days_since_last_no_show"],
    "cancellations": ["past_cancellations", "cancellation_rate"],
    "visits": ["past_visits", "first_visit", "days_since_last_visit"],
    "lead_time": ["lead_days_log"],
    "waitlist": ["waitlist_days_log"],
    "when": ["weekday", "hour"],
    "how_booked": ["source"],
    "where": ["location", "specialty"],
}
TOP_REASONS = 3
MIN_REASON_EFFECT = 0.01  # a reason must raise the estimate by at least one point
HOW_BOOKED = {
    "staff": "booked by the front desk",
    "api": "booked through the API",
    "backfill": "booked into a freed slot from the waitlist",
    "reassignment": "moved from another provider",
}


class NotEnoughHistory(Exception):
    pass


@dataclass
class Visits:
    """Visits (past ones to learn from, or the next one per patient to score), as arrays."""

    patient: np.ndarray
    start: np.ndarray  # epoch seconds
    lead_days: np.ndarray
    waitlist_days: np.ndarray
    weekday: np.ndarray  # Monday = 1, in the clinic's time zone
    hour: np.ndarray
    source: np.ndarray  # index into SOURCES
    location: np.ndarray
    specialty: np.ndarray
    no_show: np.ndarray

    def take(self, indexes):
        return Visits(**{name: getattr(self, name)[indexes] for name in self.__dataclass_fields__})

    @classmethod
    def from_rows(cls, rows):
        columns = list(zip(*rows, strict=False)) or [()] * 10
        patient, start, created, source, location, specialty, weekday, hour, waited_since, status = columns
        start_s = np.array([moment.timestamp() for moment in start], dtype=float)
        created_s = np.array([moment.timestamp() for moment in created], dtype=float)
        waited_s = np.array([moment.timestamp() if moment else np.nan for moment in waited_since], dtype=float)
        return cls(
            patient=np.array(patient, dtype=np.int64),
            start=start_s,
            lead_days=np.clip((start_s - created_s) / DAY, 0, None),
            # The entry was made before it was booked: the wait ends when the appointment is made.
            waitlist_days=np.nan_to_num(np.clip((created_s - waited_s) / DAY, 0, None)),
            weekday=np.array(weekday, dtype=float),
            hour=np.array(hour, dtype=float),
            source=np.array([SOURCES.index(value) for value in source], dtype=float),
            location=np.array(location, dtype=float),
            specialty=np.array(specialty, dtype=float),
            no_show=np.array([value == Appointment.Status.NO_SHOW for value in status], dtype=bool),
        )


def visit_rows(appointments):
    """One query: what the clinic knew about each appointment before it happened."""
    waited_since = WaitlistEntry.objects.filter(booked_appointment=OuterRef("pk")).order_by().values("created_at")[:1]
    return appointments.annotate(
        weekday=ExtractIsoWeekDay("start"),
        hour=ExtractHour("start"),
        waited_since=Subquery(waited_since),
    ).values_list(
        "patient_id",
        "start",
        "created_at",
        "source",
        "provider__location_id",
        "provider__specialty_id",
        "weekday",
        "hour",
        "waited_since",
        "status",
    )


@dataclass
class History:
    """Every patient's past visits and cancellations, sorted by patient then time."""

    visit_keys: np.ndarray
    visit_times: np.ndarray
    no_shows_before: np.ndarray  # no_shows_before[i]: no-shows among visits[:i]
    last_no_show: np.ndarray  # index of the latest no-show at or before i, or -1
    cancel_keys: np.ndarray

    @classmethod
    def build(cls, patient, start, no_show, cancel_keys):
        order = np.lexsort((start, patient))
        patient, start, no_show = patient[order], start[order], no_show[order]
        index = np.arange(len(order))
        # A sentinel after the last visit keeps "the visit before" a valid index for everyone.
        return cls(
            visit_keys=np.append(patient * KEY_SPAN + start.astype(np.int64), np.iinfo(np.int64).max),
            visit_times=np.append(start, 0.0),
            no_shows_before=np.concatenate([[0], np.cumsum(no_show)]),
            last_no_show=np.append(
                np.maximum.accumulate(np.where(no_show, index, -1)) if len(order) else [], -1
            ).astype(np.int64),
            cancel_keys=np.sort(cancel_keys),
        )

    @classmethod
    def nothing(cls):
        return cls.build(
            np.array([], dtype=np.int64), np.array([]), np.array([], dtype=bool), np.array([], dtype=np.int64)
        )

    @classmethod
    def of(cls, visits):
        return cls.build(visits.patient, visits.start, visits.no_show, patients_cancellations())

    @classmethod
    def load(cls):
        """The clinic's history, loading only who came when (scoring needs no more)."""
        done = list(Appointment.objects.filter(status__in=VISITED).values_list("patient_id", "start", "status"))
        return cls.build(
            np.array([patient for patient, _, _ in done], dtype=np.int64),
            np.array([start.timestamp() for _, start, _ in done], dtype=float),
            np.array([status == Appointment.Status.NO_SHOW for _, _, status in done], dtype=bool),
            patients_cancellations(),
        )


# Cancellations that say nothing about the patient: the provider-unavailable workflow's
# (scheduling.reassignment's CANCEL_REASON and DECLINE_REASON: the clinic moved them), and
# chain backfill releasing a later appointment (cancelled_by "backfill").
THE_CLINICS_REASONS = ["provider_unavailable", "declined_reassignment"]


def patients_cancellations():
    """History keys of the cancellations that say something about the patient."""
    cancelled = (
        Appointment.objects.filter(status=Appointment.Status.CANCELLED, cancelled_at__isnull=False)
        .exclude(cancel_reason__in=THE_CLINICS_REASONS)
        .exclude(cancelled_by="backfill")
        .values_list("patient_id", "cancelled_at")
    )
    return np.array([patient * KEY_SPAN + int(moment.timestamp()) for patient, moment in cancelled], dtype=np.int64)


def visit_features(history, visits):
    """The feature matrix (columns FEATURES) of visits, from the history strictly before each."""
    patient_keys = visits.patient * KEY_SPAN
    keys = patient_keys + visits.start.astype(np.int64)
    own_first = np.searchsorted(history.visit_keys, patient_keys, "left")
    before = np.searchsorted(history.visit_keys, keys, "left")
    past = before - own_first
    has_past = past > 0
    previous = np.where(has_past, before - 1, len(history.visit_times) - 1)
    no_shows = history.no_shows_before[before] - history.no_shows_before[own_first]
    recent = history.no_shows_before[before] - history.no_shows_before[np.maximum(own_first, before - RECENT_VISITS)]
    last_no_show = history.last_no_show[previous]
    has_no_show = has_past & (last_no_show >= own_first)
    cancels = np.searchsorted(history.cancel_keys, keys, "left") - np.searchsorted(
        history.cancel_keys, patient_keys, "left"
    )
    columns = {
        "past_visits": past,
        "first_visit": ~has_past,
        "days_since_last_visit": gap_days(visits.start, history.visit_times[previous], has_past),
        "past_no_shows": no_shows,
        "no_show_rate": np.divide(no_shows, past, out=np.zeros(len(past)), where=has_past),
        "recent_no_shows": recent,
        "days_since_last_no_show": gap_days(
            visits.start, history.visit_times[np.maximum(last_no_show, 0)], has_no_show
        ),
        "past_cancellations": cancels,
        "cancellation_rate": cancels / np.maximum(past + cancels, 1),
        "lead_days_log": np.log1p(visits.lead_days),
        "waitlist_days_log": np.log1p(visits.waitlist_days),
        "weekday": visits.weekday,
        "hour": visits.hour,
        "source": visits.source,
        "location": visits.location,
        "specialty": visits.specialty,
    }
    return np.column_stack([np.asarray(columns[name], dtype=float) for name in FEATURES])


def gap_days(now, then, known):
    return np.where(known, np.clip((now - then) / DAY, 0, NEVER_DAYS), NEVER_DAYS)


# --- training --------------------------------------------------------------------------


def candidates():
    """The two kinds of model tried; each is fitted on log loss, so its output is a probability."""
    numeric = [COLUMN[name] for name in NUMERIC]
    categorical = [COLUMN[name] for name in CATEGORICAL]
    logistic = make_pipeline(
        ColumnTransformer(
            [
                ("numbers", StandardScaler(), numeric),
                ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(C=1.0, max_iter=2000),
    )
    trees = make_pipeline(
        ColumnTransformer(
            [("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), categorical)],
            remainder="passthrough",
        ),
        HistGradientBoostingClassifier(
            categorical_features=list(range(len(categorical))),
            learning_rate=0.08,
            max_iter=300,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.15,
            n_iter_no_change=15,
            random_state=0,
        ),
    )
    return {"logistic regression": logistic, "gradient-boosted trees": trees}


def calibration_deciles(predicted, observed):
    """Held-out visits in ten equal groups by predicted risk: mean predicted vs observed rate."""
    order = np.argsort(predicted, kind="stable")
    return [
        {
            "predicted": round(float(predicted[part].mean()), 4),
            "observed": round(float(observed[part].mean()), 4),
            "visits": int(len(part)),
        }
        for part in np.array_split(order, 10)
        if len(part)
    ]


def calibration_error(deciles):
    total = sum(decile["visits"] for decile in deciles)
    return sum(abs(d["predicted"] - d["observed"]) * d["visits"] for d in deciles) / total


def typical_visit(visits, features):
    """The reference a patient is compared with: the median visit's numbers, the commonest
    categories. It also stands in for the next visit of a patient who has none booked."""

    def commonest(values):
        found, counts = np.unique(values, return_counts=True)
        return float(found[np.argmax(counts)])

    reference = [float(np.median(features[:, COLUMN[name]])) for name in NUMERIC]
    reference += [commonest(features[:, COLUMN[name]]) for name in CATEGORICAL]
    return {
        "lead_days": float(np.median(visits.lead_days)),
        "waitlist_days": float(np.median(visits.waitlist_days)),
        **{name: reference[COLUMN[name]] for name in CATEGORICAL},
        "reference": reference,
    }


def validation_log_loss(features, outcome, fitted_on):
    """Each candidate fitted on the older visits before `fitted_on`, scored on the rest."""
    scores = {}
    for name, estimator in candidates().items():
        estimator.fit(features[:fitted_on], outcome[:fitted_on])
        scores[name] = log_loss(outcome[fitted_on:], estimator.predict_proba(features[fitted_on:])[:, 1])
    return scores


def fit(visits):
    """Choose and fit the model on the older 80% of visits; score it on the newest 20%."""
    order = np.argsort(visits.start, kind="stable")
    visits = visits.take(order)
    features, outcome = visit_features(History.of(visits), visits), visits.no_show.astype(int)
    cut = int(len(outcome) * (1 - HELD_OUT_FRACTION))
    fitted_on = int(cut * 0.75)  # the candidates are compared on the newest quarter of the training part
    parts = (outcome[:fitted_on], outcome[fitted_on:cut], outcome[cut:])
    if len(outcome) < settings.BACKFILL["NO_SHOW_MIN_VISITS"] or any(part.min() == part.max() for part in parts):
        raise NotEnoughHistory(
            f"Not enough history to learn from: {len(outcome)} visits with {int(outcome.sum())} no-shows "
            f"(needs {settings.BACKFILL['NO_SHOW_MIN_VISITS']} visits, with no-shows and kept visits both in "
            "the older and the newest ones)."
        )
    validation = validation_log_loss(features[:cut], outcome[:cut], fitted_on)
    algorithm = min(validation, key=validation.get)
    estimator = candidates()[algorithm].fit(features[:cut], outcome[:cut])
    predicted = estimator.predict_proba(features[cut:])[:, 1]
    deciles = calibration_deciles(predicted, outcome[cut:])
    typical = typical_visit(visits, features[:cut])
    typical["first_visit"] = first_visit_estimate(estimator, typical)
    return NoShowModel(
        algorithm=algorithm,
        training_rows=cut,
        heldout_rows=len(outcome) - cut,
        features=FEATURES,
        auc=float(roc_auc_score(outcome[cut:], predicted)),
        brier=float(brier_score_loss(outcome[cut:], predicted)),
        base_rate=float(outcome[cut:].mean()),
        metrics={
            "calibration": deciles,
            "calibration_error": round(calibration_error(deciles), 4),
            "validation_log_loss": {name: round(value, 4) for name, value in validation.items()},
            "heldout_from": timezone.localtime(datetime.fromtimestamp(visits.start[cut], tz=UTC)).isoformat(),
        },
        typical_visit=typical,
        sklearn_version=installed_sklearn_version(),
        estimator=pickle.dumps(estimator),
    )


def train():
    """Train on every visit the clinic recorded and store the result as a new model row."""
    visits = Visits.from_rows(visit_rows(Appointment.objects.filter(status__in=VISITED).order_by("start", "pk")))
    with threadpool_limits(THREADS):
        model = fit(visits)
    model.save()
    log.info(
        "no_show_model.trained id=%s algorithm=%s rows=%s auc=%.3f brier=%.3f",
        model.pk,
        model.algorithm,
        model.training_rows + model.heldout_rows,
        model.auc,
        model.brier,
    )
    return model


# --- scoring ---------------------------------------------------------------------------


def next_visits(model, now):
    """Each patient's next booked appointment, or the typical visit for those with none."""
    patients = np.array(Patient.objects.order_by("pk").values_list("pk", flat=True), dtype=np.int64)
    upcoming = Appointment.objects.filter(start__gt=now, status__in=Appointment.CANCELLABLE).order_by(
        "patient_id", "start"
    )
    booked = Visits.from_rows(visit_rows(upcoming))
    _, first = np.unique(booked.patient, return_index=True)
    booked = booked.take(first)
    # Row -1 is the default appended after each column: the typical visit.
    row = np.full(len(patients), -1)
    has_booking = np.isin(patients, booked.patient)
    row[has_booking] = np.searchsorted(booked.patient, patients[has_booking])
    typical = model.typical_visit

    def column(name, default):
        return np.append(getattr(booked, name), default)[row]

    return Visits(
        patient=patients,
        start=column("start", now.timestamp()),
        lead_days=column("lead_days", typical["lead_days"]),
        waitlist_days=column("waitlist_days", typical["waitlist_days"]),
        weekday=column("weekday", typical["weekday"]),
        hour=column("hour", typical["hour"]),
        source=column("source", typical["source"]),
        location=column("location", typical["location"]),
        specialty=column("specialty", typical["specialty"]),
        no_show=np.zeros(len(patients), dtype=bool),
    )


def first_visit_estimate(estimator, typical):
    """What a new patient starts at: no history, the typical visit as their first."""
    visit = Visits(
        patient=np.zeros(1, dtype=np.int64),
        start=np.array([timezone.now().timestamp()]),
        no_show=np.zeros(1, dtype=bool),
        **{name: np.array([float(typical[name])]) for name in ["lead_days", "waitlist_days", *CATEGORICAL]},
    )
    features = visit_features(History.nothing(), visit)
    estimate = np.round(estimator.predict_proba(features)[:, 1], 3)
    reasons = explain(estimator, features, typical["reference"], estimate, clinic_names())
    return {"estimate": float(estimate[0]), "reasons": reasons[0]}


def clinic_names():
    return {
        "location": dict(Location.objects.values_list("pk", "name")),
        "specialty": dict(Specialty.objects.values_list("pk", "name")),
    }


def explain(estimator, features, reference, estimates, names):
    """Each patient's top reasons: the groups of features that, set back to the typical
    visit's values, lower the estimate the most."""
    effects = {}
    for group, columns in REASON_GROUPS.items():
        changed = features.copy()
        indexes = [COLUMN[name] for name in columns]
        changed[:, indexes] = np.asarray(reference)[indexes]
        effects[group] = estimates - estimator.predict_proba(changed)[:, 1]
    groups = list(REASON_GROUPS)
    effect = np.column_stack([effects[group] for group in groups])
    ranked = np.argsort(-effect, axis=1)[:, :TOP_REASONS]
    return [
        [reason_sentence(groups[g], features[row], names) for g in ranked[row] if effect[row, g] >= MIN_REASON_EFFECT]
        for row in range(len(features))
    ]


def plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def reason_sentence(group, row, names):
    value = {name: row[COLUMN[name]] for name in FEATURES}
    past, no_shows, recent = int(value["past_visits"]), int(value["past_no_shows"]), int(value["recent_no_shows"])
    if group == "no_shows":
        if recent:
            return f"{plural(recent, 'no-show')} in the last {plural(min(past, RECENT_VISITS), 'visit')}"
        return f"{plural(no_shows, 'no-show')} in {plural(past, 'visit')}"
    if group == "cancellations":
        return f"cancelled {plural(int(value['past_cancellations']), 'appointment')} before"
    if group == "visits":
        return "no visit yet" if not past else f"last visit {round(value['days_since_last_visit'])} days ago"
    if group == "lead_time":
        return f"booked {plural(round(np.expm1(value['lead_days_log'])), 'day')} ahead"
    if group == "waitlist":
        return f"waited {plural(round(np.expm1(value['waitlist_days_log'])), 'day')} on the waitlist"
    if group == "when":
        return f"a {WEEKDAY_NAMES[int(value['weekday']) - 1]} {int(value['hour']):02d}:00 appointment"
    if group == "how_booked":
        return HOW_BOOKED[SOURCES[int(value["source"])]]
    specialty = names["specialty"].get(int(value["specialty"]), "this specialty")
    return f"{specialty} at {names['location'].get(int(value['location']), 'this location')}"


def score_patients(model, now=None):
    """Store the model's estimate and reasons on every patient; set the risk of those whose
    source is "model" (never a value staff typed or an integrator sent)."""
    now = now or timezone.now()
    estimator = model.load_estimator()
    upcoming = next_visits(model, now)
    features = visit_features(History.load(), upcoming)
    with threadpool_limits(THREADS):
        estimates = np.round(estimator.predict_proba(features)[:, 1], 3)
        reasons = explain(estimator, features, model.typical_visit["reference"], estimates, clinic_names())
    if not model.risk_quantiles:
        model.risk_quantiles = risk_quantiles(estimates)
    standings = [risk_scale.standing_of(float(estimate), model.risk_quantiles) for estimate in estimates]
    with transaction.atomic():
        store_estimates(upcoming.patient, estimates, reasons, standings)
        model_set = Patient.objects.risk_set_by_model()
        changed = model_set.exclude(no_show_risk=F("no_show_risk_model")).update(no_show_risk=F("no_show_risk_model"))
        copy_risk_to_waiting_entries()
        model.scored_at, model.patients_scored = timezone.now(), model_set.count()
        model.save(update_fields=["scored_at", "patients_scored", "risk_quantiles"])
    log.info(
        "no_show_model.scored id=%s patients=%s risks_set=%s risks_changed=%s",
        model.pk,
        len(estimates),
        model.patients_scored,
        changed,
    )
    return model.patients_scored


def risk_quantiles(estimates):
    """The estimates' percentiles 0..100: the clinic's scale for learned risks (clinic/risk_scale.py)."""
    steps = np.linspace(0.0, 1.0, risk_scale.QUANTILE_STEPS + 1)
    return [round(float(value), 6) for value in np.quantile(np.asarray(estimates, dtype=float), steps)]


# Rows per UPDATE when storing estimates: one statement per batch, its values a parameter list
# (SQLite allows 32,766 parameters, PostgreSQL 65,535; five a row).
STORE_BATCH = 5000


def store_estimates(patients, estimates, reasons, standings):
    """Every patient's estimate, reasons and standing, and the ranking risk of those whose
    risk is the model's: one UPDATE per STORE_BATCH patients, touching only the rows that
    change. Row by row, 100,000 patients took minutes (a statement and an audit trigger
    each); bulk_update spent 21 s building its CASE expressions for 20,000 (bench/no_show.py)."""
    rows = [
        (int(patient), float(value), json.dumps(sentences), place, risk_scale.ranking_risk_of_standing(place))
        for patient, value, sentences, place in zip(patients, estimates, reasons, standings, strict=False)
    ]
    statement = STORE_ESTIMATES[connection.vendor]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), STORE_BATCH):
            batch = rows[start : start + STORE_BATCH]
            if connection.vendor == "postgresql":
                cursor.execute(statement, [list(column) for column in zip(*batch, strict=True)])
            else:
                values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(batch))
                cursor.execute(statement.format(values=values), [value for row in batch for value in row])


# One statement per batch: PostgreSQL reads the batch as five arrays, SQLite (no arrays) as a
# VALUES list. A row is written only when a value differs, so rows
# the model rates as before cost no write and no trigger.
_PATIENT_COLUMNS = {
    "table": Patient._meta.db_table,
    "source": Patient._meta.get_field("no_show_risk_source").column,
    "model": Patient.RiskSource.MODEL.value,
}
STORE_ESTIMATES = {
    "postgresql": """UPDATE {table} p SET no_show_risk_model = v.estimate, no_show_risk_reasons = v.reasons::jsonb,
        no_show_risk_standing = v.standing,
        ranking_risk = CASE WHEN p.{source} = '{model}' THEN v.ranking ELSE p.ranking_risk END
    FROM unnest(%s::bigint[], %s::float8[], %s::text[], %s::float8[], %s::float8[])
        AS v(id, estimate, reasons, standing, ranking)
    WHERE p.id = v.id AND (p.no_show_risk_model IS DISTINCT FROM v.estimate
        OR p.no_show_risk_reasons IS DISTINCT FROM v.reasons::jsonb
        OR p.no_show_risk_standing IS DISTINCT FROM v.standing
        OR (p.{source} = '{model}' AND p.ranking_risk IS DISTINCT FROM v.ranking))""".format(**_PATIENT_COLUMNS),
    "sqlite": """UPDATE {table} AS p SET no_show_risk_model = v.column2, no_show_risk_reasons = v.column3,
        no_show_risk_standing = v.column4,
        ranking_risk = CASE WHEN p.{source} = '{model}' THEN v.column5 ELSE p.ranking_risk END
    FROM (VALUES {{values}}) AS v
    WHERE p.id = v.column1 AND (p.no_show_risk_model IS NOT v.column2 OR p.no_show_risk_reasons IS NOT v.column3
        OR p.no_show_risk_standing IS NOT v.column4
        OR (p.{source} = '{model}' AND p.ranking_risk IS NOT v.column5))""".format(**_PATIENT_COLUMNS),
}
_RISK_OF_PATIENT = f"(SELECT p.ranking_risk FROM {Patient._meta.db_table} p WHERE p.id = patient_id)"
COPY_RISK = f"""UPDATE {WaitlistEntry._meta.db_table} SET ranking_risk = {_RISK_OF_PATIENT}
    WHERE status = %s AND ranking_risk <> {_RISK_OF_PATIENT}"""


def copy_risk_to_waiting_entries():
    """Waiting entries keep a copy of the risk for the ranking index; Patient.save keeps it in
    step one patient at a time, this does it after a bulk update: one statement, writing only
    the entries whose copy differs."""
    with connection.cursor() as cursor:
        cursor.execute(COPY_RISK, [WaitlistEntry.Status.WAITING])


# --- the command and the nightly job -----------------------------------------------------


@dataclass
class Outcome:
    trained: NoShowModel | None
    in_use: NoShowModel | None
    message: str


def train_and_apply(now=None):
    """Train a new model; if it is good enough, score every patient with it as of `now` (docs/reference.md,
    No-show model)."""
    try:
        trained = train()
    except NotEnoughHistory as error:
        return Outcome(None, NoShowModel.objects.in_use(), f"{error} Nothing changed.")
    summary = (
        f"Trained model {trained.pk} ({trained.algorithm}) on {trained.training_rows + trained.heldout_rows:,} "
        f"visits, the newest {trained.heldout_rows:,} held out: AUC {trained.auc:.3f}, Brier {trained.brier:.3f}, "
        f"no-show rate {trained.base_rate:.1%}."
    )
    minimum = settings.BACKFILL["NO_SHOW_MIN_AUC"]
    if not trained.is_usable:
        in_use = NoShowModel.objects.in_use()
        kept = f"model {in_use.pk} stays in use" if in_use else "no model is in use"
        return Outcome(
            trained,
            in_use,
            f"{summary}\nNot used: held-out AUC {trained.auc:.3f} is below {minimum:.2f}. "
            f"No patient's risk changed; {kept}.",
        )
    scored = score_patients(trained, now)
    return Outcome(
        trained,
        trained,
        f"{summary}\nIn use: it sets the no-show risk of {scored:,} patients "
        "(risks typed by staff or sent by the API are left as they are).\n" + learned_scale_words(trained),
    )


def learned_scale_words(model):
    """The thresholds a learned risk meets, as this model's estimates put them."""
    config = settings.BACKFILL
    floor, high = config["LEARNED_FLOOR_QUANTILE"], config["LEARNED_HIGH_RISK_QUANTILE"]

    def starts(quantile):
        estimate, inclusive = risk_scale.lowest_estimate_standing_at(quantile, model.risk_quantiles, config)
        return f"{'from' if inclusive else 'above'} {estimate:.3f}"

    return (
        f"Learned risks are judged on this clinic's scale: {starts(floor)} (its "
        f"{risk_scale.quantile_words(floor)}) a patient may be booked, {starts(high)} "
        f"({risk_scale.standing_words(high)}) +{config['HIGH_RISK_POINTS']}."
    )


def train_nightly():
    """The nightly django-q2 schedule's job (scheduling migration 0004)."""
    outcome = train_and_apply()
    log.info("no_show_model.nightly %s", outcome.message.replace("\n", " "))
    return outcome.message
