from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read only: nobody adds, changes or deletes an entry (the database refuses it too)."""

    list_display = ["at", "action", "object_type", "object_id", "patient_id", "actor", "channel"]
    list_filter = ["action", "object_type", "channel"]
    search_fields = ["actor", "object_id"]
    date_hierarchy = "at"
    readonly_fields = [
        "at",
        "action",
        "object_type",
        "object_id",
        "patient_id",
        "actor",
        "user_id",
        "channel",
        "changes",
    ]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
