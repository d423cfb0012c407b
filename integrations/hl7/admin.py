"""The HL7 interface in the admin: the messages in and out, the code tables, the endpoints.

Integrators and clinic managers see them (hl7 migration 0002); the front desk does not.
"""

from django.contrib import admin, messages

from clinic.admin_lists import ClinicModelAdmin
from integrations.hl7.models import Hl7CodeMapping, Hl7Endpoint, Hl7Message
from integrations.hl7.outbound import resend


@admin.register(Hl7Message)
class Hl7MessageAdmin(ClinicModelAdmin):
    """Every message received or sent, with its acknowledgement; search by MRN (a merge's
    too), the EHR's appointment id, the control id, or Backfill's appointment number."""

    list_display = [
        "received_at",
        "direction",
        "message_type",
        "sender",
        "control_id",
        "outcome",
        "mrn",
        "appointment_ref",
        "appointment",
        "note",
    ]
    list_filter = ["direction", "outcome", "message_type", "sender"]
    list_select_related = ["appointment__patient", "appointment__provider__location"]
    search_fields = ["mrn", "merged_mrn", "appointment_ref", "control_id"]
    date_hierarchy = "received_at"
    fields = [*Hl7Message.SHOWN, "segments", "acknowledgement_segments"]
    readonly_fields = fields
    actions = ["resend_failed"]

    @admin.action(permissions=["change"], description="Re-send the selected outbound messages that were given up")
    def resend_failed(self, request, queryset):
        count = resend(queryset)
        self.message_user(
            request,
            f"{count} messages will be sent again." if count else "None of the selected messages had been given up.",
            messages.SUCCESS if count else messages.WARNING,
        )

    @admin.display(description="Acknowledgement")
    def acknowledgement_segments(self, message):
        return message.ack.replace("\r", "\n").strip()

    def get_search_results(self, request, queryset, search_term):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip().isdigit():  # Backfill's own appointment number
            found |= queryset.filter(appointment_id=int(search_term.strip()))
        return found, may_have_duplicates

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Hl7CodeMapping)
class Hl7CodeMappingAdmin(ClinicModelAdmin):
    """An EHR's codes that differ from the external ids Backfill has (docs/hl7.md, "Code tables")."""

    list_display = ["kind", "code", "target"]
    list_filter = ["kind"]
    search_fields = ["code"]
    fields = ["kind", "code", "provider", "location", "specialty"]


@admin.register(Hl7Endpoint)
class Hl7EndpointAdmin(ClinicModelAdmin):
    list_display = ["__str__", "host", "port", "events", "active"]
    list_filter = ["active"]
    fields = Hl7Endpoint.SETTINGS
    readonly_fields = ["created_at"]
