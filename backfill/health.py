"""What an operator's tools ask: is the process up, is it ready, how is it doing (docs/reference.md, Production).

`/healthz` answers as long as the process does. `/readyz` answers 503 when Backfill cannot do
its job: the database or the broker is unreachable, the sweep has stopped running (no
`qcluster`), a cluster holds work and runs none (clinic/watchdog.py), or an open freed slot
has waited too long for its job; which check failed is told only to a client on the machine
and to the roles that read the metrics. `/metrics` is the
Prometheus text format, read from the database at each scrape, so every process answers
the same whatever process did the work.
"""

import hmac
import ipaddress

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_q.models import Schedule
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from backfill.models import FreedSlot
from clinic import watchdog
from clinic.access import client_address
from clinic.cache import RedisWithLocalFallback, fallback_operations
from clinic.errors import unhandled_error_counts
from clinic.models import OutboundEmail
from clinic.queue import shared_broker

SWEEP_FUNC = "backfill.tasks.sweep"
# Seconds from a slot being freed to its replacement booked: milliseconds normally, up to
# the sweep's retries when a job was lost.
TIME_TO_FILL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    checks = {}
    for name, check in READY_CHECKS:
        try:
            checks[name] = check()
        except Exception as error:  # an unreachable service raises; that is the answer
            checks[name] = {"ok": False, "detail": f"{type(error).__name__}: {error}"[:200]}
        if not checks[name]["ok"] and name == "database":
            break  # the remaining checks read the database too
    ready = len(checks) == len(READY_CHECKS) and all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "unavailable"}
    # The checks name internal addresses and the queue's state: for the operator's probe on
    # the machine itself and for the roles that read the metrics, not for anyone who asks.
    if client_is_loopback(request) or may_read_metrics(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if ready else 503)


def client_is_loopback(request):
    """The client is on this machine (behind PROXY_COUNT proxies, the address they forwarded:
    a loopback peer is then only the proxy)."""
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:
        return False


def database_check():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def broker_check():
    return {"ok": bool(shared_broker().ping())}


def sweep_check():
    """The sweep is a pair of schedules: their next runs fall behind once no qcluster runs them."""
    next_run = Schedule.objects.filter(func=SWEEP_FUNC).aggregate(latest=Max("next_run"))["latest"]
    if next_run is None:
        return {"ok": False, "detail": "the sweep's schedule is missing: run the migrations"}
    overdue = (timezone.now() - next_run).total_seconds()
    if overdue < settings.READY_SWEEP_STALE_SECONDS:
        # django-q2's scheduler looks every 30 s, so a run a little late is still on time.
        return {"ok": True, "detail": "running"}
    return {"ok": False, "detail": f"{overdue:.0f} s overdue (is a qcluster running?)"}


def clusters_check():
    """The django-q2 clusters run jobs: the watchdog's check job has not waited in vain (clinic/watchdog.py)."""
    states = watchdog.states()
    if not states:
        return {"ok": True, "detail": "not watched (no supervise_qcluster)"}
    stalled = [f"{state.cluster}: {reason}" for state in states if (reason := watchdog.stall_reason(state))]
    if stalled:
        return {"ok": False, "detail": "; ".join(stalled)}
    restarted = [
        f"{state.cluster} restarted {state.restarts} times, last"
        f" {timezone.localtime(state.last_restart_at):%Y-%m-%d %H:%M:%S} ({state.last_restart_reason})"
        for state in states
        if state.restarts
    ]
    return {"ok": True, "detail": "; ".join(restarted) or "running"}


def open_slots_check():
    """An open slot is handled in milliseconds; one waiting minutes is stuck."""
    now = timezone.now()
    waiting_since = FreedSlot.objects.filter(status=FreedSlot.Status.OPEN, start__gt=now).aggregate(
        oldest=Min("freed_at")
    )["oldest"]
    if waiting_since is None:
        return {"ok": True, "detail": "none open"}
    age = (now - waiting_since).total_seconds()
    return {"ok": age < settings.READY_SLOT_STUCK_SECONDS, "detail": f"oldest open for {age:.0f} s"}


READY_CHECKS = (
    ("database", database_check),
    ("broker", broker_check),
    ("sweep", sweep_check),
    ("clusters", clusters_check),
    ("open_slots", open_slots_check),
)


# Collectors apps above this one add when they are ready (the HL7 interface's messages).
MORE_COLLECTORS = []


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
    for collector in MORE_COLLECTORS:
        registry.register(collector)
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
        by_status = dict(FreedSlot.objects.values_list("status").annotate(n=Count("pk")).order_by())
        freed = GaugeMetricFamily("backfill_freed_slots", "Freed slots by status.", labels=["status"])
        for status in FreedSlot.Status.values:
            freed.add_metric([status], by_status.get(status, 0))
        yield freed
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
        by_status = dict(OutboundEmail.objects.values_list("status").annotate(n=Count("pk")).order_by())
        family = GaugeMetricFamily("backfill_messages", "Stored outgoing messages by status.", labels=["status"])
        for status in OutboundEmail.Status.values:
            family.add_metric([status], by_status.get(status, 0))
        return family
