"""Clinic managers export and erase patients' data; messages past MESSAGE_RETENTION_DAYS are
deleted every night inside the qcluster."""

from datetime import datetime, time, timedelta

from django.db import migrations
from django.utils import timezone

from backfill.migrations._grants import granting

GRANTS = {"Clinic manager": ["view_patientdata", "export_patient_data", "erase_patient_data"]}
NIGHTLY_AT = time(3, 45)  # clinic time, after the audit trail's retention (03:30)


def create_schedule(apps, schema_editor):
    tomorrow = timezone.localdate() + timedelta(days=1)
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="message-retention-nightly",
        defaults={
            "func": "privacy.retention.purge_old_messages",
            "schedule_type": "D",
            "repeats": -1,
            "next_run": timezone.make_aware(datetime.combine(tomorrow, NIGHTLY_AT)),
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="message-retention-nightly").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0001_initial"),
        ("backfill", "0006_roles"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(*granting(GRANTS, "privacy")),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
