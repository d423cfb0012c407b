"""Log lines that values cannot forge."""

import logging


class OneLineFormatter(logging.Formatter):
    """Escapes newlines and other control characters in the formatted message.

    A cancel reason typed as "late\\n2026-12-02 ... [BACKFILL] Auto-backfilled ..." would
    otherwise write a line of its own into logs/api.log. Tracebacks are appended after the
    escaped message as usual.
    """

    def formatMessage(self, record):
        return escape_controls(super().formatMessage(record))


def escape_controls(text):
    if text.isprintable():  # nearly every line: no need to look at each character
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


class UnhandledErrorsOnly(logging.Filter):
    """Django's `django.request` also logs each 5xx answer a view chose to give (/readyz's 503
    at every probe while not ready): an answer, not an error. Kept: those with a traceback."""

    def filter(self, record):
        return record.exc_info is not None
