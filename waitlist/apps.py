from django.apps import AppConfig


class WaitlistConfig(AppConfig):
    name = "waitlist"

    def ready(self):
        from clinic import events
        from waitlist.api import WaitlistEntrySerializer
        from waitlist.models import WaitlistEntry

        # Integrators' events show entries as the API does (clinic.events).
        events.show(WaitlistEntry, "waitlist_entry", WaitlistEntrySerializer)
