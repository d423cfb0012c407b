from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from clinic import actions as clinic_actions
from clinic import languages, risk_scale, times
from clinic.actions import Via
from clinic.admin_lists import ClinicModelAdmin
from clinic.models import (
    ApiToken,
    DeliveryAttempt,
    Event,
    InboundText,
    InsurancePlan,
    Location,
    OutboundEmail,
    Patient,
    Provider,
    Specialty,
    WebhookDelivery,
    WebhookEndpoint,
    name_addressees,
)
from clinic.webhooks import new_secret, resend


@admin.register(Location)
class LocationAdmin(ClinicModelAdmin):
    list_display = ["name", "address", "phone", "time_zone"]
    search_fields = ["name", "address"]


@admin.register(InsurancePlan)
class InsurancePlanAdmin(ClinicModelAdmin):
    list_display = ["name", "payer"]
    list_filter = ["payer"]
    search_fields = ["name", "payer"]


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
    filter_horizontal = ["accepted_insurance_plans"]


class PatientForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The languages the clinic writes (docs/reference.md, Languages), and whatever a feed sent that it does not.
        field = self.fields["preferred_language"]
        choices = [("", "The clinic's default"), *settings.LANGUAGES]
        current = self.instance.preferred_language
        if current and current not in dict(choices):
            reads = dict(settings.LANGUAGES).get(languages.supported(current), "the clinic's default")
            choices.append((current, f"{current} (sent by a feed: reads {reads})"))
        self.fields["preferred_language"] = forms.ChoiceField(
            choices=choices, required=False, label=field.label, help_text="Messages and pages the patient reads."
        )

    def clean(self):
        cleaned = super().clean()
        # The instance still holds what was saved: an opt-out is only the patient's to undo.
        self.instance.check_change_by_staff(
            email_opt_out=cleaned.get("email_opt_out"), sms_consent=cleaned.get("sms_consent")
        )
        return cleaned


@admin.register(Patient)
class PatientAdmin(ClinicModelAdmin):
    audited_as, audited_patient = "patient", "pk"
    form = PatientForm
    list_display = [
        "__str__",
        "email",
        "phone",
        "preferred_location",
        "no_show_risk",
        "no_show_risk_source",
        "no_show_risk_model",
        "days",
        "email_opt_out",
    ]
    list_filter = ["preferred_location", "email_opt_out", "no_show_risk_source"]
    search_fields = ["first_name", "last_name", "email", "phone"]
    list_select_related = ["preferred_location"]
    date_hierarchy = "created_at"
    readonly_fields = ["model_estimate", "model_reasons", "sms_consent_at", "sms_consent_source"]
    actions = ["resume_offers"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "first_name",
                    "last_name",
                    "email",
                    "phone",
                    "preferred_location",
                    "available_days",
                    "preferred_times",
                    "email_opt_out",
                    "insurance_plan",
                    "preferred_language",
                ]
            },
        ),
        (
            "Texts and offers",
            {
                "fields": [
                    "preferred_channel",
                    "sms_consent",
                    "sms_consent_at",
                    "sms_consent_source",
                    "offers_paused_at",
                ],
                "description": "Texts go only with the patient's consent. Offers pause after several in a row went "
                "unanswered or were declined; clear the pause (or use the action) to resume them.",
            },
        ),
        (
            "No-show risk",
            {
                "fields": ["no_show_risk", "no_show_risk_source", "model_estimate", "model_reasons"],
                "description": "The risk matching uses. Typing a risk makes it yours: "
                "the no-show model then leaves it alone until its source is set back to the clinic's history.",
            },
        ),
    ]

    @admin.action(description="Resume offers for the selected patients", permissions=["change"])
    def resume_offers(self, request, queryset):
        for patient in queryset.exclude(offers_paused_at=None):
            clinic_actions.resume_offers(patient, by=request.user, channel=Via.ADMIN)
        self.message_user(request, "Offers resumed.", messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        if "sms_consent" in form.changed_data:
            obj.sms_consent_at, obj.sms_consent_source = timezone.now(), Patient.ConsentSource.STAFF
        # A risk staff type is "manual"; handing it back to the model applies its estimate (docs/reference.md,
        # No-show model).
        if "no_show_risk" in form.changed_data:
            obj.set_no_show_risk(form.cleaned_data["no_show_risk"], Patient.RiskSource.MANUAL)
        elif "no_show_risk_source" in form.changed_data and obj.no_show_risk_source == Patient.RiskSource.MODEL:
            obj.hand_risk_to_model()
        super().save_model(request, obj, form, change)

    @admin.display(description="Model's estimate")
    def model_estimate(self, patient):
        if patient.no_show_risk_model is None:
            return (
                "None yet: the no-show model has not scored this patient (manage.py train_no_show_model, or nightly)."
            )
        if patient.no_show_risk_standing is None:
            return f"{patient.no_show_risk_model:.2f}"
        # What the backfill judges a learned risk by (docs/how-it-works.md, "No-show risk: one scale").
        return f"{patient.no_show_risk_model:.2f}, {risk_scale.standing_words(patient.no_show_risk_standing)}"

    @admin.display(description="Model's top reasons")
    def model_reasons(self, patient):
        if not patient.no_show_risk_reasons:
            return "-"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((reason,) for reason in patient.no_show_risk_reasons))
        )

    @admin.display(description="Available days")
    def days(self, patient):
        return ", ".join(patient.available_days) or "any"


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ClinicModelAdmin):
    list_display = ["created_at", "channel", "kind", "addressee", "subject", "status", "attempts", "appointment_link"]
    list_filter = ["channel", "status", "kind"]
    search_fields = ["recipient", "subject", "esp_message_id", "appointment__patient__last_name"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in OutboundEmail._meta.fields if f.name != "id"]
    list_select_related = ["appointment__patient", "appointment__provider__location"]

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        name_addressees(changelist.result_list)
        return changelist

    @admin.display(description="To", ordering="recipient")
    def addressee(self, email):
        patient = getattr(email, "addressee", None)
        return f"{patient} <{email.recipient}>" if patient else email.recipient

    @admin.display(description="Appointment")
    def appointment_link(self, email):
        if not email.appointment_id:
            return "-"
        appointment = email.appointment
        return format_html(
            '<a href="/admin/scheduling/appointment/{}/change/">{} with {}</a>',
            appointment.pk,
            times.staff_datetime(appointment.provider.location.local(appointment.start)),
            appointment.provider.name,
        )

    def has_add_permission(self, request):
        return False


