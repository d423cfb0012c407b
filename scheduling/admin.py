from django.contrib import admin, messages

from clinic.admin_lists import ClinicModelAdmin
from scheduling.models import Appointment, NoShowModel, ProviderUnavailability, SchedulingError


@admin.register(Appointment)
class AppointmentAdmin(ClinicModelAdmin):
    list_display = ["start", "end", "patient", "provider", "status", "source", "cancel_reason"]
    list_filter = ["status", "source", "provider__specialty", "provider__location", "provider", "start"]
    search_fields = ["patient__first_name", "patient__last_name", "patient__email", "provider__name"]
    date_hierarchy = "start"
    list_select_related = ["patient", "provider__specialty"]
    autocomplete_fields = ["patient", "provider"]
    readonly_fields = ["created_at", "updated_at", "cancelled_at", "cancelled_by", "replaces"]
    actions = ["cancel_appointments", "mark_no_show"]

    @admin.action(permissions=["change"], description="Cancel selected appointments (frees the slot for backfill)")
    def cancel_appointments(self, request, queryset):
        self._apply(request, queryset, lambda a: a.cancel("cancelled by front desk", by=request.user.username), "cancelled")

    @admin.action(permissions=["change"], description="Mark selected appointments as no-show")
    def mark_no_show(self, request, queryset):
        self._apply(request, queryset, lambda a: a.mark_no_show(), "marked no-show")

    def _apply(self, request, queryset, verb, done):
        count = 0
        for appointment in queryset.select_related("patient", "provider"):
            try:
                verb(appointment)
                count += 1
            except SchedulingError as error:
                self.message_user(request, f"{appointment}: {error}", messages.WARNING)
        if count:
            self.message_user(request, f"{count} appointment(s) {done}.", messages.SUCCESS)


@admin.register(ProviderUnavailability)
class ProviderUnavailabilityAdmin(ClinicModelAdmin):
    list_display = ["provider", "start_date", "end_date", "reason", "created_at"]
    list_filter = ["provider"]
    search_fields = ["provider__name", "reason"]
    date_hierarchy = "start_date"
    list_select_related = ["provider"]


@admin.register(NoShowModel)
class NoShowModelAdmin(ClinicModelAdmin):
    """Each training of the no-show model, read-only: they are made by train_no_show_model."""

    list_display = ["trained_at", "algorithm", "auc", "brier", "base_rate", "training_rows", "heldout_rows",
                    "sklearn_version", "patients_scored"]
    date_hierarchy = "trained_at"
    exclude = ["estimator"]  # the pickle is bytes, for load_estimator() only
    readonly_fields = [field.name for field in NoShowModel._meta.fields if field.name != "estimator"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
