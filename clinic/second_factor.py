"""A second factor for staff (django-otp): an authenticator app (TOTP) and recovery codes.

An account in one of MFA_REQUIRED_ROLES (and any superuser) that logged in with its password
alone reaches these pages and nothing else, until it enrols a device (first login) or
confirms a code from one (every later login). API tokens are not sessions and are not asked.
"""

from base64 import b32encode
from functools import wraps

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login
from django_otp import match_token, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_CODES = 10
APP_DEVICE = "Authenticator app"
RECOVERY_DEVICE = "Recovery codes"


def needs_second_factor(user):
    if not settings.MFA_REQUIRED_ROLES or not user.is_authenticated:
        return False
    return user.is_superuser or user.groups.filter(name__in=settings.MFA_REQUIRED_ROLES).exists()


class RequireSecondFactor:
    """After django-otp's OTPMiddleware: a session not yet confirmed by a second factor, of
    an account that needs one, reaches only the second-factor pages and logging out."""

    OPEN = ("/accounts/two-factor/", "/accounts/logout/", "/static/", "/healthz", "/readyz")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not user.is_verified() and not request.path.startswith(self.OPEN):
            if needs_second_factor(user):
                if request.path.startswith("/api/"):
                    return JsonResponse(
                        {"detail": "Confirm your second factor at /accounts/two-factor/ first."}, status=403
                    )
                return redirect_to_login(request.get_full_path(), login_url=reverse("second-factor"))
        return self.get_response(request)


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=16,
        strip=True,
        label="Code",
        error_messages={"required": "Type the code your authenticator app shows."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


def logged_in(view):
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return guarded


def _next(request):
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return settings.LOGIN_REDIRECT_URL


@logged_in
def confirm(request):
    """Every login after the first: a code from the app, or one recovery code."""
    user = request.user
    if not user_has_device(user):
        return redirect(f"{reverse('second-factor-enrol')}?next={_next(request)}")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(user, form.cleaned_data["code"].replace(" ", ""))
        if device is not None:
            otp_login(request, device)
            return redirect(_next(request))
        form.add_error("code", "That code is not right, or has been used. Try the next one.")
    return render(request, "registration/second_factor.html", {"form": form, "next": _next(request)})


@logged_in
def enrol(request):
    """The first login: add the authenticator app, then get the recovery codes, once.

    With a device already confirmed, a password alone cannot add another: the session
    must be confirmed first (else a stolen password could enrol the thief's phone).
    """
    user = request.user
    if user_has_device(user) and not user.is_verified():
        return redirect(f"{reverse('second-factor')}?next={_next(request)}")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first() or TOTPDevice.objects.create(
        user=user, name=APP_DEVICE, confirmed=False
    )
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["code"].replace(" ", "")):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            return render(
                request,
                "registration/recovery_codes.html",
                {"codes": new_recovery_codes(user), "next": _next(request)},
            )
        form.add_error("code", "That code is not right. Check the app's clock, and type the code it shows now.")
    context = {
        "form": form,
        "next": _next(request),
        "secret": _base32(device),
        "qr_svg": _qr_svg(device.config_url),
    }
    return render(request, "registration/second_factor_enrol.html", context)


def new_recovery_codes(user):
    """Ten single-use codes for a lost phone; any older ones stop working."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY_DEVICE, defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def _base32(device):
    return " ".join(b32encode(device.bin_key).decode().rstrip("=")[i : i + 4] for i in range(0, 32, 4)).strip()


def _qr_svg(url):
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return image.to_string(encoding="unicode")
