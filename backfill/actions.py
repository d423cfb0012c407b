"""What a person or another system can do about freed slots, one function each (the
conventions are clinic/actions.py's): book a waiting patient by hand, ask for another
backfill run, accept or decline a slot offer, and a patient's text reply, which may do any
of the patients' actions.
"""

import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from backfill import offers, sms_replies
from backfill.booking import BackfillError, book_entry, lock_slot, lock_waiting_entry
from backfill.models import FreedSlot, SlotOffer
from backfill.sms_replies import Answer
from clinic import actions as clinic_actions
from clinic import sms
from clinic.actions import Via, actor
from clinic.models import InboundText, Patient
from scheduling import actions as scheduling_actions
from scheduling.models import Appointment, AppointmentConflict, SchedulingError

log = logging.getLogger("backfill")


def book_by_hand(slot, entry, *, by, channel):
    """Staff choose the patient for a freed slot (the appointment page, the admin, the API):
    emailed like a backfill, the appointment recorded as booked by staff and by whom, the
    slot marked booked by hand."""
    with transaction.atomic(durable=True):
        slot = lock_slot(slot.pk)  # the declared order: slot, then entry (backfill/booking.py)
        if not slot.is_fillable:
            raise BackfillError(f"This slot is {slot.get_status_display().lower()}; only open slots can be booked.")
        if slot.start <= timezone.now():
            raise BackfillError("This slot has already started.")
        locked = lock_waiting_entry(entry.pk)
        if locked is None:
            raise BackfillError("That waitlist entry is no longer waiting.")
        if locked.specialty_id != slot.provider.specialty_id:
            raise BackfillError("That patient is waiting for another specialty.")
        try:
            # The confirmation and any chain release are book_entry's own.
            appointment = book_entry(slot, locked, source=Appointment.Source.STAFF, booked_by=actor(by))
        except AppointmentConflict as conflict:
            raise BackfillError(str(conflict)) from conflict
        slot.mark_booked_by_hand(appointment)
    log.info(
        "slot.booked_by_hand slot=%s patient=%s appointment=%s by=%s channel=%s",
        slot.pk,
        appointment.patient_id,
        appointment.pk,
        actor(by),
        channel,
    )
    return appointment


def retry_backfill(slot, *, by, channel):
    """Staff ask for another backfill run of a slot that found nobody or failed; its job is
    enqueued once this commits."""
    with transaction.atomic(durable=True):
        slot = lock_slot(slot.pk)
        if slot.status not in (FreedSlot.Status.OPEN, FreedSlot.Status.NO_MATCH, FreedSlot.Status.FAILED):
            raise BackfillError(f"This slot is {slot.get_status_display().lower()}; there is nothing to retry.")
        if not slot.is_bookable():
            raise BackfillError("This slot is too soon, or its provider is away or inactive; it cannot be backfilled.")
        slot.reopen()
    log.info("slot.retry slot=%s by=%s channel=%s", slot.pk, actor(by), channel)
    return slot


def accept_slot_offer(offer, *, by, channel):
    """The patient takes an offered slot: booked, the other offers withdrawn and their
    patients told it was taken. Raises OfferError with the reason they cannot; what made the
    offer unanswerable is committed first, so the admin shows it too."""
    with transaction.atomic(durable=True):
        appointment, refusal = offers.accept(offer)
    log.info(
        "action.accept_slot_offer offer=%s by=%s channel=%s refused=%s", offer.pk, actor(by), channel, bool(refusal)
    )
    if refusal:
        raise offers.OfferError(refusal)
    return appointment


def decline_slot_offer(offer, *, by, channel):
    """The patient turns an offered slot down and stays on the waitlist; once the whole round
    has declined, the slot's job offers it to the next candidates."""
    with transaction.atomic(durable=True):
        refusal = offers.decline(offer)
    log.info(
        "action.decline_slot_offer offer=%s by=%s channel=%s refused=%s", offer.pk, actor(by), channel, bool(refusal)
    )
    if refusal:
        raise offers.OfferError(refusal)
    return offer


