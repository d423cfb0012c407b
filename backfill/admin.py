from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.loader import render_to_string
from django.template.response import TemplateResponse

from audit.trail import record_views
from backfill.actions import book_by_hand, retry_backfill
from backfill.booking import BackfillError
from backfill.explained_waitlist import EXPLAINED_ON_PAGE, ExplainedWaitlist, explain_entry
from backfill.models import FreedSlot, MatchLog, SlotOffer
from backfill.rules import RULES
from clinic.actions import Via
from clinic.admin_lists import ClinicModelAdmin
from waitlist.admin import WaitlistEntryAdmin
from waitlist.models import WaitlistEntry

# How many waiting patients the freed slot's page and the book-by-hand page explain, best first.


class MatchLogInline(admin.TabularInline):
    """Why this patient and not that one: every candidate of every run, by rule."""

    model = MatchLog
    extra = 0
    can_delete = False
    fields = ["run", "rank", "patient", "score", "points_by_rule", "outcome"]
    readonly_fields = fields
    ordering = ["-run", "rank"]

    @admin.display(description="Points by rule")
    def points_by_rule(self, log):
        return points_in_words(log.breakdown)

    def has_add_permission(self, request, obj=None):
        return False


class SlotOfferInline(admin.TabularInline):
    """Offer mode: who was offered this slot, and what each of them answered."""

    model = SlotOffer
    extra = 0
    can_delete = False
    fields = ["patient", "score", "points_by_rule", "status", "sent_at", "expires_at", "responded_at"]
    readonly_fields = fields

    @admin.display(description="Points by rule")
    def points_by_rule(self, offer):
        return points_in_words(offer.breakdown)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(FreedSlot)
