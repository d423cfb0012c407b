"""Integrators and clinic managers read the HL7 messages and manage the endpoints and code
tables; the front desk sees none of it (docs/hl7.md, "Who sees what")."""

from django.db import migrations

from backfill.migrations._grants import granting

MANAGE = [
    f"{verb}_{model}" for model in ("hl7endpoint", "hl7codemapping") for verb in ("view", "add", "change", "delete")
]
GRANTS = {
    "Integrator": [*MANAGE, "view_hl7message", "change_hl7message"],
    "Clinic manager": [*MANAGE, "view_hl7message", "change_hl7message"],
}


class Migration(migrations.Migration):
    dependencies = [("hl7", "0001_initial"), ("backfill", "0013_managers_see_every_webhook_endpoint")]

    operations = [migrations.RunPython(*granting(GRANTS, "hl7"))]
