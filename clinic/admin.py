from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.html import format_html

from clinic.admin_lists import ClinicModelAdmin
from clinic.models import Location, OutboundEmail, Patient, Provider, Specialty
from scheduling.forms import ProviderUnavailableForm
from scheduling.reassignment import WorkflowError, mark_provider_unavailable


@admin.register(Location)
class LocationAdmin(ClinicModelAdmin):
    list_display = ["name", "address"]
    search_fields = ["name", "address"]


@admin.register(Specialty)
class SpecialtyAdmin(ClinicModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Provider)
class ProviderAdmin(ClinicModelAdmin):
    list_display = ["name", "specialty", "location", "email", "active"]
    list_filter = ["active", "specialty", "location"]
    search_fields = ["name", "email"]
    list_select_related = ["specialty", "location"]
    actions = ["mark_unavailable"]

    def has_reassign_permission(self, request):
        return request.user.has_perm("scheduling.reassign_patients")

    @admin.action(permissions=["reassign"], description="Mark unavailable and reassign their patients")
    def mark_unavailable(self, request, queryset):
        # First call: ask for the days; the form posts back here with "apply".
        form = ProviderUnavailableForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(request, "admin/clinic/provider/mark_unavailable.html", {
                **self.admin_site.each_context(request),
                "title": "Mark unavailable and reassign their patients",
                "opts": self.model._meta,
                "providers": queryset,
                "form": form,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            })
        for provider in queryset:
            self._reassign_patients_of(request, provider, form.cleaned_data)
        return None

    def _reassign_patients_of(self, request, provider, days):
        try:
            summary = mark_provider_unavailable(
                provider, days["start_date"], days["end_date"], days["reason"], by=request.user.get_username()
            )
        except WorkflowError as error:
            self.message_user(request, f"{provider.name}: {error}", messages.ERROR)
            return
        self.message_user(request, summary.headline, messages.SUCCESS)
        for kind, sentence in summary.notes:
            self.message_user(request, sentence, messages.WARNING if kind == "skipped" else messages.INFO)


@admin.register(Patient)
class PatientAdmin(ClinicModelAdmin):
    list_display = ["__str__", "email", "phone", "preferred_location", "no_show_risk", "days", "email_opt_out"]
    list_filter = ["preferred_location", "email_opt_out"]
    search_fields = ["first_name", "last_name", "email", "phone"]
    list_select_related = ["preferred_location"]
    date_hierarchy = "created_at"

    @admin.display(description="Available days")
    def days(self, patient):
        return ", ".join(patient.available_days) or "any"


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ClinicModelAdmin):
    list_display = ["created_at", "kind", "recipient", "subject", "status", "attempts", "appointment_link"]
    list_filter = ["status", "kind"]
    search_fields = ["recipient", "subject", "esp_message_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in OutboundEmail._meta.fields]
    list_select_related = ["appointment"]

    @admin.display(description="Appointment")
    def appointment_link(self, email):
        if not email.appointment_id:
            return "-"
        return format_html('<a href="/admin/scheduling/appointment/{}/change/">#{}</a>', email.appointment_id, email.appointment_id)

    def has_add_permission(self, request):
        return False
