"""Every minute, inside the qcluster: outbound retries that are due are asked for, and
messages past HL7_RETENTION_DAYS forgotten (integrations/hl7/outbound.py)."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="hl7-housekeeping",
        defaults={
            "func": "integrations.hl7.outbound.housekeeping",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
        },
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="hl7-housekeeping").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("hl7", "0002_roles"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
