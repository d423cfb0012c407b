"""Original-mode acknowledgements (HL7 v2.5.1 section 2.9.2), made by python-hl7.

MSA-1 is AA, AE or AR; MSA-2 echoes the message's MSH-10; on AE and AR, MSA-3 says what was
wrong in words and an ERR segment names the field (ERR-2), the HL7 table 0357 code (ERR-3),
the severity (ERR-4) and the words again (ERR-8).
"""

import hl7
from django.conf import settings
from django.utils import timezone

from integrations.hl7.reading import ERROR_TEXT, value

MSH_FIELDS_AN_ACK_COPIES = 12


def acknowledgement(message, ack_code, problem=None):
    """The ACK for a parsed `message` as text (segments ended by CR)."""
    msh = message.segment("MSH")
    while len(msh) <= MSH_FIELDS_AN_ACK_COPIES:  # create_ack reads MSH-1 to MSH-12
        msh.append(msh.create_field([""]))
    try:
        ack = message.create_ack(
            ack_code,
            message_id=hl7.generate_message_control_id(),
            application=settings.HL7_APPLICATION or None,
            facility=settings.HL7_FACILITY or None,
        )
    except (TypeError, IndexError):  # an MSH too mangled to copy from: answer as for the unreadable
        return rejection_of_unreadable(problem, ack_code, echo=value(message, "MSH", 10))
    # python-hl7 writes MSH-7 in UTC without saying so; HL7 reads a bare time as local.
    ack.segment("MSH").assign_field(timezone.now().strftime("%Y%m%d%H%M%S+0000"), 7)
    if problem is not None:
        add_problem(ack, problem)
    return str(ack)


def rejection_of_unreadable(problem, ack_code="AR", echo=""):
    """An AR for a block that is not an HL7 message at all: there is no MSH-10 to echo."""
    now = timezone.now().strftime("%Y%m%d%H%M%S+0000")
    control_id = hl7.generate_message_control_id()
    template = hl7.parse(
        f"MSH|^~\\&|{settings.HL7_APPLICATION}|{settings.HL7_FACILITY}|||{now}||ACK|{control_id}|P|2.5.1\rMSA|"
    )
    template.segment("MSA").assign_field(ack_code, 1)
    template.segment("MSA").assign_field(template.escape(echo), 2)
    if problem is not None:
        add_problem(template, problem)
    return str(template)


def add_problem(ack, problem):
    msa = ack.segment("MSA")
    msa.assign_field(ack.escape(problem.text[:80]), 3)
    err = ack.create_segment([ack.create_field(["ERR"])])
    if problem.where:
        segment, field = problem.where
        err.assign_field(segment, 2, 1, 1)
        err.assign_field("1", 2, 1, 2)
        err.assign_field(str(field), 2, 1, 3)
    err.assign_field(problem.code, 3, 1, 1)
    err.assign_field(ERROR_TEXT[problem.code], 3, 1, 2)
    err.assign_field("HL70357", 3, 1, 3)
    err.assign_field("E", 4)
    err.assign_field(ack.escape(problem.text), 8)
    ack.append(err)
