"""The admin's lists answer 400 for a filter value out of range, never a 500."""

from django.contrib import admin
from django.http import HttpResponseBadRequest

from audit.trail import record_view


class ClinicModelAdmin(admin.ModelAdmin):
    """Every model admin of Backfill.

    `?start__year=99999999999` reached datetime() and raised OverflowError; a number too
    large for the database column does the same in the driver. The list is built and
    rendered here, so whatever value does that answers 400.
    """

    # A record about a patient: opening its page is recorded in the audit trail as a view,
    # under this name, with the patient read from this column.
    audited_as = None
    audited_patient = "patient_id"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if self.audited_as and request.method == "GET":
            row = self.model._default_manager.filter(pk=object_id).values_list("pk", self.audited_patient).first()
            if row:
                record_view(self.audited_as, *row)
        return super().change_view(request, object_id, form_url, extra_context)

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
