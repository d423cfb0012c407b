"""Texts as a second channel: patients' channel, consent and offer pause; the outbox's
channel and patient; short links and inbound texts. Phones typed before are rewritten in
E.164 where they parse as a valid number in PHONENUMBER_DEFAULT_REGION; others are kept
as typed, for staff to correct."""

import django.db.models.deletion
import django.utils.timezone
import phonenumber_field.modelfields
import phonenumbers
from django.conf import settings
from django.db import migrations, models


def phones_in_e164(apps, schema_editor):
    Patient = apps.get_model("clinic", "Patient")
    for pk, phone in Patient.objects.exclude(phone="").values_list("pk", "phone").iterator():
        try:
            number = phonenumbers.parse(str(phone), settings.PHONENUMBER_DEFAULT_REGION)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            Patient.objects.filter(pk=pk).update(phone=e164)


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0011_clinic_cancellation_email_kind"),
        ("scheduling", "0007_external_ids"),
    ]

    operations = [
        migrations.CreateModel(
            name="InboundText",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("message_sid", models.CharField(max_length=64, unique=True)),
                ("from_number", models.CharField(max_length=32)),
                ("body", models.TextField(blank=True)),
                ("outcome", models.CharField(blank=True, max_length=40)),
                ("reply", models.TextField(blank=True)),
                ("received_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "ordering": ["-received_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="ShortLink",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("code", models.CharField(max_length=12, unique=True)),
                ("url", models.TextField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.AlterModelOptions(
            name="outboundemail",
            options={"ordering": ["-created_at", "-id"], "verbose_name": "message"},
        ),
        migrations.AddField(
            model_name="outboundemail",
            name="channel",
            field=models.CharField(
                choices=[("email", "Email"), ("sms", "Text message")], default="email", max_length=10
            ),
        ),
        migrations.AddField(
            model_name="outboundemail",
            name="patient",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="messages",
                to="clinic.patient",
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="offers_paused_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="patient",
            name="offers_resumed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="patient",
            name="preferred_channel",
            field=models.CharField(
                choices=[("email", "Email"), ("sms", "Text message"), ("both", "Email and text")],
                default="email",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="patient",
            name="sms_consent",
            field=models.BooleanField(default=False, verbose_name="consents to texts"),
        ),
        migrations.AddField(
            model_name="patient",
            name="sms_consent_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="consent to texts changed at"),
        ),
        migrations.AddField(
            model_name="patient",
            name="sms_consent_source",
            field=models.CharField(
                blank=True,
                choices=[
                    ("staff", "Staff"),
                    ("api", "Integrator"),
                    ("patient", "Patient (self-service page)"),
                    ("sms", "Patient (text reply)"),
                ],
                max_length=10,
                verbose_name="consent to texts given or withdrawn by",
            ),
        ),
        migrations.AlterField(
            model_name="outboundemail",
            name="recipient",
            field=models.CharField(max_length=254),
        ),
        migrations.AlterField(
            model_name="outboundemail",
            name="subject",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AlterField(
            model_name="patient",
            name="phone",
            field=phonenumber_field.modelfields.PhoneNumberField(blank=True, max_length=128, region=None),
        ),
        migrations.AddIndex(
            model_name="outboundemail",
            index=models.Index(fields=["recipient", "channel", "-created_at"], name="message_latest_to_number"),
        ),
        migrations.AddField(
            model_name="inboundtext",
            name="patient",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="inbound_texts",
                to="clinic.patient",
            ),
        ),
        migrations.RunPython(phones_in_e164, migrations.RunPython.noop),
    ]