class FreedSlotAdmin(ClinicModelAdmin):
    list_display = ["start", "provider", "status", "reason", "freed_at", "filled_at", "filled_by", "attempts"]
    list_filter = ["status", "provider__specialty", "provider__location", "provider"]
    search_fields = ["provider__name", "filled_by__patient__last_name", "appointment__patient__last_name"]
    date_hierarchy = "start"
    list_select_related = ["provider__specialty", "filled_by__patient", "filled_by__provider"]
    readonly_fields = [f.name for f in FreedSlot._meta.fields if f.name != "id"]  # staff read times, not ids
    inlines = [MatchLogInline, SlotOfferInline]
    actions = ["retry_backfill", "book_waitlist_entry_by_hand"]

    def has_add_permission(self, request):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        slot = self.get_object(request, object_id)
        if slot is not None:
            extra_context = {**(extra_context or {}), **explanation_context(slot)}
        return super().change_view(request, object_id, form_url, extra_context)

    def has_change_permission(self, request, obj=None):
        # A slot changes only through its actions (retry, book by hand), which need the
        # change permission on the list; its own page is read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(permissions=["change"], description="Retry backfill for selected slots")
    def retry_backfill(self, request, queryset):
        for slot in queryset:
            try:
                retry_backfill(slot, by=request.user, channel=Via.ADMIN)
                self.message_user(request, f"{slot}: backfill queued.", messages.SUCCESS)
            except BackfillError as error:
                self.message_user(request, f"{slot}: {error}", messages.WARNING)

    @admin.action(
        permissions=["change"], description="Book a waitlisted patient of your choice into the selected slot"
    )
    def book_waitlist_entry_by_hand(self, request, queryset):
        """Staff override (docs/reference.md, Actions): a page lists the candidates; staff pick and confirm."""
        slots = list(queryset.select_related("provider__specialty", "provider__location", "appointment")[:2])
        if len(slots) != 1:
            self.message_user(request, "Select exactly one freed slot to book by hand.", messages.WARNING)
            return None
        slot = slots[0]
        if not slot.is_fillable:
            self.message_user(
                request,
                f"{slot}: this slot is {slot.get_status_display().lower()}; only open slots can be booked.",
                messages.WARNING,
            )
            return None
        if "confirm" in request.POST:
            entry = _chosen_entry(request.POST.get("entry", ""))
            if entry is None:
                self.message_user(request, "Choose a waitlisted patient to book into this slot.", messages.ERROR)
            else:
                try:
                    appointment = book_by_hand(slot, entry, by=request.user, channel=Via.ADMIN)
                except BackfillError as error:
                    self.message_user(request, str(error), messages.ERROR)
                else:
                    self.message_user(request, f"{appointment.patient} is booked into {slot}.", messages.SUCCESS)
                    return None
        return TemplateResponse(
            request,
            "admin/backfill/freedslot/book_by_hand.html",
            {
                **self.admin_site.each_context(request),
                "title": "Book a waitlisted patient by hand",
                "opts": self.model._meta,
                **explanation_context(slot),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )


def _chosen_entry(raw):
    return WaitlistEntry.objects.filter(pk=int(raw)).first() if raw.isdecimal() else None


def explanation_context(slot):
    """The slot's waitlist as the backfill judges it, best first (the same as the explain API)."""
    explained = ExplainedWaitlist(slot)
    shown = explained[:EXPLAINED_ON_PAGE]
    record_views("waitlist entry", [(item.entry.pk, item.entry.patient_id) for item in shown])
    return {"slot": slot, "explanations": shown, "total": len(explained)}


def points_in_words(breakdown):
    """{"no_show_risk": 40, …} as staff read it: "no-show risk +40 · specialty +20 · …", in the
    rule table's order (PostgreSQL's jsonb keeps keys in an order of its own)."""
    order = {rule.name: index for index, rule in enumerate(RULES)}
    ranked = sorted(breakdown.items(), key=lambda item: order.get(item[0], len(order)))
    return " · ".join(f"{rule.replace('_', ' ').replace('no show', 'no-show')} +{points}" for rule, points in ranked)


@admin.register(MatchLog)
class MatchLogAdmin(ClinicModelAdmin):
    list_display = ["slot", "run", "rank", "patient", "score", "points_by_rule", "outcome", "created_at"]
    list_filter = ["outcome"]
    search_fields = ["patient__last_name", "patient__email"]
    list_select_related = ["slot__provider", "patient"]
    readonly_fields = [f.name for f in MatchLog._meta.fields if f.name not in ("id", "breakdown")] + ["points_by_rule"]
    exclude = ["breakdown"]

    @admin.display(description="Points by rule")
    def points_by_rule(self, log):
        return points_in_words(log.breakdown)

    # Written by the backfill only: what it considered is history, not staff's to edit.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SlotOffer)
class SlotOfferAdmin(ClinicModelAdmin):
    list_display = ["slot", "patient", "score", "status", "sent_at", "expires_at", "responded_at"]
    list_filter = ["status"]
    search_fields = ["patient__last_name", "patient__email"]
    date_hierarchy = "sent_at"
    list_select_related = ["slot__provider", "patient"]
    readonly_fields = [f.name for f in SlotOffer._meta.fields if f.name != "id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class WaitlistEntryWithOpenSlotsAdmin(WaitlistEntryAdmin):
    """The waitlist's own admin, plus what only the backfill layer knows: which open slots
    this patient fits, and why not the others. Registered from here so the
    waitlist app stays below the backfill."""

    readonly_fields = [*WaitlistEntryAdmin.readonly_fields, "open_slots"]

    @admin.display(description="Open slots")
    def open_slots(self, entry):
        if entry.pk is None or entry.status != WaitlistEntry.Status.WAITING:
            return "Only a waiting patient is matched to open slots."
        return render_to_string(
            "admin/backfill/open_slots_for_entry.html", {"entry": entry, "judged": explain_entry(entry)}
        )


admin.site.unregister(WaitlistEntry)
admin.site.register(WaitlistEntry, WaitlistEntryWithOpenSlotsAdmin)
