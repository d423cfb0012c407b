"""Integrators and clinic managers manage webhook endpoints and read their deliveries (docs/reference.md, Events)."""

from django.db import migrations

from backfill.migrations._grants import granting

GRANTS = {
    "Integrator": [
        "view_webhookendpoint",
        "add_webhookendpoint",
        "change_webhookendpoint",
        "delete_webhookendpoint",
        "view_webhookdelivery",
        "change_webhookdelivery",
        "view_event",
    ],
    "Clinic manager": [
        "view_webhookendpoint",
        "add_webhookendpoint",
        "change_webhookendpoint",
        "delete_webhookendpoint",
        "view_webhookdelivery",
        "change_webhookdelivery",
        "view_event",
        "view_deliveryattempt",
    ],
}


class Migration(migrations.Migration):
    dependencies = [("backfill", "0008_managers_read_no_show_models"), ("clinic", "0007_webhooks")]

    operations = [migrations.RunPython(*granting(GRANTS, "clinic"))]
