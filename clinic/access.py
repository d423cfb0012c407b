"""Who may do what: Django permissions on pages, admin actions and the API (docs/reference.md, Production).

The roles are groups created by a migration (`backfill/migrations/0005_roles.py`): Front
desk, Clinic manager, Integrator. Every check below asks for a permission, never only for
`is_staff`, so a staff account in no group sees and changes nothing.
"""

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from rest_framework import authentication, exceptions, permissions, throttling

from audit import context as audit_context
from clinic.models import ApiToken


def staff_page(permission):
    """A staff page that needs `permission` ("app.codename").

    Anonymous visitors go to the login page; a logged-in account without the permission
    gets 403. Django's own staff_member_required sends them back to the admin login, which
    looks like a broken login to someone who has just logged in.
    """

    def decorate(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not request.user.has_perm(permission):
                raise PermissionDenied("Your account does not have access to this page. Ask a clinic manager.")
            return view(request, *args, **kwargs)

        return guarded

    return decorate


class TokenAuthentication(authentication.TokenAuthentication):
    """`Authorization: Token <key>`: a named token (ApiToken), or DRF's one key per account.
    The audit trail names the token's account (and the token's name)."""

    def authenticate_credentials(self, key):
        if not key.startswith(ApiToken.PREFIX):
            user, token = super().authenticate_credentials(key)
            audit_context.identify(f"{audit_context.user_label(user)} (API token)", user=user)
            return user, token
        named = ApiToken.for_key(key)
        if named is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not named.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        named.note_use()
        audit_context.identify(f"{audit_context.user_label(named.user)} (API token “{named.name}”)", user=named.user)
        return named.user, named


def reads_message_content(user):
    """Whether `user` may read what messages say: their subjects and bodies hold the
    patient's own links (cancel, self-service, unsubscribe), which act as the patient.
    Front desk and Clinic manager may; an Integrator sees only a message's kind, channel,
    status and times (the API's /api/messages/ and the messages page alike)."""
    return user.has_perm("clinic.read_message_content")


class ModelPermissions(permissions.DjangoModelPermissions):
    """The model's Django permissions, reads included: listing patients needs view_patient.

    An endpoint that is not backed by a queryset names its permission instead, as
    `required_permission` on the view. An action that changes a record through a POST
    (cancel, retry, book) says which of the model's verbs it is, in `action_verbs`
    ({"cancel": "change"}), since a POST would otherwise ask for "add".
    """

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated and request.user.is_active):
            return False
        required = getattr(view, "required_permission", None)
        if required:
            return request.user.has_perm(required)
        verb = getattr(view, "action_verbs", {}).get(getattr(view, "action", None))
        if verb:
            model = self._queryset(view).model._meta
            return request.user.has_perm(f"{model.app_label}.{verb}_{model.model_name}")
        return super().has_permission(request, view)


def client_address(request):
    """The client's address: REMOTE_ADDR, or with PROXY_COUNT proxies in front, the address
    the outermost trusted proxy saw (that many entries from the right of X-Forwarded-For).

    Without PROXY_COUNT the header is ignored: anyone can send one, and a throttle counting
    it would count whatever the client wrote. The throttles (DRF's NUM_PROXIES rule) and
    the login lockout (AXES_CLIENT_IP_CALLABLE) all ask here.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if not settings.PROXY_COUNT or not forwarded:
        return remote
    hops = [hop.strip() for hop in forwarded.split(",")]
    return hops[-min(settings.PROXY_COUNT, len(hops))] or remote


class ClientAddress:
    """Throttles count clients by client_address, read per request (DRF reads NUM_PROXIES
    once, at import)."""

    def get_ident(self, request):
        return client_address(request)


class PerTokenThrottle(ClientAddress, throttling.SimpleRateThrottle):
    """API_THROTTLE_RATE per API token (or per staff session); past it, 429 with Retry-After."""

    scope = "api"

    def get_rate(self):
        # Read at each request, not at import as DRF's THROTTLE_RATES is.
        return settings.API_THROTTLE_RATE

    def get_cache_key(self, request, view):
        token = getattr(request.auth, "key", None)
        if token:
            return f"throttle:api:token:{token[:12]}"
        if request.user and request.user.is_authenticated:
            return f"throttle:api:user:{request.user.pk}"
        return f"throttle:api:anon:{self.get_ident(request)}"


class PatientLinkThrottle(ClientAddress, throttling.SimpleRateThrottle):
    """PATIENT_LINK_THROTTLE_RATE per client address on the pages behind patients' links:
    a token is long, but nobody needs hundreds of tries a minute."""

    scope = "patient_link"

    def get_rate(self):
        return settings.PATIENT_LINK_THROTTLE_RATE

    def get_cache_key(self, request, view):
        return f"throttle:patient_link:{self.get_ident(request)}"


def throttled_per_client(view):
    """Patient link pages: past the rate, a 429 page that says when to try again."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        throttle = PatientLinkThrottle()
        if not throttle.allow_request(request, None):
            wait = int(throttle.wait() or 60) + 1
            response = render(request, "patient/too_many_requests.html", {"wait_seconds": wait}, status=429)
            response["Retry-After"] = str(wait)
            return response
        return view(request, *args, **kwargs)

    return guarded
