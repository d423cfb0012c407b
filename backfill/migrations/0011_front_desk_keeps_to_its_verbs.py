"""The front desk and clinic managers change slot offers and waitlist entries only through
the admin's verbs: nothing in a slot offer is staff's to edit, and a waitlist
entry leaves the list by the Remove action, which keeps its history and match logs, never
by deletion."""

from django.db import migrations

from backfill.migrations._grants import make_permissions

REVOKED = {
    "Front desk": [("backfill", "change_slotoffer"), ("waitlist", "delete_waitlistentry")],
    "Clinic manager": [("backfill", "change_slotoffer"), ("waitlist", "delete_waitlistentry")],
}


def _permissions(apps, pairs):
    Permission = apps.get_model("auth", "Permission")
    return [Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in pairs]


def revoke(apps, schema_editor):
    make_permissions(apps)
    Group = apps.get_model("auth", "Group")
    for name, pairs in REVOKED.items():
        Group.objects.get(name=name).permissions.remove(*_permissions(apps, pairs))


def grant_again(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, pairs in REVOKED.items():
        Group.objects.get(name=name).permissions.add(*_permissions(apps, pairs))


class Migration(migrations.Migration):
    dependencies = [("backfill", "0010_insurance_plan_permissions"), ("waitlist", "0001_initial")]

    operations = [migrations.RunPython(revoke, grant_again)]
