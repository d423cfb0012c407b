import importlib

from django.db import migrations, models

# SQLite adds a column with a default by rebuilding the table, which drops its triggers: the
# overlap triggers of 0002 are made again after it, as 0007 does (PostgreSQL keeps its constraints).
external_ids = importlib.import_module("scheduling.migrations.0007_external_ids")


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0010_appointment_answer_by"),
    ]

    operations = [
        migrations.AddField(
            model_name="appointment",
            name="booked_by",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.RunPython(
            external_ids.overlap.run({"sqlite": external_ids.SQLITE_AGAIN}), migrations.RunPython.noop
        ),
    ]
