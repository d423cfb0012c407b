from django.apps import AppConfig


class BackfillConfig(AppConfig):
    name = "backfill"

    def ready(self):
        from backfill import signals  # noqa: F401
        from backfill.api import FreedSlotSerializer, SlotOfferSerializer
        from backfill.models import FreedSlot, SlotOffer
        from clinic import events
        from scheduling.models import when_cancelled

        # A cancellation records the slot it freed, in its own transaction (Appointment.cancel).
        when_cancelled(FreedSlot.record_for)

        # Integrators' events show these as the API does (clinic.events).
        events.show(FreedSlot, "slot", FreedSlotSerializer)
        events.show(SlotOffer, "offer", SlotOfferSerializer)
