from django.apps import AppConfig


class BackfillConfig(AppConfig):
    name = "backfill"

    def ready(self):
        from backfill import signals  # noqa: F401
