from django.apps import AppConfig


class ClinicConfig(AppConfig):
    name = "clinic"

    def ready(self):
        from clinic import checks, errors, events, sessions, signals  # noqa: F401
        from clinic.api import PatientSerializer
        from clinic.models import Patient

        # Integrators' events show patients as the API does (a merge: clinic.events).
        events.show(Patient, "patient", PatientSerializer)