@admin.register(InboundText)
class InboundTextAdmin(ClinicModelAdmin):
    """Patients' replies to texts and what each did (backfill/sms_replies.py)."""

    list_display = ["received_at", "from_number", "patient", "body", "outcome"]
    list_filter = ["outcome"]
    search_fields = ["from_number", "body", "message_sid"]
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in InboundText._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ClinicModelAdmin):
    list_display = ["url", "description", "events", "active", "owner", "failing_since", "disabled_reason"]
    list_filter = ["active"]
    search_fields = ["url", "description"]
    readonly_fields = ["owner", "created_at", "failing_since", "disabled_reason"]
    fields = ["url", "events", "active", "description", "owner", "created_at", "failing_since", "disabled_reason"]

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.secret = new_secret()
            obj.owner = request.user
        if change and "active" in form.changed_data and obj.active:
            obj.failing_since, obj.disabled_reason = None, ""  # turned back on: a fresh start
        super().save_model(request, obj, form, change)
        if not change:
            # Shown this once, as the API does: the receiver needs it to verify signatures.
            self.message_user(
                request,
                f"Signing secret for {obj.url}: {obj.secret} (shown only now: copy it to the receiver).",
                messages.WARNING,
            )


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["attempted_at", "status_code", "duration_ms", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ClinicModelAdmin):
    list_display = ["event_type", "event_subject", "endpoint", "status", "attempts", "next_attempt_at", "delivered_at"]
    # Only the endpoints this account sees are offered as filters.
    list_filter = ["status", ("endpoint", admin.RelatedOnlyFieldListFilter), "event__type"]
    list_select_related = ["event", "endpoint"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(endpoint__in=WebhookEndpoint.objects.visible_to(request.user))

    readonly_fields = [
        "endpoint",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "status_code",
        "duration_ms",
        "created_at",
    ]
    # The failed POSTs; the one the receiver took shows above, in status code and duration.
    inlines = [DeliveryAttemptInline]
    actions = ["resend_failed"]

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, delivery):
        return delivery.event.type

    @admin.display(description="About")
    def event_subject(self, delivery):
        return delivery.event.subject

    def has_add_permission(self, request):
        return False

    @admin.action(permissions=["change"], description="Re-send the selected failed deliveries")
    def resend_failed(self, request, queryset):
        count = resend(queryset)
        self.message_user(
            request,
            f"{count} failed deliveries will be sent again."
            if count
            else "None of the selected deliveries had failed.",
            messages.SUCCESS if count else messages.WARNING,
        )


@admin.register(Event)
class EventAdmin(ClinicModelAdmin):
    list_display = ["occurred_at", "type", "subject"]
    list_filter = ["type"]
    search_fields = ["subject"]
    date_hierarchy = "occurred_at"
    readonly_fields = ["type", "subject", "occurred_at", "payload"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(ClinicModelAdmin):
    """Clinic managers name, list and revoke integrators' API tokens; a new token's key is
    shown once, on the page that follows its creation."""

    list_display = ["name", "user", "created_at", "last_used_at"]
    list_select_related = ["user"]
    fields = ["name", "user", "created_at", "last_used_at"]
    readonly_fields = ["created_at", "last_used_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "user"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, key = ApiToken.issue(obj.user, obj.name)
        obj.pk, obj.digest, obj.created_at = token.pk, token.digest, token.created_at
        messages.warning(
            request,
            format_html(
                "The key of “{}”, shown only now: <code>{}</code>. Give it to the integrator; "
                "it is sent as <code>Authorization: Token …</code>.",
                token.name,
                key,
            ),
        )
