"""The sweep runs inside every qcluster as a django-q2 schedule (docs/reference.md, Triggers, trigger 4)."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="backfill-sweep",
        defaults={"func": "backfill.tasks.sweep", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="backfill-sweep").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backfill", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
