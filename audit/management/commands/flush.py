"""Django's flush, which also empties the audit trail where AUDIT_ALLOW_FLUSH says so (the
test run and the demo's reset); elsewhere the database refuses, as it refuses any delete."""

from django.conf import settings
from django.core.management.commands import flush

from audit.database import deleting_before
from audit.models import AuditEvent


class Command(flush.Command):
    def handle(self, **options):
        if not settings.AUDIT_ALLOW_FLUSH:
            return super().handle(**options)
        with deleting_before(None):
            super().handle(**options)
            # On SQLite the flush's own deletes of watched rows were recorded as it went.
            AuditEvent.objects.using(options["database"]).all().delete()
