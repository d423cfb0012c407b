"""Who may open the staff pages (schedule, outbox, dashboard)."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


def staff_required(view):
    """Anonymous visitors go to the login page; a logged-in patient or other non-staff gets 403.

    Django's own staff_member_required sends non-staff back to the admin login, which looks
    like a broken login to someone who has just logged in.
    """

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("These pages are for clinic staff.")
        return view(request, *args, **kwargs)

    return guarded
