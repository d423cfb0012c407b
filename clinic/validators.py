"""Free text that ends up in emails, pages, logs and headers is one line of printable text."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from clinic.addresses import AddressRefused, check_url


@deconstructible
class SingleLine:
    """Refuses newlines and other control characters: in a provider's name they broke email
    headers (BadHeaderError), in a cancel reason they forged log lines."""

    message = "Use a single line of text, without line breaks or control characters."

    def __call__(self, value):
        if any(not char.isprintable() for char in str(value)):
            raise ValidationError(self.message, code="control_characters")

    def __eq__(self, other):
        return isinstance(other, SingleLine)


single_line = SingleLine()


def time_zone_name(value):
    """An IANA time zone name such as "America/Los_Angeles"."""
    try:
        ZoneInfo(str(value))
    except (ValueError, OSError, ZoneInfoNotFoundError):  # OSError: a name too long to be a file
        raise ValidationError(
            f'"{value}" is not a time zone; use an IANA name such as "America/Los_Angeles".', code="time_zone"
        ) from None


def outside_url(value):
    """A URL the server may POST to: http(s), no credentials, not an internal address
    (clinic/addresses.py; WEBHOOK_ALLOW_PRIVATE lets the demo's and tests' loopback through)."""
    try:
        check_url(str(value), allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
    except AddressRefused as refused:
        raise ValidationError(refused.reason, code="url_refused") from None