def receive_text(message_sid, from_number, body):
    """A patient's text: claim its MessageSid, then act on its keyword through the patients'
    own actions, then keep the outcome and the reply (an Answer).

    Twilio retries a webhook that timed out: a MessageSid already claimed is answered with
    the reply it got and changes nothing. Should acting fail, the claim goes too, so the
    retry acts.
    """
    try:
        with transaction.atomic(durable=True):
            inbound = InboundText.objects.create(message_sid=message_sid, from_number=from_number, body=body[:1600])
    except IntegrityError:  # Twilio's retry, or the same request twice at once
        earlier = InboundText.objects.get(message_sid=message_sid)
        return Answer("repeat", earlier.reply)
    patients = list(Patient.objects.filter(phone=from_number))
    word = sms_replies.keyword(body)
    # The reply, and any message the answer sends, in the patient's language (docs/reference.md, Texts)
    with translation.override(sms_replies.reply_language(word, patients)):
        try:
            answer = _act(word, patients, from_number)
        except Exception:
            InboundText.objects.filter(pk=inbound.pk).delete()
            raise
        reply = sms.gsm_friendly(str(answer.reply).replace("{phone}", settings.CLINIC_PHONE))
    inbound.patient = patients[0] if len(patients) == 1 else None
    inbound.outcome, inbound.reply = answer.outcome, reply
    inbound.save(update_fields=["patient", "outcome", "reply"])
    log.info("sms.reply sid=%s patients=%s outcome=%s", message_sid, [p.pk for p in patients], answer.outcome)
    return Answer(inbound.outcome, inbound.reply)


def _act(word, patients, number):
    if word in sms_replies.STOP:
        return _set_text_consent(patients, False, sms_replies.STOPPED)
    if word in sms_replies.START:
        return _set_text_consent(patients, True, sms_replies.STARTED)
    if word in sms_replies.HELP:
        return Answer("help", sms_replies.HELP_REPLY)
    if not patients:
        return Answer("unknown_number", sms_replies.NOT_KNOWN)
    if word in sms_replies.YES or word in sms_replies.NO:
        return _answer_offer(patients, accept=word in sms_replies.YES)
    if word in sms_replies.CANCEL:
        return _cancel_last(number)
    return Answer("not_understood", sms_replies.UNKNOWN)


def _set_text_consent(patients, consent, reply):
    for patient in patients:
        clinic_actions.set_text_consent(
            patient, consent, by="patient", channel=Via.TEXT_REPLY, source=Patient.ConsentSource.SMS
        )
    return Answer("opted_in" if consent else "opted_out", reply)


def _answer_offer(patients, accept):
    questions = sms_replies.open_questions(patients)
    if not questions:
        return Answer("nothing_open", sms_replies.NOTHING_OPEN)
    if len(questions) > 1:
        return Answer("ambiguous", sms_replies.TWO_OPEN)
    question = questions[0]
    try:
        if isinstance(question, SlotOffer):
            return _answer_slot_offer(question, accept)
        return _answer_move(question, accept)
    except (offers.OfferError, SchedulingError) as refusal:
        return Answer("refused", gettext("Backfill Clinic: {refusal}").format(refusal=refusal))


def _answer_slot_offer(offer, accept):
    if not accept:
        decline_slot_offer(offer, by="patient", channel=Via.TEXT_REPLY)
        return Answer("declined", gettext("Backfill Clinic: you passed on this time. You stay on our waitlist."))
    appointment = accept_slot_offer(offer, by="patient", channel=Via.TEXT_REPLY)
    return Answer(
        "accepted",
        gettext("Backfill Clinic: it's yours. You're booked {when} {where}. Reply CANCEL if you can't come.").format(
            when=sms_replies.when(appointment), where=sms_replies.where_and_who(appointment)
        ),
    )


def _answer_move(appointment, accept):
    if not accept:
        scheduling_actions.decline_move(appointment, by="patient", channel=Via.TEXT_REPLY)
        return Answer(
            "declined",
            gettext("Backfill Clinic: you declined the new time, so it is cancelled. You're first on our waitlist."),
        )
    scheduling_actions.accept_move(appointment, by="patient", channel=Via.TEXT_REPLY)
    return Answer(
        "accepted",
        gettext("Backfill Clinic: thank you, you're confirmed {when} {where}.").format(
            when=sms_replies.when(appointment), where=sms_replies.where_and_who(appointment)
        ),
    )


def _cancel_last(number):
    """Cancel the visit the last text to this number was about, if it is still to come."""
    appointment = sms_replies.last_texted_visit(number)
    if appointment is None:
        return Answer("nothing_to_cancel", sms_replies.NOTHING_TO_CANCEL)
    try:
        # The reply is the confirmation: no message besides it.
        scheduling_actions.cancel_appointment(
            appointment,
            by="patient",
            channel=Via.TEXT_REPLY,
            reason=scheduling_actions.TEXT_REPLY_REASON,
            notify=False,
        )
    except SchedulingError:  # cancelled meanwhile
        return Answer("nothing_to_cancel", sms_replies.NOTHING_TO_CANCEL)
    return Answer(
        "cancelled",
        gettext("Backfill Clinic: your visit {when} {where} is cancelled. Thank you for telling us.").format(
            when=sms_replies.when(appointment), where=sms_replies.where_and_who(appointment)
        ),
    )
