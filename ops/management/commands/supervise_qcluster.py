from django.core.management.base import BaseCommand

from ops.watchdog import Supervisor


class Command(BaseCommand):
    help = (
        "Runs `manage.py qcluster` (the cluster Q_CLUSTER_NAME names) and starts a new one in its place "
        "when it stops running jobs or exits (ops/watchdog.py, docs/operations.md)."
    )

    def handle(self, *args, **options):
        raise SystemExit(Supervisor().run())
