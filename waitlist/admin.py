from django.contrib import admin, messages

from clinic.actions import Via
from clinic.admin_lists import ClinicModelAdmin
from waitlist.actions import join_waitlist, leave_waitlist
from waitlist.models import WaitlistEntry


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(ClinicModelAdmin):
    audited_as = "waitlist entry"
    list_display = ["patient", "specialty", "status", "reason", "risk", "preferred_location", "days", "created_at"]
    list_filter = ["status", "reason", "specialty", "preferred_location"]
    search_fields = ["patient__first_name", "patient__last_name", "patient__email"]
    date_hierarchy = "created_at"
    list_select_related = ["patient", "specialty", "preferred_location"]
    autocomplete_fields = ["patient", "preferred_provider"]
    # The status changes through the verbs (Remove below, a booking), never by editing it.
    readonly_fields = ["status", "original_appointment", "booked_appointment", "updated_at"]
    actions = ["remove_entries"]

    def save_model(self, request, obj, form, change):
        if change:  # the status is read-only here: an edit changes preferences only
            super().save_model(request, obj, form, change)
        else:
            join_waitlist(obj, by=request.user, channel=Via.ADMIN)

    @admin.display(description="No-show risk", ordering="ranking_risk")
    def risk(self, entry):
        return entry.patient.no_show_risk_words()

    @admin.display(description="Days")
    def days(self, entry):
        return ", ".join(entry.available_days) or "any"

    @admin.action(permissions=["change"], description="Remove selected entries from the waitlist")
    def remove_entries(self, request, queryset):
        removed = sum(leave_waitlist(entry, by=request.user, channel=Via.ADMIN) for entry in queryset)
        self.message_user(request, f"{removed} entr{'y' if removed == 1 else 'ies'} removed.", messages.SUCCESS)
