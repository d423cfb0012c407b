from django.apps import AppConfig


class Hl7Config(AppConfig):
    name = "integrations.hl7"
    label = "hl7"
    verbose_name = "HL7 interface"

    def ready(self):
        from backfill import health
        from clinic import events
        from integrations.hl7 import outbound
        from integrations.hl7.metrics import Hl7Collector

        # Committed events reach the HL7 endpoints by the webhooks' road (clinic/events.py).
        events.after_commit(outbound.request_sending)
        health.MORE_COLLECTORS.append(Hl7Collector())
