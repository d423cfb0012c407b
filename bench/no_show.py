"""The no-show model on 100,000 visits: training time, scoring-every-patient time, and how
good it is (docs/reference.md, No-show model; targets: training under 30 s, scoring under 10 s).

    .venv/bin/python bench/no_show.py [--visits 100000] [--patients 20000] [--rounds 1] [--rebuild]

Builds (once, then reuses) `manage.py seed_demo` with enough providers and days of history
for about --visits past visits (completed or no-show, plus the cancellations), in
PostgreSQL database backfill_bench_no_show. Then, --rounds times: `train()` (load the
visits, build the features, choose and fit the model, store the row) and `score_patients()`
(every patient's features, estimate and reasons, written back), each timed on the wall
clock in this process, one thread (scheduling/no_show.py says why).
"""

import argparse
import sys
import time

from environment import database_url, load_average, machine_facts, setup_django
from report import print_machine, print_table, save

DATABASE = database_url("no_show")
PROVIDERS = 100
VISITS_PER_PROVIDER_DAY = 9 * 0.7 * 0.92  # seed history: hours 8-16, 70% booked, ~8% cancelled
TARGETS = {"train_s": 30.0, "score_s": 10.0}
COLUMNS = [
    ("visits", "visits"),
    ("patients", "patients"),
    ("train_s", "train s"),
    ("score_s", "score s"),
    ("algorithm", "chosen"),
    ("auc", "held-out AUC"),
    ("brier", "Brier"),
    ("base_rate", "no-show rate"),
    ("calibration_error", "calib. error"),
    ("risks_set", "risks set"),
    ("ok", "ok"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visits", type=int, default=100_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the clinic even if one is there")
    args = parser.parse_args()
    setup_django(DATABASE)
    build_clinic(args.visits, args.patients, args.rebuild)
    machine = machine_facts()
    rows = [measure() for _ in range(args.rounds)]
    machine["load_average_at_end"] = load_average()
    print_table(rows, COLUMNS, title="No-show model: train on every visit, then score every patient")
    print_machine(machine, targets="train < 30 s, score < 10 s")
    save(
        {
            "benchmark": "no_show",
            "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            "machine": machine,
            "config": vars(args),
            "key": ["visits"],
            "rows": rows,
        }
    )


def build_clinic(visits, patients, rebuild):
    from django.core.management import call_command
    from django.db import connection

    from clinic.models import Patient
    from scheduling.models import Appointment
    from scheduling.no_show import VISITED

    have = Appointment.objects.filter(status__in=VISITED).count()
    if not rebuild and Patient.objects.count() == patients and abs(have - visits) < visits * 0.05:
        print(f"reusing the clinic in {connection.settings_dict['NAME']}: {have:,} visits", flush=True)
        return
    # Weekends have no visits: 5 clinic days in 7.
    days = round(visits / (PROVIDERS * VISITS_PER_PROVIDER_DAY) * 7 / 5)
    print(
        f"building seed_demo with {PROVIDERS} providers, {patients:,} patients and {days} days of history...",
        flush=True,
    )
    started = time.monotonic()
    call_command("seed_demo", reset=True, providers=PROVIDERS, patients=patients, history_days=days, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    have = Appointment.objects.filter(status__in=VISITED).count()
    print(f"built in {time.monotonic() - started:.0f} s: {have:,} visits", flush=True)


def measure():
    from clinic.models import Patient
    from scheduling.no_show import score_patients, train

    started = time.perf_counter()
    model = train()
    trained = time.perf_counter()
    risks_set = score_patients(model)
    scored = time.perf_counter()
    row = {
        "visits": model.training_rows + model.heldout_rows,
        "patients": Patient.objects.count(),
        "train_s": round(trained - started, 2),
        "score_s": round(scored - trained, 2),
        "algorithm": model.algorithm,
        "auc": round(model.auc, 3),
        "brier": round(model.brier, 4),
        "base_rate": round(model.base_rate, 3),
        "calibration_error": model.metrics["calibration_error"],
        "risks_set": risks_set,
        "validation_log_loss": model.metrics["validation_log_loss"],
        "load_average": load_average(),
    }
    row["ok"] = row["train_s"] < TARGETS["train_s"] and row["score_s"] < TARGETS["score_s"] and model.is_usable
    return row


if __name__ == "__main__":
    sys.exit(main())
