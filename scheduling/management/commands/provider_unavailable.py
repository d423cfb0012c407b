"""manage.py provider_unavailable: the reassignment from the command line (docs/reference.md, Reassignment)."""

from argparse import ArgumentTypeError
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from clinic.actions import Via
from clinic.models import Provider
from scheduling.actions import mark_provider_unavailable
from scheduling.reassignment import WorkflowError


def iso_date(value):
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a date in the form YYYY-MM-DD") from None


class Command(BaseCommand):
    help = (
        "Mark a provider unavailable for a range of days (in the clinic's time zone, both included): "
        "their patients are offered another provider at the same time, or put on the waitlist."
    )

    def add_arguments(self, parser):
        parser.add_argument("provider", help="the provider's id or email")
        parser.add_argument("--start", required=True, type=iso_date, help="first day away, YYYY-MM-DD")
        parser.add_argument("--end", type=iso_date, help="last day away, YYYY-MM-DD (default: the start day)")
        parser.add_argument("--reason", default="", help='e.g. "sick"')

    def handle(self, *args, provider, start, end, reason, **options):
        try:
            summary = mark_provider_unavailable(
                find_provider(provider), start, end or start, reason, by="manage.py", channel=Via.COMMAND
            )
        except WorkflowError as error:
            raise CommandError(str(error)) from error
        for line in summary.lines():
            self.stdout.write(line)


def find_provider(key):
    lookup = {"pk": int(key)} if key.isdigit() else {"email__iexact": key}
    provider = Provider.objects.filter(**lookup).first()
    if provider is None:
        raise CommandError(f"No provider with id or email {key!r}.")
    return provider
