"""What the site refuses before any view reads it: bad input gets a 400, never a 500.

- NUL characters anywhere in the address or a submitted form. PostgreSQL refuses them in
  text ("A string literal cannot contain NUL (0x00) characters"), so `?identifier=%00` on
  the FHIR view, an admin filter or a signed Twilio callback raised in the driver; SQLite
  took them. No field of Backfill's holds one, so the whole site refuses them alike.
- JSON bodies nested deeper than MAX_JSON_DEPTH: a body nested 100,000 deep raised
  RecursionError in the parser. (A NUL in a JSON string is left to the serializers: DRF's
  CharField refuses it, naming the field.)
"""

from django.http import JsonResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from clinic.errors import JSON_PATHS

NUL = "\x00"
# Lazy: a patient's page answers in the patient's language (clinic/languages.py).
NUL_REFUSED = gettext_lazy("NUL characters (%00) are not accepted in an address or a form.")
UNREADABLE_FORM = gettext_lazy("The form could not be read: check its Content-Type.")
# An API body is a flat object with a list or two (webhook events); 64 levels is far more.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels is not accepted."
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if NUL in request.path or has_nul(request.GET):
            return refusal(request, NUL_REFUSED)
        if request.method == "POST" and request.content_type in FORMS:
            try:
                form = read_form(request)
            except MultiPartParserError:  # e.g. multipart/form-data without its boundary
                return refusal(request, UNREADABLE_FORM)
            if has_nul(form):
                return refusal(request, NUL_REFUSED)
        return self.get_response(request)


def read_form(request):
    """The submitted form, parsed once and kept for the view. The body is read first, so it
    is kept in memory (Django's DATA_UPLOAD_MAX_MEMORY_SIZE bounds it) and stays readable:
    parsing a multipart stream would consume it, and the idempotency middleware reads it."""
    body = request.body
    return request.POST if body else QueryDict()


def has_nul(query):
    return any(NUL in name or NUL in value for name, value in pairs(query))


def pairs(query):
    return ((name, value) for name, values in query.lists() for value in values)


def refusal(request, text):
    if request.path.startswith("/fhir/"):
        issue = {"severity": "error", "code": "invalid", "diagnostics": text}
        response = JsonResponse({"resourceType": "OperationOutcome", "issue": [issue]}, status=400)
        response["Content-Type"] = "application/fhir+json"
        return response
    if request.path.startswith(JSON_PATHS):
        return JsonResponse({"detail": text}, status=400)
    return render(request, "400.html", {"problem": text}, status=400)


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, refusing JSON nested deeper than MAX_JSON_DEPTH."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:  # json's decoder recurses once per level
            raise ParseError(TOO_DEEP) from None
        if depth(data) > MAX_JSON_DEPTH:
            raise ParseError(TOO_DEEP)
        return data


def depth(data):
    """How deep arrays and objects nest (a scalar: 0), walked without recursion."""
    deepest, pending = 0, [(data, 1)]
    while pending:
        value, level = pending.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            pending.extend((child, level + 1) for child in (value.values() if isinstance(value, dict) else value))
    return deepest
