"""Clinic managers read the trained no-show models in the admin (SPEC 15)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="scheduling", codename="view_noshowmodel")
    Group.objects.get(name="Clinic manager").permissions.add(permission)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.get(name="Clinic manager").permissions.remove(
        *apps.get_model("auth", "Permission").objects.filter(codename="view_noshowmodel")
    )


class Migration(migrations.Migration):
    dependencies = [("backfill", "0007_sweep_every_half_minute"), ("scheduling", "0005_no_show_model")]

    operations = [migrations.RunPython(grant, revoke)]
