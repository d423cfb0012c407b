"""What a person or another system can change about the practice's patients, and the words
every app's actions use to say who acted and through which door.

Every write a user can cause is one function in its app's `actions` module (this one,
`waitlist/actions.py`, `scheduling/actions.py`, `backfill/actions.py`), in the manner of
zulip's `do_*`: it takes who acted (`by`) and how (`channel`), opens its transaction, and
says in its own body what follows (messages, events, hand-offs). Staff pages, the admin,
the API, patients' links and texts, the feed and manage.py call the action and nothing else
(docs/how-it-works.md walks one cancellation through them).
"""

import logging
from contextlib import contextmanager

from django.db import models, transaction

log = logging.getLogger("clinic")


class Via(models.TextChoices):
    """The door an action came through."""

    STAFF_PAGE = "staff_page", "Front desk page"
    ADMIN = "admin", "Admin"
    API = "api", "API"
    PATIENT_LINK = "patient_link", "Patient's link"
    TEXT_REPLY = "text_reply", "Patient's text reply"
    FEED = "feed", "Scheduling feed"
    COMMAND = "command", "manage.py"
    BACKFILL = "backfill", "The backfill"
    DEMO = "demo", "Demo"


# Doors a patient acts through themselves: they are sent a confirmation, not told "the clinic cancelled".
PATIENT_DOORS = (Via.PATIENT_LINK, Via.TEXT_REPLY)


def action_transaction(durable=True):
    """The transaction an action opens: the outermost one (durable: once the action returns,
    it has committed), unless its entry point applies a whole unit as one (`one_unit`); then
    the action is part of that transaction, without a savepoint of its own. An action the
    admin's forms call inside their own transaction is not durable."""
    if getattr(transaction.get_connection(), "backfill_one_unit", False):
        return transaction.atomic(savepoint=False)
    return transaction.atomic(durable=durable)


@contextmanager
def one_unit():
    """One durable transaction around several actions and the entry point's own record of
    them: all of it commits, or none. The HL7 feed applies each message so, with the message
    kept and its acknowledgement (docs/hl7.md, "Once, and in order"). An action that refuses
    inside leaves the transaction only to roll back: its exception ends the unit."""
    connection = transaction.get_connection()
    with transaction.atomic(durable=True):
        connection.backfill_one_unit = True
        try:
            yield
        finally:
            connection.backfill_one_unit = False


def actor(by):
    """Who acted, as stored and logged: a user's username, or the name given ("patient", "backfill")."""
    get_username = getattr(by, "get_username", None)
    return str(get_username() if get_username else by)[:100]


def opt_out_of_email(patient, *, by, channel):
    """The patient's one-click unsubscribe: no more emails (texts follow their own consent)."""
    with transaction.atomic(durable=True):
        patient.opt_out_of_email()
    log.info("patient.email_opt_out patient=%s by=%s channel=%s", patient.pk, actor(by), channel)
    return patient


def set_text_consent(patient, consent, *, by, channel, source):
    """Consent to texts given or withdrawn (staff, the API, the patient's page, STOP/START)."""
    with transaction.atomic(durable=True):
        patient.set_sms_consent(consent, source)
    log.info("patient.sms_consent patient=%s consent=%s by=%s channel=%s", patient.pk, consent, actor(by), channel)
    return patient


def switch_to_texts(patient, phone, *, by, channel):
    """The patient asks for texts instead of emails (the unsubscribe page): their number,
    their consent, texts preferred, and no more emails."""
    with transaction.atomic(durable=True):
        patient.phone = phone
        patient.preferred_channel = patient.Channel.SMS
        patient.email_opt_out = True
        patient.save(update_fields=["phone", "preferred_channel", "email_opt_out"])
        patient.set_sms_consent(True, patient.ConsentSource.PATIENT)
    log.info("patient.switched_to_texts patient=%s by=%s channel=%s", patient.pk, actor(by), channel)
    return patient


def set_contact_preferences(patient, preferred_channel, consent, *, by, channel, source, email_opt_out=None):
    """How the patient wants to be reached, and their consent to texts when it changed (None: unchanged).

    `email_opt_out` (None: unchanged) comes only from the patient's own page: taking back an
    opt-out is the patient's act (Patient.check_change_by_staff refuses it to staff)."""
    with transaction.atomic(durable=True):
        if consent is not None:
            patient.set_sms_consent(consent, source)
        patient.preferred_channel = preferred_channel
        changed = ["preferred_channel"]
        if email_opt_out is not None:
            patient.email_opt_out = email_opt_out
            changed.append("email_opt_out")
        patient.save(update_fields=changed)
    log.info(
        "patient.contact patient=%s channel_pref=%s by=%s channel=%s",
        patient.pk,
        preferred_channel,
        actor(by),
        channel,
    )
    return patient


def resume_offers(patient, *, by, channel):
    """Offers paused after several went by are on again (staff in the admin, the patient's page)."""
    with transaction.atomic(durable=True):
        patient.resume_offers()
    log.info("patient.offers_resumed patient=%s by=%s channel=%s", patient.pk, actor(by), channel)
    return patient
