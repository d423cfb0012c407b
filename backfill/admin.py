from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from backfill.booking import BackfillError, book_entry_by_hand, retry_slot
from backfill.hand_booking import hand_booking_choices
from backfill.models import FreedSlot, MatchLog, SlotOffer
from clinic.admin_lists import ClinicModelAdmin
from waitlist.models import WaitlistEntry


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


class SlotOfferInline(admin.TabularInline):
    """Offer mode: who was offered this slot, and what each of them answered."""

    model = SlotOffer
    extra = 0
    can_delete = False
    fields = ["patient", "score", "breakdown", "status", "sent_at", "expires_at", "responded_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(FreedSlot)
class FreedSlotAdmin(ClinicModelAdmin):
    list_display = ["start", "provider", "status", "reason", "freed_at", "filled_at", "filled_by", "attempts"]
    list_filter = ["status", "provider__specialty", "provider__location", "provider"]
    search_fields = ["provider__name", "filled_by__patient__last_name", "appointment__patient__last_name"]
    date_hierarchy = "start"
    list_select_related = ["provider__specialty", "filled_by__patient", "filled_by__provider"]
    readonly_fields = [f.name for f in FreedSlot._meta.fields]
    inlines = [MatchLogInline, SlotOfferInline]
    actions = ["retry_backfill", "book_waitlist_entry_by_hand"]

    def has_add_permission(self, request):
        return False

    @admin.action(permissions=["change"], description="Retry backfill for selected slots")
    def retry_backfill(self, request, queryset):
        for slot in queryset:
            try:
                retry_slot(slot, by=request.user.username)
                self.message_user(request, f"{slot}: backfill queued.", messages.SUCCESS)
            except BackfillError as error:
                self.message_user(request, f"{slot}: {error}", messages.WARNING)

    @admin.action(permissions=["change"], description="Book a waitlisted patient of your choice into the selected slot")
    def book_waitlist_entry_by_hand(self, request, queryset):
        """SPEC 8: staff override. An intermediate page lists the candidates; staff pick and confirm."""
        slots = list(queryset.select_related("provider__specialty", "provider__location", "appointment")[:2])
        if len(slots) != 1:
            self.message_user(request, "Select exactly one freed slot to book by hand.", messages.WARNING)
            return None
        slot = slots[0]
        if not slot.is_fillable:
            self.message_user(request, f"{slot}: this slot is {slot.get_status_display().lower()}; only open slots can be booked.", messages.WARNING)
            return None
        if "confirm" in request.POST:
            entry = _chosen_entry(request.POST.get("entry", ""))
            if entry is None:
                self.message_user(request, "Choose a waitlisted patient to book into this slot.", messages.ERROR)
            else:
                try:
                    appointment = book_entry_by_hand(slot, entry, by=request.user.username)
                except BackfillError as error:
                    self.message_user(request, str(error), messages.ERROR)
                else:
                    self.message_user(request, f"{appointment.patient} is booked into {slot}.", messages.SUCCESS)
                    return None
        ranked, others, others_count = hand_booking_choices(slot)
        return TemplateResponse(request, "admin/backfill/freedslot/book_by_hand.html", {
            **self.admin_site.each_context(request),
            "title": "Book a waitlisted patient by hand",
            "opts": self.model._meta,
            "slot": slot,
            "ranked": ranked,
            "others": others,
            "others_count": others_count,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        })


def _chosen_entry(raw):
    return WaitlistEntry.objects.filter(pk=int(raw)).first() if raw.isdecimal() else None


@admin.register(MatchLog)
class MatchLogAdmin(ClinicModelAdmin):
    list_display = ["slot", "run", "rank", "patient", "score", "outcome", "created_at"]
    list_filter = ["outcome"]
    search_fields = ["patient__last_name", "patient__email"]
    list_select_related = ["slot__provider", "patient"]
    readonly_fields = [f.name for f in MatchLog._meta.fields]


@admin.register(SlotOffer)
class SlotOfferAdmin(ClinicModelAdmin):
    list_display = ["slot", "patient", "score", "status", "sent_at", "expires_at", "responded_at"]
    list_filter = ["status"]
    search_fields = ["patient__last_name", "patient__email"]
    date_hierarchy = "sent_at"
    list_select_related = ["slot__provider", "patient"]
    readonly_fields = [f.name for f in SlotOffer._meta.fields]

    def has_add_permission(self, request):
        return False
