"""The three staff roles as groups (docs/reference.md, Production). Permissions are frozen here, as of this
migration; a later change of a role is a migration of its own."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

FRONT_DESK = [
    "scheduling.view_appointment",
    "scheduling.add_appointment",
    "scheduling.change_appointment",
    "scheduling.view_providerunavailability",
    "waitlist.view_waitlistentry",
    "waitlist.add_waitlistentry",
    "waitlist.change_waitlistentry",
    "waitlist.delete_waitlistentry",
    "backfill.view_freedslot",
    "backfill.change_freedslot",
    "backfill.view_matchlog",
    "backfill.view_slotoffer",
    "backfill.change_slotoffer",
    "clinic.view_patient",
    "clinic.add_patient",
    "clinic.change_patient",
    "clinic.view_provider",
    "clinic.view_location",
    "clinic.view_specialty",
    "clinic.view_outboundemail",
]
CLINIC_MANAGER = FRONT_DESK + [
    "clinic.add_provider",
    "clinic.change_provider",
    "clinic.add_location",
    "clinic.change_location",
    "clinic.add_specialty",
    "clinic.change_specialty",
    "scheduling.add_providerunavailability",
    "scheduling.change_providerunavailability",
    "scheduling.delete_providerunavailability",
    "scheduling.reassign_patients",
    "backfill.view_dashboard",
    "backfill.view_metrics",
]
INTEGRATOR = [
    "clinic.view_location",
    "clinic.add_location",
    "clinic.change_location",
    "clinic.view_specialty",
    "clinic.add_specialty",
    "clinic.change_specialty",
    "clinic.view_provider",
    "clinic.add_provider",
    "clinic.change_provider",
    "clinic.view_patient",
    "clinic.add_patient",
    "clinic.change_patient",
    "clinic.view_outboundemail",
    "scheduling.view_appointment",
    "scheduling.add_appointment",
    "scheduling.change_appointment",
    "scheduling.view_providerunavailability",
    "scheduling.reassign_patients",
    "waitlist.view_waitlistentry",
    "waitlist.add_waitlistentry",
    "waitlist.change_waitlistentry",
    "waitlist.delete_waitlistentry",
    "backfill.view_freedslot",
    "backfill.change_freedslot",
    "backfill.view_matchlog",
    "backfill.view_dashboard",
    "backfill.view_metrics",
]
ROLES = {"Front desk": FRONT_DESK, "Clinic manager": CLINIC_MANAGER, "Integrator": INTEGRATOR}


def create_roles(apps, schema_editor):
    # Permissions are normally made after the last migration; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = [tuple(code.split(".")) for code in codes]
        permissions = [
            Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in wanted
        ]
        group.permissions.set(permissions)


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("backfill", "0005_permissions"),
        ("scheduling", "0003_permissions"),
        ("waitlist", "0001_initial"),
        ("clinic", "0004_pending_job"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
