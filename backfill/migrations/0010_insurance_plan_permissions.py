"""Who sees and keeps the insurance plans (docs/reference.md, Insurance): everyone reads them (a patient's plan
decides whom they can be booked with); managers and integrators add and change them."""

from django.db import migrations

from backfill.migrations._grants import granting

GRANTS = {
    "Front desk": ["view_insuranceplan"],
    "Clinic manager": ["view_insuranceplan", "add_insuranceplan", "change_insuranceplan"],
    "Integrator": ["view_insuranceplan", "add_insuranceplan", "change_insuranceplan"],
}


class Migration(migrations.Migration):
    dependencies = [
        ("backfill", "0009_webhook_permissions"),
        ("clinic", "0010_insurance_plans_and_location_time_zones"),
    ]

    operations = [migrations.RunPython(*granting(GRANTS, "clinic"))]
