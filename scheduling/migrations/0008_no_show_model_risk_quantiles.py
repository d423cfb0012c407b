from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0007_external_ids"),
    ]

    operations = [
        migrations.AddField(
            model_name="noshowmodel",
            name="risk_quantiles",
            field=models.JSONField(default=list, editable=False),
        ),
    ]
