"""A second sweep schedule half a minute after the first, so the sweep runs every 30 s.

django-q2 schedules count in whole minutes (and its scheduler looks every 30 s); two of them
half a minute apart keep their offset, since each next run is its last plus a minute. A
slot whose job was lost while the broker or the database was down is then handled within a
minute of its return (docs/reference.md, Production).
"""

from datetime import timedelta

from django.db import migrations
from django.utils import timezone


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    first = Schedule.objects.filter(name="backfill-sweep").first()
    start = (first.next_run if first and first.next_run else timezone.now()) + timedelta(seconds=30)
    Schedule.objects.update_or_create(
        name="backfill-sweep-half",
        defaults={
            "func": "backfill.tasks.sweep",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
            "next_run": start,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="backfill-sweep-half").delete()


class Migration(migrations.Migration):
    dependencies = [("backfill", "0006_roles")]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
