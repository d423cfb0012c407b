"""Texts and contact rules: match-log outcomes for patients the contact rules hold back,
and every role that reads the messages (view_outboundemail, since 0006_roles) also reads
the texts patients sent back (view_inboundtext)."""

from django.db import migrations, models

from backfill.migrations._grants import granting

GRANTS = {role: ["view_inboundtext"] for role in ["Front desk", "Clinic manager", "Integrator"]}


class Migration(migrations.Migration):
    dependencies = [("backfill", "0011_front_desk_keeps_to_its_verbs"), ("clinic", "0012_sms_channel_contact_rules")]

    operations = [
        migrations.AlterField(
            model_name="matchlog",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("booked", "Booked"),
                    ("ranked_lower", "Ranked lower"),
                    ("below_threshold", "Below threshold"),
                    ("already_booked", "Patient already booked then"),
                    ("taken", "Taken by another booking"),
                    ("not_tried", "Not tried"),
                    ("offered", "Offered (offer mode)"),
                    ("weekly_offer_limit", "Not offered: had the most offers a week allows (MAX_OFFERS_PER_WEEK)"),
                    ("offers_paused", "Not offered: offers paused after several went by (PAUSE_AFTER_DECLINES)"),
                ],
                max_length=20,
            ),
        ),
        migrations.RunPython(*granting(GRANTS, "clinic")),
    ]
