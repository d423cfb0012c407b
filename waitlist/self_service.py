"""The patient's own page (signed, patient-bound link; no login): their waitlist entries,
each editable, leaving the list, texts and offers. GET shows, only POST acts, as for every
patient link (docs/reference.md, Messages)."""

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.translation import gettext

from clinic.models import Patient

SALT = "waitlist.self_service"
# A link in a notice keeps working for a while: a patient may come back to it weeks later.
MAX_AGE_DAYS = 60


class BadSelfServiceLink(Exception):
    pass


def make_token(patient):
    return signing.dumps({"p": patient.pk}, salt=SALT, compress=True)


def link_for(patient):
    return settings.SITE_URL + reverse("self-service", kwargs={"token": make_token(patient)})


def read_token(token):
    """The patient a link names, or BadSelfServiceLink with a message for them."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=MAX_AGE_DAYS * 24 * 3600)
    except signing.SignatureExpired:
        raise BadSelfServiceLink(
            gettext("This link has expired. Use the link in our latest message, or contact the clinic.")
        ) from None
    except signing.BadSignature:
        raise BadSelfServiceLink(
            gettext("This link is not valid. It may have been altered or copied incompletely.")
        ) from None
    patient = Patient.objects.filter(pk=payload.get("p")).first()
    if patient is None:
        raise BadSelfServiceLink(gettext("This link no longer matches a patient. Please contact the clinic."))
    return patient
