"""Idempotency-Key on every POST under /api/ (docs/reference.md, External ids).

An integrator that timed out retries its POST with the same key; it must not create a
second patient or appointment. The first request claims the key with a row committed before
the view runs (the unique constraint decides between two at once); its answer is stored on
that row. A retry with the same body gets the stored answer again, with
`Idempotent-Replayed: true`; with another body, 422; while the first is still being handled,
the retry waits a little for its answer, then gets 409. A server error frees the key, so a
retry can try again. Keys are kept for IDEMPOTENCY_HOURS, per account; a request that is not
authenticated keeps nothing (the API refuses it anyway).
"""

import hashlib
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from clinic.models import IdempotentRequest

HEADER = "Idempotency-Key"
WAIT_FOR_FIRST_SECONDS = 5


def digest(data):
    return hashlib.sha256(data).hexdigest()


def caller_of(request):
    """The account that asked ("user:<id>"), or None when the request is not authenticated.

    Keys are scoped to the account, not to how the credentials were spelt: `Token X`,
    `token X` and `Token  X` are one caller. The token is read the way the API reads it
    (TokenAuthentication, which the API tries first); then the staff session.
    """
    try:
        found = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None  # the view answers 401; there is nothing to remember
    user = found[0] if found else getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return f"user:{user.pk}"


class IdempotencyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get(HEADER, "").strip()
        if request.method != "POST" or not key or not request.path.startswith("/api/"):
            return self.get_response(request)
        if len(key) > 200:
            return JsonResponse({"detail": f"{HEADER} is at most 200 characters."}, status=400)
        caller = caller_of(request)
        if caller is None:  # refused by the view anyway; an anonymous key must not take a row
            return self.get_response(request)
        claim = dict(caller=caller, key=key)
        body = digest(request.body)
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(
                    **claim, method=request.method, path=request.path, body_digest=body
                )
        except IntegrityError:
            return self.answer_again(claim, request, body)
        response = self.get_response(request)
        if response.status_code >= 500:
            record.delete()  # nothing to keep: the retry may try again
            return response
        record.status_code = response.status_code
        record.response_body = response.content
        record.content_type = response.get("Content-Type", "")
        record.save(update_fields=["status_code", "response_body", "content_type"])
        return response

    def answer_again(self, claim, request, body):
        deadline = time.monotonic() + WAIT_FOR_FIRST_SECONDS
        while True:
            record = IdempotentRequest.objects.filter(**claim).first()
            if record is None:  # the first failed and let go of the key: this one goes ahead
                return self(request)
            if record.path != request.path or record.body_digest != body:
                return JsonResponse(
                    {"detail": f"This {HEADER} was used for another request; use a new key."}, status=422
                )
            if record.status_code is not None:
                response = HttpResponse(
                    bytes(record.response_body),
                    status=record.status_code,
                    content_type=record.content_type or "application/json",
                )
                response["Idempotent-Replayed"] = "true"
                return response
            if time.monotonic() > deadline:
                response = JsonResponse(
                    {"detail": "A request with this key is still being handled; retry shortly."}, status=409
                )
                response["Retry-After"] = "2"
                return response
            time.sleep(0.05)


def forget_old_keys(now):
    """For the sweep: keys older than IDEMPOTENCY_HOURS are free again."""
    return IdempotentRequest.objects.filter(created_at__lt=now - timedelta(hours=settings.IDEMPOTENCY_HOURS)).delete()[
        0
    ]
