"""Who is acting, and through which entry point: what every audit entry records.

One value per thread (or task), set by the outermost entry point and read by the audit
triggers of every write beneath it:

- web requests: `audit.middleware.AuditMiddleware` (the channel from the path, the
  logged-in user); the API's token authentication names the token (`identify`);
- django-q2 jobs: `audit.apps` wraps every task run ("job: <function>");
- management commands and anything else: the process's own name (`fallback`), so a
  `manage.py shell` edit still says where it came from.

On PostgreSQL the value reaches the triggers as a session setting sent before each audited
write (`audit.database`); on SQLite the triggers call back into Python for it.
"""

import json
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path


class Channel:
    """The entry points, in the words of clinic.actions.Via where it has one."""

    STAFF_PAGE = "staff_page"
    ADMIN = "admin"
    API = "api"
    PATIENT_LINK = "patient_link"
    TEXT = "text_reply"
    FEED = "feed"
    JOB = "job"
    COMMAND = "command"
    DATABASE = "database"  # a write no entry point announced: SQL typed into the database


@dataclass(frozen=True)
class Actor:
    actor: str
    channel: str
    user: int | None = None
    # The trail records which columns changed but not their values (an erasure).
    conceal: bool = False

    def as_json(self):
        return json.dumps(asdict(self))


_current = ContextVar("audit_actor", default=None)


def fallback():
    """Who acts when no entry point said: the command this process runs."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    command = next((arg for arg in sys.argv[1:2] if not arg.startswith("-")), "")
    if program != "manage.py":
        return Actor(program or "system", Channel.COMMAND)
    if command == "qcluster":
        return Actor("task queue", Channel.JOB)
    return Actor(f"manage.py {command}".strip(), Channel.COMMAND)


def current():
    return _current.get() or fallback()


def begin(actor, channel, user=None):
    """Set who acts until `end(token)`; returns the token."""
    return _current.set(Actor(str(actor)[:200], channel, getattr(user, "pk", user)))


def end(token):
    _current.reset(token)


@contextmanager
def acting(actor, channel, user=None):
    """Everything written inside is recorded as done by `actor` through `channel`."""
    token = begin(actor, channel, user)
    try:
        yield
    finally:
        end(token)


@contextmanager
def concealing():
    """Writes inside are recorded by who and what changed, without the values."""
    who = current()
    token = _current.set(Actor(who.actor, who.channel, who.user, conceal=True))
    try:
        yield
    finally:
        _current.reset(token)


def identify(actor, user=None, channel=None):
    """Name the actor of the entry point already open (a token read by the API's
    authentication, a patient read from their link): the entry point's end resets it."""
    channel = channel or current().channel
    _current.set(Actor(str(actor)[:200], channel, getattr(user, "pk", user)))


def user_label(user):
    return user.get_username()
