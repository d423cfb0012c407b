"""Webhooks written once (clinic/webhooks.py): each endpoint's sender reads new events past a
mark of its own instead of fanning each event out to a pending delivery and flagging it."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def mark_each_endpoint(apps, schema_editor):
    """Each endpoint's mark goes just below the first event not fanned out yet: those after it
    that were fanned out have their delivery (pending ones are sent as before, delivered ones
    are not sent again) or were not for the endpoint. Deploy with the workers stopped, as for
    any migration: an event being written meanwhile would have to be fanned out by old code."""
    Event = apps.get_model("clinic", "Event")
    WebhookEndpoint = apps.get_model("clinic", "WebhookEndpoint")
    WebhookProgress = apps.get_model("clinic", "WebhookProgress")
    waiting = Event.objects.filter(fanned_out=False).order_by("id").values_list("id", flat=True).first()
    newest = Event.objects.order_by("-id").values_list("id", flat=True).first()
    mark = waiting - 1 if waiting is not None else (newest or 0)
    WebhookProgress.objects.bulk_create(
        [
            WebhookProgress(endpoint=endpoint, sent_through=mark, since=endpoint.created_at)
            for endpoint in WebhookEndpoint.objects.all()
        ]
    )


def flag_every_event_fanned_out(apps, schema_editor):
    # Back to fanning out: the events so far have been read by the senders already.
    apps.get_model("clinic", "Event").objects.update(fanned_out=True)


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0023_appointment_moved_message"),
    ]

    operations = [
        migrations.CreateModel(
            name="WebhookProgress",
            fields=[
                (
                    "endpoint",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="progress",
                        serialize=False,
                        to="clinic.webhookendpoint",
                    ),
                ),
                ("sent_through", models.BigIntegerField(default=0)),
                ("since", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name_plural": "webhook progress",
            },
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="duration_ms",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="status_code",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(mark_each_endpoint, flag_every_event_fanned_out),
        migrations.RemoveIndex(
            model_name="event",
            name="event_not_fanned_out",
        ),
        migrations.RemoveField(
            model_name="event",
            name="fanned_out",
        ),
    ]
