"""Texts: the backends that send them, in the manner of Django's email backends, and what
a text may hold (docs/reference.md, Messages; texts are stored and sent by clinic.email's outbox like emails).

`SMS_BACKEND` names the backend: "console", "locmem" (tests read `clinic.sms.outbox`),
"twilio", or a dotted path to a class with `send(to, body, status_callback)` returning the
provider's message id.
"""

import secrets
import sys

from django.conf import settings
from django.urls import reverse
from django.utils.module_loading import import_string
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from clinic import prepared
from clinic.models import OutboundEmail, ShortLink

# Sent texts, for tests (the locmem backend), as django.core.mail.outbox is for emails.
outbox = []

# GSM 03.38's basic character set and its extension table (each extension character
# costs two). A text in it fits 160 characters, 153 per segment when split; one character
# outside it makes the whole text UCS-2: 70, or 67 per segment.
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€")
# Typographic characters a template or a name may carry, and their GSM-7 stand-ins: one
# curly apostrophe would otherwise more than halve what a segment holds. Spanish keeps é, ñ,
# ü, ¿ and ¡ (GSM-7 has them) and writes á, í, ó, ú without their accent, as phones and
# carriers' own "smart encoding" do.
GSM_STAND_INS = str.maketrans(
    {
        **{"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "\u00a0": " "},
        **dict(zip("áíóúÁÍÓÚâêîôû", "aiouAIOUaeiou", strict=True)),
    }
)
MAX_SEGMENTS = 2


def gsm_friendly(text):
    return text.translate(GSM_STAND_INS)


def is_gsm7(text):
    return all(char in GSM_BASIC or char in GSM_EXTENDED for char in text)


def segments(text):
    """How many SMS segments the text takes."""
    if is_gsm7(text):
        units, single, multi = sum(2 if char in GSM_EXTENDED else 1 for char in text), 160, 153
    else:
        units, single, multi = len(text), 70, 67
    if units <= single:
        return 1
    return -(-units // multi)


def short_link(url):
    """A short URL for a text that forwards to `url` (a signed patient link)."""
    (link,) = prepared.insert([ShortLink(code=secrets.token_urlsafe(6), url=url)])
    return settings.SITE_URL + reverse("short-link", kwargs={"code": link.code})


# The one link each kind of text carries (`{{ short.<action> }}` in templates/sms/): a text
# has room for one, and its row is made before the template renders, never by rendering it.
LINK_IN_TEXT = {
    OutboundEmail.Kind.BACKFILL_CONFIRMATION: "manage",
    OutboundEmail.Kind.WAITLIST_NOTICE: "manage",
    OutboundEmail.Kind.REASSIGNMENT_OFFER: "accept",
    OutboundEmail.Kind.SLOT_OFFER: "accept",
}


def short_links_for(kind, links):
    """{action: short URL} for the one link a text of this kind carries, if it has one."""
    action = LINK_IN_TEXT.get(kind)
    if action is None or action not in links:
        return {}
    return {action: short_link(links[action])}


def status_callback_url():
    base = settings.TWILIO_WEBHOOK_BASE_URL or settings.SITE_URL
    return base + reverse("twilio-status")


def webhook_url(request):
    """The URL Twilio signed: the configured public base and the path it called."""
    base = settings.TWILIO_WEBHOOK_BASE_URL or settings.SITE_URL
    return base + request.get_full_path()


def signature_is_valid(request):
    signature = request.headers.get("X-Twilio-Signature", "")
    if not (settings.TWILIO_AUTH_TOKEN and signature):
        return False
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(webhook_url(request), request.POST.dict(), signature)


class ConsoleBackend:
    def send(self, to, body, status_callback=None):
        sys.stdout.write(f"--- text to {to} ---\n{body}\n")
        sys.stdout.flush()
        return f"console-{secrets.token_hex(8)}"


class LocmemBackend:
    """Keeps texts in `clinic.sms.outbox`. A test makes the next send fail by setting
    `LocmemBackend.fail_with` to an exception."""

    fail_with = None

    def send(self, to, body, status_callback=None):
        if LocmemBackend.fail_with is not None:
            raise LocmemBackend.fail_with
        sid = f"SM{secrets.token_hex(16)}"
        outbox.append({"to": to, "body": body, "sid": sid, "status_callback": status_callback})
        return sid


class TwilioBackend:
    """Sends through Twilio's Messages API with its official library. `http_client` is the
    library's own hook (twilio.http.HttpClient); tests pass a fake one."""

    def __init__(self, http_client=None):
        self.client = Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)

    def send(self, to, body, status_callback=None):
        sender = (
            {"messaging_service_sid": settings.TWILIO_MESSAGING_SERVICE_SID}
            if settings.TWILIO_MESSAGING_SERVICE_SID
            else {"from_": settings.TWILIO_FROM_NUMBER}
        )
        message = self.client.messages.create(to=to, body=body, status_callback=status_callback, **sender)
        return message.sid


BACKENDS = {"console": ConsoleBackend, "locmem": LocmemBackend, "twilio": TwilioBackend}


def get_backend():
    name = settings.SMS_BACKEND
    return (BACKENDS.get(name) or import_string(name))()


def send_text(to, body):
    """Send one text now; returns the provider's message id. Raises on failure."""
    return get_backend().send(to, body, status_callback=status_callback_url())
