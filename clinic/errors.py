"""Server errors answer like the rest of the site: JSON under /api/, and 503 for an outage.

Django calls `handler500` while it handles the exception, so the error is at hand in
sys.exc_info(). A database or broker that is down (a restart, a failover) answers 503 with
Retry-After, never an HTML 500, whatever part of the request met it (docs/reference.md, Production).

Django's `django.request` logger writes the traceback (LOGGING in config/settings.py), and
`count_unhandled_error` counts each one for /metrics: in the shared cache, so that every
web process answers the same count.
"""

import logging
import sys

from django.core.cache import cache
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import JsonResponse
from django.shortcuts import render
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("clinic")

RETRY_AFTER_SECONDS = 5
# What an outage raises: a connection refused, dropped or timed out (psycopg_pool's
# PoolTimeout reaches Django as an OperationalError). A bad query is a bug, not an outage.
OUTAGES = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
JSON_PATHS = ("/api/", "/fhir/", "/metrics", "/healthz", "/readyz")
ERROR_KINDS = ("error", "outage")


def error_kind(error):
    return "outage" if isinstance(error, OUTAGES) else "error"


@receiver(got_request_exception)
def count_unhandled_error(sender, request=None, **kwargs):
    key = f"unhandled_errors.{error_kind(sys.exc_info()[1])}"
    try:
        cache.add(key, 0, timeout=None)
        cache.incr(key)
    except Exception as error:  # the cache (Redis) may be what failed; the traceback is logged all the same
        log.warning("unhandled_error.not_counted error=%s", type(error).__name__)


def unhandled_error_counts():
    """{kind: count} since the cache was last emptied; {} while the cache is unreachable."""
    try:
        counts = cache.get_many([f"unhandled_errors.{kind}" for kind in ERROR_KINDS])
    except Exception:  # /metrics still answers the rest
        return {}
    return {kind: counts.get(f"unhandled_errors.{kind}", 0) for kind in ERROR_KINDS}


def server_error(request):
    outage = error_kind(sys.exc_info()[1]) == "outage"
    status = 503 if outage else 500
    if outage:
        log.warning("service.unavailable path=%s error=%s", request.path, type(sys.exc_info()[1]).__name__)
    if request.path.startswith(JSON_PATHS):
        detail = (
            "The clinic's database or queue is briefly unavailable. Retry shortly."
            if outage
            else "Something went wrong on our side. The error is logged; retry shortly."
        )
        response = JsonResponse({"detail": detail}, status=status)
    else:
        response = render(request, "503.html" if outage else "500.html", status=status)
    if outage:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
