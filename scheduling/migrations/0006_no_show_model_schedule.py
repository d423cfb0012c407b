"""The no-show model is retrained every night inside the qcluster (docs/reference.md, No-show model)."""

from datetime import datetime, time, timedelta

from django.db import migrations
from django.utils import timezone

NIGHTLY_AT = time(3, 0)  # clinic time: no one is booking, yesterday's visits are recorded
# Q_CLUSTER's 30 s timeout is sized for backfill jobs; training and scoring 100,000 visits
# took about 10 s (bench/no_show.py), so give it more, but stay under the 60 s retry, after
# which the ORM broker would deliver the task a second time.
TASK_OPTIONS = "q_options={'timeout': 55}"


def next_night():
    tomorrow = timezone.localdate() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(tomorrow, NIGHTLY_AT))


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="no-show-model-nightly",
        defaults={
            "func": "scheduling.no_show.train_nightly",
            "kwargs": TASK_OPTIONS,
            "schedule_type": "D",
            "repeats": -1,
            "next_run": next_night(),
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="no-show-model-nightly").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0005_no_show_model"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
