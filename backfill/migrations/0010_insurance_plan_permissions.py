"""Who sees and keeps the insurance plans (SPEC 14): everyone reads them (a patient's plan
decides whom they can be booked with); managers and integrators add and change them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Front desk": ["view_insuranceplan"],
    "Clinic manager": ["view_insuranceplan", "add_insuranceplan", "change_insuranceplan"],
    "Integrator": ["view_insuranceplan", "add_insuranceplan", "change_insuranceplan"],
}


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group, codenames in GRANTS.items():
        Group.objects.get(name=group).permissions.add(
            *Permission.objects.filter(content_type__app_label="clinic", codename__in=codenames)
        )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group, codenames in GRANTS.items():
        Group.objects.get(name=group).permissions.remove(
            *Permission.objects.filter(content_type__app_label="clinic", codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [("backfill", "0009_webhook_permissions"), ("clinic", "0010_insurance_plans_and_location_time_zones")]

    operations = [migrations.RunPython(grant, revoke)]
