"""Webhook endpoints belong to the account that made them; clinic managers see and change
every account's (manage_every_webhookendpoint)."""

from django.db import migrations

from backfill.migrations._grants import granting

GRANTS = {"Clinic manager": ["manage_every_webhookendpoint"]}


class Migration(migrations.Migration):
    dependencies = [("backfill", "0012_texts_and_contact_rules"), ("clinic", "0016_webhook_endpoint_owner")]

    operations = [migrations.RunPython(*granting(GRANTS, "clinic"))]
