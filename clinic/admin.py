from django.contrib import admin
from django.utils.html import format_html

from clinic.models import Location, OutboundEmail, Patient, Provider, Specialty


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["name", "address"]
    search_fields = ["name", "address"]


@admin.register(Specialty)
class SpecialtyAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["name", "specialty", "location", "email", "active"]
    list_filter = ["active", "specialty", "location"]
    search_fields = ["name", "email"]
    list_select_related = ["specialty", "location"]


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["__str__", "email", "phone", "preferred_location", "no_show_risk", "days", "email_opt_out"]
    list_filter = ["preferred_location", "email_opt_out"]
    search_fields = ["first_name", "last_name", "email", "phone"]
    list_select_related = ["preferred_location"]
    date_hierarchy = "created_at"

    @admin.display(description="Available days")
    def days(self, patient):
        return ", ".join(patient.available_days) or "any"


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
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
