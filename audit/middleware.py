"""Each web request acts as its logged-in user (or as the patient behind a link, or the
sender of a text), through the entry point its path names."""

from audit import context
from audit.context import Channel

# Pages a patient reaches from a link in a message, without logging in.
PATIENT_PATHS = ("/appointments/", "/offers/", "/my/", "/l/", "/unsubscribe/")


def channel_of(path):
    if path.startswith("/admin/"):
        return Channel.ADMIN
    if path.startswith(("/api/", "/fhir/")):
        return Channel.API
    if path.startswith("/sms/"):
        return Channel.TEXT
    if path.startswith(PATIENT_PATHS):
        return Channel.PATIENT_LINK
    return Channel.STAFF_PAGE


def actor_of(request, channel):
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return context.user_label(user), user
    if channel == Channel.PATIENT_LINK:
        return "patient (through their link)", None
    if channel == Channel.TEXT:
        return "patient (by text)", None
    return "anonymous visitor", None


class AuditMiddleware:
    """After Django's authentication, so the session's user is known; the API's token
    authentication names its token later, through `context.identify`."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        channel = channel_of(request.path)
        actor, user = actor_of(request, channel)
        with context.acting(actor, channel, user):
            return self.get_response(request)
