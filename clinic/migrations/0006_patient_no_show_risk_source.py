from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0005_single_line_text"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="no_show_risk_model",
            field=models.FloatField(blank=True, editable=False, null=True, verbose_name="model's no-show estimate"),
        ),
        migrations.AddField(
            model_name="patient",
            name="no_show_risk_reasons",
            field=models.JSONField(blank=True, default=list, editable=False, verbose_name="model's reasons"),
        ),
        migrations.AddField(
            model_name="patient",
            name="no_show_risk_source",
            field=models.CharField(
                choices=[
                    ("manual", "Typed in by staff"),
                    ("api", "Sent by an integrator"),
                    ("model", "Learned from the clinic's history"),
                ],
                default="manual",
                help_text='Choose "Learned from the clinic\'s history" to let the no-show model set the risk.',
                max_length=10,
                verbose_name="no-show risk source",
            ),
        ),
        # Patients already here had their risk typed by staff or sent by an integrator
        # (there was no model): they keep it as "manual". New patients default to "model".
        migrations.AlterField(
            model_name="patient",
            name="no_show_risk_source",
            field=models.CharField(
                choices=[
                    ("manual", "Typed in by staff"),
                    ("api", "Sent by an integrator"),
                    ("model", "Learned from the clinic's history"),
                ],
                default="model",
                help_text='Choose "Learned from the clinic\'s history" to let the no-show model set the risk.',
                max_length=10,
                verbose_name="no-show risk source",
            ),
        ),
    ]
