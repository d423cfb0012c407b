"""Integrators and clinic managers manage webhook endpoints and read their deliveries (SPEC 13)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Integrator": ["view_webhookendpoint", "add_webhookendpoint", "change_webhookendpoint", "delete_webhookendpoint",
                   "view_webhookdelivery", "change_webhookdelivery", "view_event"],
    "Clinic manager": ["view_webhookendpoint", "add_webhookendpoint", "change_webhookendpoint",
                       "delete_webhookendpoint", "view_webhookdelivery", "change_webhookdelivery", "view_event",
                       "view_deliveryattempt"],
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
        Group.objects.get(name=group).permissions.remove(*Permission.objects.filter(codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [("backfill", "0008_managers_read_no_show_models"), ("clinic", "0007_webhooks")]

    operations = [migrations.RunPython(grant, revoke)]
