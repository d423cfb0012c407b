"""Clinic managers read the audit trail (the admin's and GET /api/audit-events/); no other role does."""

from django.db import migrations

from backfill.migrations._grants import granting

GRANTS = {"Clinic manager": ["view_auditevent"]}


class Migration(migrations.Migration):
    dependencies = [("backfill", "0013_managers_see_every_webhook_endpoint"), ("audit", "0001_initial")]

    operations = [migrations.RunPython(*granting(GRANTS, "audit"))]
