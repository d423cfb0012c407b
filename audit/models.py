import pgtrigger
from django.db import models
from django.db.models.functions import Now

# PostgreSQL refuses to change an entry, and to delete one unless the transaction allows
# entries older than an instant to go (audit.database.deleting_before, used by the retention
# job and the test runner's flush). SQLite gets the same two rules from audit.tracking.
PRUNE_BEFORE = "COALESCE(NULLIF(current_setting('backfill.audit_prune_before', true), '')::timestamptz, '-infinity')"


class AuditEvent(models.Model):
    """One change to a watched record, or one staff view of a patient's record.

    Written by database triggers for changes (audit.tracking) and by `audit.views.record_view`
    for views; never changed afterwards.
    """

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"
        DELETE = "delete"
        VIEW = "view"

    at = models.DateTimeField(db_default=Now())
    action = models.CharField(max_length=6, choices=Action.choices)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=64)
    # The patient the record is about, kept as a number: the trail outlives a deleted row.
    patient_id = models.BigIntegerField(null=True, blank=True)
    actor = models.CharField(max_length=200)
    # The staff or integrator account that acted, when one did.
    user_id = models.IntegerField(null=True, blank=True)
    channel = models.CharField(max_length=20)
    # {column: [before, after]}, only the columns that changed.
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["patient_id", "at"], name="audit_patient_at"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
            models.Index(fields=["at"], name="audit_at"),
        ]
        triggers = [
            pgtrigger.Protect(name="append_only_update", operation=pgtrigger.Update),
            pgtrigger.Protect(
                name="append_only_delete",
                operation=pgtrigger.Delete,
                condition=pgtrigger.Condition(f"OLD.at >= {PRUNE_BEFORE}"),
            ),
            pgtrigger.Trigger(
                name="append_only_truncate",
                when=pgtrigger.Before,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                condition=pgtrigger.Condition(f"{PRUNE_BEFORE} <> 'infinity'"),
                func="RAISE EXCEPTION 'the audit trail is append-only'; RETURN NULL;",
            ),
        ]

    def __str__(self):
        return f"{self.action} {self.object_type} {self.object_id} by {self.actor}"
