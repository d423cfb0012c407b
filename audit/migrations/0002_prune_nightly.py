"""The trail's retention (AUDIT_RETENTION_DAYS) is applied every night inside the qcluster."""

from datetime import datetime, time, timedelta

from django.db import migrations
from django.utils import timezone

NIGHTLY_AT = time(3, 30)  # clinic time, after the no-show model's 03:00 retraining


def next_night():
    tomorrow = timezone.localdate() + timedelta(days=1)
    return timezone.make_aware(datetime.combine(tomorrow, NIGHTLY_AT))


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="audit-trail-retention-nightly",
        defaults={
            "func": "audit.retention.prune_audit_trail",
            "schedule_type": "D",
            "repeats": -1,
            "next_run": next_night(),
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="audit-trail-retention-nightly").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
