"""The HL7 interface's figures on /metrics (ops/metrics.py): messages kept, by direction,
type and outcome, and the outbound messages still waiting to be sent."""

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily

from integrations.hl7.models import Hl7Message


class Hl7Collector:
    def collect(self):
        family = GaugeMetricFamily(
            "backfill_hl7_messages",
            "HL7 messages kept (HL7_RETENTION_DAYS), by direction, type and outcome.",
            labels=["direction", "type", "outcome"],
        )
        counts = Hl7Message.objects.values_list("direction", "message_type", "outcome").annotate(n=Count("pk"))
        for direction, message_type, outcome, n in counts.order_by():
            family.add_metric([direction, message_type or "unreadable", outcome], n)
        yield family
        backlog = GaugeMetricFamily(
            "backfill_hl7_outbound_backlog", "Outbound HL7 messages waiting to be sent (first try or a retry)."
        )
        backlog.add_metric(
            [],
            Hl7Message.objects.filter(direction=Hl7Message.Direction.OUT, outcome=Hl7Message.Outcome.PENDING).count(),
        )
        yield backlog
