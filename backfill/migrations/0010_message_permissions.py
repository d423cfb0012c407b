"""Every role that reads the messages (view_outboundemail, since 0006_roles) also reads the
texts patients sent back (view_inboundtext), in the admin."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = ["Front desk", "Clinic manager", "Integrator"]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="clinic", codename="view_inboundtext")
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.add(permission)


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=ROLES):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="clinic", codename="view_inboundtext"))


class Migration(migrations.Migration):
    dependencies = [("backfill", "0009_webhook_permissions"), ("clinic", "0010_sms_channel_contact_rules")]

    operations = [migrations.RunPython(grant, revoke)]
