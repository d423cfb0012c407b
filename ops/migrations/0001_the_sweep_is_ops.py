"""The sweep's two schedules (backfill 0002 and 0007) run ops.sweep.sweep: the sweep moved
out of backfill.tasks when it became each app's housekeeping composed in ops/sweep.py."""

from django.db import migrations

SCHEDULES = ("backfill-sweep", "backfill-sweep-half")


def run_ops_sweep(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=SCHEDULES).update(func="ops.sweep.sweep")


def run_backfill_sweep(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=SCHEDULES).update(func="backfill.tasks.sweep")


class Migration(migrations.Migration):
    dependencies = [("backfill", "0007_sweep_every_half_minute")]

    operations = [migrations.RunPython(run_ops_sweep, run_backfill_sweep)]
