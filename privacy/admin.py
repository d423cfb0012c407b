import io
import json
import zipfile

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils.text import slugify

from audit.trail import record_view
from clinic.actions import Via
from privacy.erasure import erase_patient
from privacy.export import PatientRecord
from privacy.models import PatientData


@admin.register(PatientData)
class PatientDataAdmin(admin.ModelAdmin):
    """Find the patient, tick them, and export or erase (Clinic managers)."""

    list_display = ["__str__", "email", "phone", "created_at"]
    search_fields = ["first_name", "last_name", "email", "phone", "external_id"]
    actions = ["export", "erase"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Export everything about them (FHIR R4 Bundle and a summary)", permissions=["export"])
    def export(self, request, queryset):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as files:
            for patient in queryset:
                record = PatientRecord(patient)
                record_view("patient export", patient.pk, patient.pk)
                name = f"{slugify(str(patient))}-{patient.pk}"
                files.writestr(f"{name}.fhir.json", json.dumps(record.bundle(), indent=2))
                files.writestr(f"{name}.txt", record.summary())
        response = HttpResponse(archive.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="patients-data.zip"'
        return response

    @admin.action(
        description="Erase their identifying data (cancels their future appointments)", permissions=["erase"]
    )
    def erase(self, request, queryset):
        if request.POST.get("confirmed") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "patients": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "title": "Erase these patients' identifying data?",
            }
            return TemplateResponse(request, "admin/privacy/confirm_erasure.html", context)
        for patient in queryset:
            name = str(patient)
            cancelled, removed = erase_patient(patient, by=request.user, channel=Via.ADMIN)
            messages.success(
                request,
                f"{name}: erased; future appointments cancelled: {cancelled}; waitlist entries removed: {removed}.",
            )

    def has_export_permission(self, request):
        return request.user.has_perm("privacy.export_patient_data")

    def has_erase_permission(self, request):
        return request.user.has_perm("privacy.erase_patient_data")
