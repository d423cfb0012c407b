"""The admin's lists answer 400 for a filter value out of range, never a 500."""

from django.contrib import admin
from django.http import HttpResponseBadRequest


class ClinicModelAdmin(admin.ModelAdmin):
    """Every model admin of Backfill.

    `?start__year=99999999999` reached datetime() and raised OverflowError; a number too
    large for the database column does the same in the driver. The list is built and
    rendered here, so whatever value does that answers 400.
    """

    def changelist_view(self, request, extra_context=None):
        try:
            response = super().changelist_view(request, extra_context)
            if hasattr(response, "render"):
                response.render()
        except OverflowError:
            return HttpResponseBadRequest(
                "<p>A filter in this address has a value out of range. <a href='?'>Show the whole list</a>.</p>"
            )
        return response
