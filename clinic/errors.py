"""Server errors answer like the rest of the site: JSON under /api/, and 503 for an outage.

Django calls `handler500` while it handles the exception, so the error is at hand in
sys.exc_info(). A database or broker that is down (a restart, a failover) answers 503 with
Retry-After, never an HTML 500, whatever part of the request met it (SPEC 10).
"""

import logging
import sys

from django.db import InterfaceError, OperationalError
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


def server_error(request):
    outage = isinstance(sys.exc_info()[1], OUTAGES)
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
