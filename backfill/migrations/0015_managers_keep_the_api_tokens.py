"""Clinic managers name, list and revoke integrators' API tokens in the admin."""

from django.db import migrations

from backfill.migrations._grants import granting

GRANTS = {"Clinic manager": ["view_apitoken", "add_apitoken", "change_apitoken", "delete_apitoken"]}


class Migration(migrations.Migration):
    dependencies = [("backfill", "0014_managers_read_the_audit_trail"), ("clinic", "0021_api_tokens")]

    operations = [migrations.RunPython(*granting(GRANTS, "clinic"))]
