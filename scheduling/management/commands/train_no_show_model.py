"""Train the no-show model on the clinic's visits and, if it is good enough, let it set
patients' risks (docs/reference.md, No-show model). The nightly schedule runs the same thing."""

from django.core.management.base import BaseCommand

from scheduling.no_show import train_and_apply


class Command(BaseCommand):
    help = "Train the no-show model; if its held-out AUC reaches BACKFILL['NO_SHOW_MIN_AUC'], score every patient."

    def handle(self, *args, **options):
        outcome = train_and_apply()
        style = self.style.SUCCESS if outcome.trained and outcome.in_use == outcome.trained else self.style.WARNING
        self.stdout.write(style(outcome.message))
