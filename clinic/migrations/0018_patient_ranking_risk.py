from django.db import migrations, models
from django.db.models import F


def rank_by_the_risk_as_it_is(apps, schema_editor):
    """No risk has a standing yet: every ranking risk is the risk itself until the model next scores."""
    apps.get_model("clinic", "Patient").objects.update(ranking_risk=F("no_show_risk"))


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0017_idempotency_keys_per_account"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="no_show_risk_standing",
            field=models.FloatField(
                blank=True, editable=False, null=True, verbose_name="model's estimate stands above"
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="ranking_risk",
            field=models.FloatField(default=0.0, editable=False),
        ),
        migrations.RunPython(rank_by_the_risk_as_it_is, migrations.RunPython.noop),
    ]
