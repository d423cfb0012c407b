"""`/metrics`: how Backfill is doing, in the Prometheus text format (docs/reference.md, Production).

Read from the database at each scrape, so every process answers the same whatever process
did the work; a staff token with the view_metrics permission, or the scrape secret, reads it.
"""

import hmac

from django.conf import settings
from django.core.cache import caches
from django.db.models import Count, Min, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from backfill.models import FreedSlot
from clinic.cache import RedisWithLocalFallback, fallback_operations
from clinic.errors import unhandled_error_counts
from clinic.models import OutboundEmail
from clinic.queue import shared_broker
from integrations.hl7.metrics import Hl7Collector
from ops import watchdog

# Seconds from a slot being freed to its replacement booked: milliseconds normally, up to
# the sweep's retries when a job was lost.
TIME_TO_FILL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@never_cache
@require_GET
def metrics(request):
    if not may_read_metrics(request):
        response = HttpResponse(
            "Metrics need a staff token with the view_metrics permission, or the scrape secret.\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BackfillCollector())
    registry.register(Hl7Collector())
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4; charset=utf-8")


def may_read_metrics(request):
    header = request.headers.get("Authorization", "")
    secret = settings.METRICS_SCRAPE_SECRET
    if secret and header.startswith("Bearer "):
        return hmac.compare_digest(header.removeprefix("Bearer ").strip(), secret)
    try:
        authenticated = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return False
    user = authenticated[0] if authenticated else request.user
    return user.is_authenticated and user.has_perm("backfill.view_metrics")


class BackfillCollector:
    def collect(self):
        yield self.time_to_fill()
        yield from self.slots()
        yield self.messages()
        queue = GaugeMetricFamily(
            "backfill_queue_depth", "Jobs waiting on the django-q2 broker, by queue.", labels=["queue"]
        )
        broker_up = GaugeMetricFamily("backfill_broker_up", "1 while the django-q2 broker answers.")
        try:
            for name in (settings.Q_CLUSTER["name"], settings.WEBHOOK_QUEUE):
                queue.add_metric([name], shared_broker(name).queue_size())
        except Exception:  # Redis down: the rest of the figures still come from the database
            broker_up.add_metric([], 0)
        else:
            broker_up.add_metric([], 1)
            yield queue
        yield broker_up
        errors = CounterMetricFamily(
            "backfill_unhandled_errors",
            "Requests that ended in an unhandled error (500; an outage 503), each logged with its traceback.",
            labels=["kind"],
        )
        for kind, count in unhandled_error_counts().items():
            errors.add_metric([kind], count)
        yield errors
        yield from self.clusters()
        yield from self.shared_cache()

    def shared_cache(self):
        """Whether the throttles count in Redis, or (Redis down) in each process's memory (clinic/cache.py)."""
        cache = caches["default"]
        if not isinstance(cache, RedisWithLocalFallback):
            return
        up = GaugeMetricFamily(
            "backfill_shared_cache_up",
            "1 while Redis answers; 0 while throttles count in each web process's own memory instead.",
        )
        up.add_metric([], int(cache.shared()))
        yield up
        fallback = CounterMetricFamily(
            "backfill_cache_fallback_operations",
            "Cache operations this process made in its own memory because Redis did not answer.",
        )
        fallback.add_metric([], fallback_operations())
        yield fallback

    def clusters(self):
        states = watchdog.states()
        restarts = GaugeMetricFamily(
            "backfill_cluster_restarts", "Times the watchdog restarted a django-q2 cluster.", labels=["cluster"]
        )
        idle = GaugeMetricFamily(
            "backfill_cluster_last_job_age_seconds",
            "Seconds since a cluster's worker last finished a job (the watchdog checks every few seconds).",
            labels=["cluster"],
        )
        stalled = GaugeMetricFamily(
            "backfill_cluster_stalled", "1 while a cluster holds work and runs none.", labels=["cluster"]
        )
        for state in states:
            restarts.add_metric([state.cluster], state.restarts)
            if state.last_finished_at:
                idle.add_metric([state.cluster], (state.db_now - state.last_finished_at).total_seconds())
            stalled.add_metric([state.cluster], int(bool(watchdog.stall_reason(state))))
        yield from (restarts, idle, stalled)

    def time_to_fill(self):
        filled = FreedSlot.objects.filter(status=FreedSlot.Status.BACKFILLED, fill_ms__isnull=False)
        counts = filled.aggregate(
            total=Count("pk"),
            sum_ms=Sum("fill_ms"),
            **{
                f"le_{index}": Count("pk", filter=Q(fill_ms__lte=bound * 1000))
                for index, bound in enumerate(TIME_TO_FILL_BUCKETS)
            },
        )
        buckets = [(str(bound), counts[f"le_{index}"]) for index, bound in enumerate(TIME_TO_FILL_BUCKETS)]
        buckets.append(("+Inf", counts["total"]))
        histogram = HistogramMetricFamily(
            "backfill_time_to_fill_seconds", "Time from a slot being freed to its replacement booked."
        )
        histogram.add_metric([], buckets, sum_value=(counts["sum_ms"] or 0) / 1000)
        return histogram

    def slots(self):
        yield by_status(FreedSlot, "backfill_freed_slots", "Freed slots by status.")
        now = timezone.now()
        open_slots = FreedSlot.objects.filter(status__in=FreedSlot.FILLABLE, start__gt=now)
        summary = open_slots.aggregate(n=Count("pk"), oldest=Min("freed_at"))
        count = GaugeMetricFamily("backfill_open_slots", "Freed slots still open or unmatched, before their start.")
        count.add_metric([], summary["n"])
        yield count
        age = GaugeMetricFamily("backfill_oldest_open_slot_age_seconds", "How long the oldest open slot has waited.")
        age.add_metric([], (now - summary["oldest"]).total_seconds() if summary["oldest"] else 0)
        yield age

    def messages(self):
        return by_status(OutboundEmail, "backfill_messages", "Stored outgoing messages by status.")


def by_status(model, name, documentation):
    """A gauge of the model's rows by status, each of its statuses listed (0 when it has none)."""
    counts = dict(model.objects.values_list("status").annotate(n=Count("pk")).order_by())
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in model.Status.values:
        family.add_metric([status], counts.get(status, 0))
    return family
