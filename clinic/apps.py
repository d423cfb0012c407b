from django.apps import AppConfig


class ClinicConfig(AppConfig):
    name = "clinic"

    def ready(self):
        from clinic import checks, errors, sessions, signals  # noqa: F401
