from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"

    def ready(self):
        from clinic import events
        from scheduling import signals  # noqa: F401
        from scheduling.api import AppointmentSerializer, ProviderUnavailabilitySerializer
        from scheduling.models import Appointment, ProviderUnavailability

        # Integrators' events show these as the API does (clinic.events).
        events.show(Appointment, "appointment", AppointmentSerializer)
        events.show(ProviderUnavailability, "unavailability", ProviderUnavailabilitySerializer)
