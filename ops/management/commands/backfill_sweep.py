from django.core.management.base import BaseCommand

from ops.sweep import sweep


class Command(BaseCommand):
    help = "Re-enqueue open slots whose backfill job was lost or is due a retry; expire slots whose time passed."

    def handle(self, *args, **options):
        result = sweep()
        for name, count in result.items():
            self.stdout.write(f"{count:>6} {name.replace('_', ' ')}")
