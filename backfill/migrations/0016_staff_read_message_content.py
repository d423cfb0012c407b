"""Messages' subjects, bodies and links are for staff who talk to patients: Front desk and
Clinic manager read them; an Integrator reads only when, how and what kind."""

from django.db import migrations

from backfill.migrations._grants import granting

GRANTS = {role: ["read_message_content"] for role in ["Front desk", "Clinic manager"]}


class Migration(migrations.Migration):
    dependencies = [
        ("backfill", "0015_managers_keep_the_api_tokens"),
        ("clinic", "0022_message_content_permission"),
    ]

    operations = [migrations.RunPython(*granting(GRANTS, "clinic"))]
