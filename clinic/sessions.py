"""Staff sessions end after SESSION_IDLE_MINUTES without a request, and SESSION_MAX_HOURS
after the login whatever happens: a login left open on a front-desk computer does not stay
open for the next person (docs/operations.md).

The session keeps when it began and when it was last used; the last use is written at
most once a minute, so a busy page does not write its session on every request.
"""

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.utils import timezone

STARTED, SEEN = "session_started_at", "session_seen_at"
SEEN_WRITE_SECONDS = 60


@receiver(user_logged_in)
def start_the_clocks(sender, request, user, **kwargs):
    request.session[STARTED] = request.session[SEEN] = timezone.now().timestamp()


class StaffSessionLimits:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            self.check(request, timezone.now().timestamp())
        return self.get_response(request)

    def check(self, request, now):
        session = request.session
        if STARTED not in session:  # a session from before these limits: they start now
            session[STARTED] = session[SEEN] = now
        started, seen = session[STARTED], session[SEEN]
        if now - seen > settings.SESSION_IDLE_MINUTES * 60 or now - started > settings.SESSION_MAX_HOURS * 3600:
            logout(request)  # the view then sees an anonymous visitor: the login page
            return
        if now - seen >= SEEN_WRITE_SECONDS:
            session[SEEN] = now
