"""Texts and contact rules: match-log outcomes for patients the contact rules hold back,
and every role that reads the messages (view_outboundemail, since 0006_roles) also reads
the texts patients sent back (view_inboundtext)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

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
    dependencies = [("backfill", "0011_front_desk_keeps_to_its_verbs"), ("clinic", "0012_sms_channel_contact_rules")]

    operations = [
        migrations.AlterField(
            model_name='matchlog',
            name='outcome',
            field=models.CharField(choices=[('booked', 'Booked'), ('ranked_lower', 'Ranked lower'), ('below_threshold', 'Below threshold'), ('already_booked', 'Patient already booked then'), ('taken', 'Taken by another booking'), ('not_tried', 'Not tried'), ('offered', 'Offered (offer mode)'), ('weekly_offer_limit', 'Not offered: had the most offers a week allows (MAX_OFFERS_PER_WEEK)'), ('offers_paused', 'Not offered: offers paused after several went by (PAUSE_AFTER_DECLINES)')], max_length=20),
        ),
        migrations.RunPython(grant, revoke),
    ]
