from django.contrib import admin, messages

from backfill.booking import BackfillError, retry_slot
from backfill.models import FreedSlot, MatchLog


class MatchLogInline(admin.TabularInline):
    """Why this patient and not that one: every candidate of every run, by rule."""

    model = MatchLog
    extra = 0
    can_delete = False
    fields = ["run", "rank", "patient", "score", "breakdown", "outcome"]
    readonly_fields = fields
    ordering = ["-run", "rank"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(FreedSlot)
class FreedSlotAdmin(admin.ModelAdmin):
    list_display = ["start", "provider", "status", "reason", "freed_at", "filled_at", "filled_by", "attempts"]
    list_filter = ["status", "provider__specialty", "provider__location", "provider"]
    search_fields = ["provider__name", "filled_by__patient__last_name", "appointment__patient__last_name"]
    date_hierarchy = "start"
    list_select_related = ["provider__specialty", "filled_by__patient", "filled_by__provider"]
    readonly_fields = [f.name for f in FreedSlot._meta.fields]
    inlines = [MatchLogInline]
    actions = ["retry_backfill"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry backfill for selected slots")
    def retry_backfill(self, request, queryset):
        for slot in queryset:
            try:
                retry_slot(slot, by=request.user.username)
                self.message_user(request, f"{slot}: backfill queued.", messages.SUCCESS)
            except BackfillError as error:
                self.message_user(request, f"{slot}: {error}", messages.WARNING)


@admin.register(MatchLog)
class MatchLogAdmin(admin.ModelAdmin):
    list_display = ["slot", "run", "rank", "patient", "score", "outcome", "created_at"]
    list_filter = ["outcome"]
    search_fields = ["patient__last_name", "patient__email"]
    list_select_related = ["slot__provider", "patient"]
    readonly_fields = [f.name for f in MatchLog._meta.fields]
