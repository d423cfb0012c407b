"""What the role migrations share (not a migration: the loader skips names starting with _).

A role migration names what it gives each group; these functions make the permissions exist
(Django normally makes them after the last migration), then add or remove them. Kept apart
from the app's code so that a change there never rewrites history.
"""

from django.contrib.auth.management import create_permissions


def make_permissions(apps):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def granting(grants, app_label):
    """RunPython's pair for `grants` ({group name: [codename, …]}) of `app_label`'s permissions."""

    def permissions(apps, codenames):
        return apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label=app_label, codename__in=codenames
        )

    def grant(apps, schema_editor):
        make_permissions(apps)
        for group, codenames in grants.items():
            apps.get_model("auth", "Group").objects.get(name=group).permissions.add(*permissions(apps, codenames))

    def revoke(apps, schema_editor):
        for group, codenames in grants.items():
            apps.get_model("auth", "Group").objects.get(name=group).permissions.remove(*permissions(apps, codenames))

    return grant, revoke
