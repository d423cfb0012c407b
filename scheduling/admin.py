from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from clinic import times
from clinic.actions import Via
from clinic.admin import ProviderAdmin
from clinic.admin_lists import ClinicModelAdmin
from clinic.models import Provider
from scheduling.actions import (
    book_appointment,
    cancel_appointment,
    mark_provider_unavailable,
    move_appointment,
    record_no_show,
)
from scheduling.forms import AbsenceForm, CancelAppointmentsForm, ProviderUnavailableForm
from scheduling.models import Appointment, NoShowModel, ProviderUnavailability, SchedulingError
from scheduling.reassignment import WorkflowError


@admin.register(Appointment)
class AppointmentAdmin(ClinicModelAdmin):
    audited_as = "appointment"
    list_display = ["start", "end", "patient", "provider", "status", "source", "cancel_reason"]
    list_filter = ["status", "source", "provider__specialty", "provider__location", "provider", "start"]
    search_fields = ["patient__first_name", "patient__last_name", "patient__email", "provider__name"]
    date_hierarchy = "start"
    list_select_related = ["patient", "provider__specialty"]
    autocomplete_fields = ["patient", "provider"]
    # Status and source change only through the verbs (the actions below, the patient's
    # links, the workflow), never by editing the field: an edit would skip the freed slot,
    # the backfill and the patient's email.
    readonly_fields = [
        "status",
        "source",
        "cancel_reason",
        "created_at",
        "updated_at",
        "cancelled_at",
        "cancelled_by",
        "booked_by",
        "replaces",
    ]
    actions = ["cancel_appointments", "mark_no_show"]

    # An appointment's patient is who it is for; its time and provider change only by a move
    # (move_appointment: the old time is freed for the waitlist, the patient is told), and only
    # while it can still be cancelled.
    MOVED_BY = ("provider", "start", "end")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        fixed = [] if obj.status in Appointment.CANCELLABLE else list(self.MOVED_BY)
        return [*self.readonly_fields, "patient", *fixed]

    def save_model(self, request, obj, form, change):
        if change and set(self.MOVED_BY) & set(form.changed_data):
            moved = move_appointment(
                Appointment.objects.get(pk=obj.pk),
                provider=obj.provider,
                start=obj.start,
                end=obj.end,
                by=request.user,
                channel=Via.ADMIN,
            )
            # The admin's log entry and its message name the appointment that takes place now.
            obj.pk, obj.status, obj.replaces = moved.pk, moved.status, moved.replaces
            self.message_user(
                request,
                f"Moved: {moved.patient} is told the new time; the old one is offered to the waitlist.",
                messages.INFO,
            )
            return
        if change:  # status and source are read-only here
            super().save_model(request, obj, form, change)
            return
        booked = book_appointment(
            patient=obj.patient,
            provider=obj.provider,
            start=obj.start,
            end=obj.end,
            external_id=obj.external_id,
            by=request.user,
            channel=Via.ADMIN,
        )
        # The admin's log entry and its redirect name the row the action booked.
        obj.pk, obj.created_at = booked.pk, booked.created_at
        obj._state.adding = False

    @admin.action(permissions=["change"], description="Cancel selected appointments (frees the slot for backfill)")
    def cancel_appointments(self, request, queryset):
        """An intermediate page asks for the reason and says what will happen; "apply" posts it back."""
        appointments = list(queryset.select_related("patient", "provider__specialty", "provider__location"))
        form = CancelAppointmentsForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/scheduling/appointment/cancel.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Cancel appointments",
                    "opts": self.model._meta,
                    "appointments": appointments,
                    "form": form,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
                status=400 if form.is_bound else 200,
            )
        for appointment in appointments:
            try:
                cancel_appointment(appointment, by=request.user, channel=Via.ADMIN, reason=form.cleaned_data["reason"])
            except SchedulingError as error:
                self.message_user(request, f"{appointment_in_words(appointment)}: {error}", messages.WARNING)
            else:
                self.message_user(request, what_became_of_the_slot(appointment), messages.SUCCESS)
        return None

    @admin.action(permissions=["change"], description="Mark selected appointments as no-show")
    def mark_no_show(self, request, queryset):
        for appointment in queryset.select_related("patient", "provider__location"):
            try:
                record_no_show(appointment, by=request.user, channel=Via.ADMIN)
            except SchedulingError as error:
                self.message_user(request, f"{appointment_in_words(appointment)}: {error}", messages.WARNING)
            else:
                self.message_user(request, f"{appointment_in_words(appointment)}: marked no-show.", messages.SUCCESS)


def appointment_in_words(appointment):
    local = appointment.provider.location.local(appointment.start)
    return f"{appointment.patient} with {appointment.provider.name}, {times.staff_datetime(local)}"


