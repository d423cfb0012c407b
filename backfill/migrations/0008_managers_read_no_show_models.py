"""Clinic managers read the trained no-show models in the admin (docs/reference.md, No-show model)."""

from django.db import migrations

from backfill.migrations._grants import granting

GRANTS = {"Clinic manager": ["view_noshowmodel"]}


class Migration(migrations.Migration):
    dependencies = [("backfill", "0007_sweep_every_half_minute"), ("scheduling", "0005_no_show_model")]

    operations = [migrations.RunPython(*granting(GRANTS, "scheduling"))]
