"""No provider and no patient ever has two active appointments that overlap (docs/reference.md, Booking).

PostgreSQL enforces it with exclusion constraints over a half-open time range ('[)', so
back-to-back appointments are fine); cancelled rows are left out, or a cancelled
appointment would block the slot it freed. SQLite has no exclusion constraints, so there
the same rule is a pair of triggers that abort the write.
"""

from django.db import migrations

PARTIES = ("provider", "patient")

POSTGRES_FORWARD = ["CREATE EXTENSION IF NOT EXISTS btree_gist"] + [
    f"""ALTER TABLE scheduling_appointment ADD CONSTRAINT appointment_{party}_overlap
        EXCLUDE USING gist ({party}_id WITH =, tstzrange("start", "end", '[)') WITH &&)
        WHERE (status <> 'cancelled')"""
    for party in PARTIES
]
POSTGRES_BACKWARD = [
    f"ALTER TABLE scheduling_appointment DROP CONSTRAINT appointment_{party}_overlap" for party in PARTIES
]


def sqlite_trigger(party, event):
    same_row = "AND a.id <> NEW.id" if event == "update" else ""
    when = "INSERT" if event == "insert" else 'UPDATE OF "start", "end", status, provider_id, patient_id'
    return f"""CREATE TRIGGER appointment_{party}_overlap_{event} BEFORE {when} ON scheduling_appointment
        WHEN NEW.status <> 'cancelled' AND EXISTS (
            SELECT 1 FROM scheduling_appointment a
            WHERE a.{party}_id = NEW.{party}_id AND a.status <> 'cancelled'
              AND a."start" < NEW."end" AND a."end" > NEW."start" {same_row})
        BEGIN SELECT RAISE(ABORT, 'appointment_{party}_overlap'); END"""


SQLITE_FORWARD = [sqlite_trigger(party, event) for party in PARTIES for event in ("insert", "update")]
SQLITE_BACKWARD = [
    f"DROP TRIGGER appointment_{party}_overlap_{event}" for party in PARTIES for event in ("insert", "update")
]


def run(statements_by_vendor):
    def operation(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return operation


class Migration(migrations.Migration):
    dependencies = [("scheduling", "0001_initial")]

    operations = [
        migrations.RunPython(
            run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        )
    ]