def what_became_of_the_slot(appointment):
    """The Cancel action's result, read once the cancellation committed (and, with an
    in-process queue, once the backfill ran): who got the slot, or that the search runs."""
    said = f"{appointment_in_words(appointment)}: cancelled"
    channels = appointment.patient.message_channels()
    told = f"; {appointment.patient} is {'emailed' if 'email' in channels else 'texted'}" if channels else ""
    # FreedSlot (the backfill's) through its reverse accessor: read without importing the layer above.
    appointment = Appointment.objects.select_related("freed_slot__filled_by__patient").get(pk=appointment.pk)
    if not hasattr(appointment, "freed_slot"):  # the reverse one-to-one raises when there is none
        return (
            f"{said}{told}. The slot was not offered to the waitlist: "
            "it starts too soon, or the provider is away then."
        )
    slot = appointment.freed_slot
    url = reverse("admin:backfill_freedslot_change", args=[slot.pk])
    if slot.filled_by_id:
        return format_html(
            '{}{}. The slot went to {} (<a href="{}">why</a>).', said, told, slot.filled_by.patient, url
        )
    if slot.status == slot.Status.NO_MATCH:
        return format_html(
            '{}{}. Nobody on the waitlist fits the slot: <a href="{}">see why, or book a patient by hand</a>.',
            said,
            told,
            url,
        )
    return format_html(
        '{}{}. The backfill is looking for a waiting patient: <a href="{}">see the slot</a>.', said, told, url
    )


@admin.register(ProviderUnavailability)
class ProviderUnavailabilityAdmin(ClinicModelAdmin):
    """Adding an absence is the same act as the provider's "Mark unavailable" action and
    `manage.py provider_unavailable`: their patients in those days are reassigned or waitlisted.
    A recorded absence is not edited: moved days would leave its patients where they were."""

    list_display = ["provider", "start_date", "end_date", "reason", "created_at"]
    list_filter = ["provider"]
    search_fields = ["provider__name", "reason"]
    date_hierarchy = "start_date"
    list_select_related = ["provider"]
    form = AbsenceForm

    def has_add_permission(self, request):
        return super().has_add_permission(request) and request.user.has_perm("scheduling.reassign_patients")

    def has_change_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        summary = mark_provider_unavailable(
            obj.provider, obj.start_date, obj.end_date, obj.reason, by=request.user, channel=Via.ADMIN
        )
        # The admin's log entry and its redirect name the absence recorded (or the one already covering the days).
        obj.pk, obj.created_at = summary.unavailability.pk, summary.unavailability.created_at
        obj._state.adding = False
        tell_what_happened(self, request, summary)


@admin.register(NoShowModel)
class NoShowModelAdmin(ClinicModelAdmin):
    """Each training of the no-show model, read-only: they are made by train_no_show_model."""

    list_display = [
        "trained_at",
        "algorithm",
        "auc",
        "brier",
        "base_rate",
        "training_rows",
        "heldout_rows",
        "sklearn_version",
        "patients_scored",
    ]
    date_hierarchy = "trained_at"
    exclude = ["estimator"]  # the pickle is bytes, for load_estimator() only
    readonly_fields = [field.name for field in NoShowModel._meta.fields if field.name != "estimator"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# The provider admin is the practice's (clinic); the reassignment it can start is this
# app's, so the action is added here, above clinic, instead of clinic importing it.
admin.site.unregister(Provider)


@admin.register(Provider)
class ProviderWithReassignmentAdmin(ProviderAdmin):
    actions = ["mark_unavailable"]

    def has_reassign_permission(self, request):
        return request.user.has_perm("scheduling.reassign_patients")

    @admin.action(permissions=["reassign"], description="Mark unavailable and reassign their patients")
    def mark_unavailable(self, request, queryset):
        # First call: ask for the days; the form posts back here with "apply".
        form = ProviderUnavailableForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/clinic/provider/mark_unavailable.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Mark unavailable and reassign their patients",
                    "opts": self.model._meta,
                    "providers": queryset,
                    "form": form,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        for provider in queryset:
            self._reassign_patients_of(request, provider, form.cleaned_data)
        return None

    def _reassign_patients_of(self, request, provider, days):
        try:
            summary = mark_provider_unavailable(
                provider,
                days["start_date"],
                days["end_date"],
                days["reason"],
                by=request.user,
                channel=Via.ADMIN,
            )
        except WorkflowError as error:
            self.message_user(request, f"{provider.name}: {error}", messages.ERROR)
            return
        tell_what_happened(self, request, summary)


def tell_what_happened(model_admin, request, summary):
    """The reassignment's summary, one message per patient, for the admin's pages."""
    model_admin.message_user(request, summary.headline, messages.SUCCESS)
    for kind, sentence in summary.notes:
        model_admin.message_user(request, sentence, messages.WARNING if kind == "skipped" else messages.INFO)
