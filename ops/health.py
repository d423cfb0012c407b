"""What an operator's tools ask: is the process up, is it ready, how is it doing (docs/reference.md, Production).

`/healthz` answers as long as the process does. `/readyz` answers 503 when Backfill cannot do
its job: the database or the broker is unreachable, the sweep has stopped running (no
`qcluster`), a cluster holds work and runs none (ops/watchdog.py), or an open freed slot
has waited too long for its job; which check failed is told only to a client on the machine
and to the roles that read the metrics (ops/metrics.py).
"""

import ipaddress

from django.conf import settings
from django.db import connection
from django.db.models import Max, Min
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_q.models import Schedule

from backfill.models import FreedSlot
from clinic.access import client_address
from clinic.queue import shared_broker
from ops import watchdog
from ops.metrics import may_read_metrics
from ops.sweep import SWEEP_FUNC


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
    """The django-q2 clusters run jobs: the watchdog's check job has not waited in vain (ops/watchdog.py)."""
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
