"""Messages about an appointment, with the patient's signed links (docs/reference.md, Messages).

Here rather than in clinic/email.py: the outbox is the practice's, but the links name
appointments, which are this app's.
"""

from django.utils import timezone

from clinic.email import queue_patient_email
from scheduling.links import patient_links


def queue_email(kind, appointment, **context):
    """Store a message about an appointment for its patient and send it once committed."""
    location = appointment.provider.location
    context = {
        "appointment": appointment,
        "provider": appointment.provider,
        "location": location,
        "start": location.local(appointment.start),
        "links": patient_links(appointment),
        **context,
    }
    # Every time in the message on the site's clock (docs/reference.md, Time zones)
    with timezone.override(location.zone):
        return queue_patient_email(kind, appointment.patient, context, appointment=appointment)
