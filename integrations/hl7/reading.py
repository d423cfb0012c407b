"""Reading an HL7 v2 message: python-hl7 parses it; this module says which field means what
to Backfill (docs/hl7.md lists every segment and field), and names the field that is wrong.
"""

import functools
from dataclasses import dataclass
from datetime import timedelta

import hl7
import phonenumbers
from django.conf import settings
from django.utils import timezone

# HL7 table 0357, the error codes an ERR segment carries.
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_VERSION = "203"
UNKNOWN_KEY = "204"
APPLICATION_RECORD_LOCKED = "206"
APPLICATION_INTERNAL_ERROR = "207"

ERROR_TEXT = {
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_VERSION: "Unsupported version id",
    UNKNOWN_KEY: "Unknown key identifier",
    APPLICATION_RECORD_LOCKED: "Application record locked",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

SUPPORTED = {
    "SIU": {"S12", "S13", "S14", "S15", "S17", "S26"},
    "ADT": {"A04", "A08", "A40"},
}
VERSIONS = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1"}
# HL7 table 0444-like units of AIS-6/AIS-8 and SCH-10 (ISO+ units), in minutes.
MINUTES_PER_UNIT = {"S": 1 / 60, "M": 1, "MIN": 1, "H": 60, "HR": 60, "D": 1440}


class Hl7Problem(Exception):
    """What is wrong with a message, and where: it becomes the acknowledgement's MSA and ERR.

    `ack_code` is AE (the message was read, but cannot be applied) or AR (it cannot be read
    or is not one Backfill takes); `where` is (segment, field) as in "PID-3".
    """

    def __init__(self, text, *, code, where=None, ack_code="AE"):
        super().__init__(text)
        self.text = text
        self.code = code
        self.where = where
        self.ack_code = ack_code


def parse(text):
    """The parsed message; Hl7Problem (AR) when python-hl7 cannot read it as one message."""
    try:
        message = hl7.parse(text)
        message.segment("MSH")
    except (hl7.ParseException, KeyError, IndexError, ValueError, AssertionError) as error:
        raise Hl7Problem(f"Not an HL7 message: {error}", code=DATA_TYPE_ERROR, ack_code="AR") from error
    return message


def value(message, segment, field, repetition=1, component=1, subcomponent=1):
    """One field's text, unescaped; "" when the segment or field is absent."""
    try:
        found = message.extract_field(segment, 1, field, repetition, component, subcomponent)
    except (KeyError, IndexError, TypeError):  # absent, or shallower than asked (a mangled field)
        return ""
    return str(found).strip()


def repetitions(message, segment, field):
    try:
        return len(message.segment(segment)(field))
    except (KeyError, IndexError, TypeError):
        return 0


def has_segment(message, segment):
    return any(str(part[0][0]) == segment for part in message)


@dataclass
class Header:
    sender: str
    message_type: str
    event: str
    control_id: str
    version: str
    sent_at: object  # aware datetime or None


def header(message):
    """MSH, checked: a message Backfill does not take is rejected (AR)."""
    kind, event = value(message, "MSH", 9, 1, 1), value(message, "MSH", 9, 1, 2)
    sender = "^".join(part for part in (value(message, "MSH", 3), value(message, "MSH", 4)) if part)
    control_id = value(message, "MSH", 10)
    version = value(message, "MSH", 12, 1, 1)
    found = Header(sender or "unnamed sender", f"{kind}^{event}", event, control_id, version, None)
    if not control_id:
        raise Hl7Problem(
            "MSH-10 (message control id) is empty.", code=REQUIRED_FIELD_MISSING, where=("MSH", 10), ack_code="AR"
        )
    if kind not in SUPPORTED:
        raise Hl7Problem(
            f"Backfill takes SIU and ADT messages, not {kind or 'an empty MSH-9'}.",
            code=UNSUPPORTED_MESSAGE_TYPE,
            where=("MSH", 9),
            ack_code="AR",
        )
    if event not in SUPPORTED[kind]:
        raise Hl7Problem(
            f"Backfill does not take {kind}^{event}.", code=UNSUPPORTED_EVENT_CODE, where=("MSH", 9), ack_code="AR"
        )
    if version not in VERSIONS:
        raise Hl7Problem(
            f"Version {version or '(empty)'} is not one of 2.3 to 2.5.1.",
            code=UNSUPPORTED_VERSION,
            where=("MSH", 12),
            ack_code="AR",
        )
    found.sent_at = moment(value(message, "MSH", 7), ("MSH", 7), timezone.get_default_timezone())
    return found


def moment(text, where, zone):
    """A TS/DTM as an aware datetime: its own offset, or else on `zone`'s clock; None if empty."""
    if not text:
        return None
    try:
        parsed = hl7.parse_datetime(text)
    except (ValueError, OverflowError) as error:
        raise Hl7Problem(
            f"{where[0]}-{where[1]} is not a date and time: {text!r}.", code=DATA_TYPE_ERROR, where=where
        ) from error
    if parsed.tzinfo is None:
        return timezone.make_aware(parsed, zone)
    return parsed


def minutes(amount, unit, where, zero_allowed=False):
    """A duration or offset in `unit` (S, M/MIN, H/HR, D; default minutes), up to a day; None if empty."""
    if not amount:
        return None
    try:
        number = float(amount)
        per_unit = MINUTES_PER_UNIT[(unit or "M").upper()]
    except (ValueError, KeyError) as error:
        raise Hl7Problem(
            f"{where[0]}-{where[1]} is not a duration: {amount!r} {unit!r}.", code=DATA_TYPE_ERROR, where=where
        ) from error
    total = number * per_unit
    if total < 0 or total > 24 * 60 or (total == 0 and not zero_allowed):
        raise Hl7Problem(f"{where[0]}-{where[1]} is not a duration of up to a day.", code=DATA_TYPE_ERROR, where=where)
    return timedelta(minutes=total)


@dataclass
class PatientFacts:
    mrn: str
    family_name: str
    given_name: str
    birth_date: object
    phone: str  # E.164 or ""
    email: str
    language: str


def patient_facts(message, segment="PID"):
    """PID: the MRN (PID-3, the repetition of HL7_MRN_AUTHORITY or typed MR), name, birth, phone, language."""
    mrn = medical_record_number(message, segment)
    if not mrn:
        raise Hl7Problem("PID-3 (the patient's MRN) is empty.", code=REQUIRED_FIELD_MISSING, where=(segment, 3))
    born = value(message, segment, 7)
    birth = moment(born, (segment, 7), timezone.get_default_timezone()) if born else None
    phone, email = contact(message, segment)
    return PatientFacts(
        mrn=mrn,
        family_name=value(message, segment, 5, 1, 1)[:60],
        given_name=value(message, segment, 5, 1, 2)[:60],
        birth_date=birth.date() if birth else None,
        phone=phone,
        email=email,
        language=value(message, segment, 15, 1, 1)[:16],
    )


def medical_record_number(message, segment):
    authority = settings.HL7_MRN_AUTHORITY
    count = max(repetitions(message, segment, 3), 1)
    identifiers = [
        (value(message, segment, 3, n, 1), value(message, segment, 3, n, 4), value(message, segment, 3, n, 5))
        for n in range(1, count + 1)
    ]
    for number, assigned_by, kind in identifiers:
        if number and (assigned_by == authority if authority else kind == "MR"):
            return number[:100]
    return "" if authority else identifiers[0][0][:100]


def contact(message, segment):
    """PID-13: the first telephone number as E.164 (read in PHONENUMBER_DEFAULT_REGION), and an email."""
    phone = email = ""
    for n in range(1, max(repetitions(message, segment, 13), 1) + 1):
        use = value(message, segment, 13, n, 3)
        if use in ("Internet", "X.400") or value(message, segment, 13, n, 2) == "NET":
            email = email or value(message, segment, 13, n, 4)
            continue
        typed = value(message, segment, 13, n, 1)
        if not typed:  # 2.5 puts the number in parts: country, area, local
            country, area, local = (value(message, segment, 13, n, c) for c in (5, 6, 7))
            typed = f"+{country}{area}{local}" if country and local else f"{area}{local}"
        phone = phone or e164(typed)
    return phone, email[:254]


def e164(typed):
    return _e164(typed, settings.PHONENUMBER_DEFAULT_REGION)


@functools.lru_cache(maxsize=4096)
def _e164(typed, region):
    # A feed repeats its patients' numbers; reading one cost phonenumbers 0.1-0.2 ms of CPU.
    try:
        number = phonenumbers.parse(typed, region)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass
class Booking:
    """What an SIU message says about one appointment."""

    reference: str  # the EHR's id: SCH-2 (filler) when given, else SCH-1 (placer)
    reason: str
    provider_code: str
    location_code: str
    specialty_code: str
    start_text: str
    start_where: tuple
    offset: object  # timedelta
    duration: object  # timedelta or None
    end_text: str


def booking(message):
    reference = value(message, "SCH", 2, 1, 1) or value(message, "SCH", 1, 1, 1)
    if not reference:
        raise Hl7Problem(
            "SCH-1 and SCH-2 (the appointment's ids) are both empty.", code=REQUIRED_FIELD_MISSING, where=("SCH", 2)
        )
    start_text, start_where = value(message, "AIS", 4), ("AIS", 4)
    if not start_text:
        start_text, start_where = value(message, "SCH", 11, 1, 4), ("SCH", 11)
    offset = minutes(value(message, "AIS", 5), value(message, "AIS", 6, 1, 1), ("AIS", 5), zero_allowed=True)
    duration = minutes(value(message, "AIS", 7), value(message, "AIS", 8, 1, 1), ("AIS", 7)) or minutes(
        value(message, "SCH", 9), value(message, "SCH", 10, 1, 1), ("SCH", 9)
    )
    return Booking(
        reference=reference[:100],
        reason=(value(message, "SCH", 6, 1, 2) or value(message, "SCH", 6, 1, 1))[:200],
        provider_code=value(message, "AIP", 3, 1, 1),
        location_code=value(message, "AIL", 3, 1, 1),
        specialty_code=value(message, "AIS", 3, 1, 1),
        start_text=start_text,
        start_where=start_where,
        offset=offset or timedelta(),
        duration=duration,
        end_text=value(message, "SCH", 11, 1, 5),
    )
