from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from backfill.stats import backfill_stats


class Command(BaseCommand):
    help = "Freed slots, fill rate, time to fill and revenue recovered over a date range (default: last 30 days)."

    def add_arguments(self, parser):
        parser.add_argument("--start", type=date.fromisoformat, help="YYYY-MM-DD")
        parser.add_argument("--end", type=date.fromisoformat, help="YYYY-MM-DD")

    def handle(self, *args, **options):
        last = options["end"] or timezone.localdate()
        first = options["start"] or last - timedelta(days=29)
        if last < first:
            raise CommandError("--end must not be before --start")
        stats = backfill_stats(first, last)
        for name, value in stats.items():
            self.stdout.write(f"{name.replace('_', ' '):<30} {value if value is not None else '-'}")
