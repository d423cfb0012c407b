from django.apps import AppConfig


class Hl7Config(AppConfig):
    name = "integrations.hl7"
    label = "hl7"
    verbose_name = "HL7 interface"

    def ready(self):
        from clinic import events
        from integrations.hl7 import outbound

        # Committed events reach the HL7 endpoints by the webhooks' road (clinic/events.py).
        events.after_commit(outbound.request_sending)
