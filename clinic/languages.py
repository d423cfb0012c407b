"""Which language a patient reads (docs/reference.md, Languages).

`Patient.preferred_language` holds whatever the front desk, an integrator or an HL7 feed
(PID-15) sent: "es", "es-MX", "SPA", "Spanish", "español". `supported` reads it as one of
settings.LANGUAGES, or "" when the clinic does not write that language; a patient then reads
the clinic's default (settings.LANGUAGE_CODE, from CLINIC_DEFAULT_LANGUAGE).

Messages are rendered inside `translation.override(language_of(patient))`; a patient's page
also honours its link's `?lang=`, and a page that knows no patient (a broken link) the
browser's Accept-Language. Staff pages stay in the clinic's default.
"""

from django.conf import settings
from django.utils import translation
from django.utils.cache import patch_vary_headers

# Names a sender may use for a language, besides its ISO 639-1 code: ISO 639-2 (HL7's
# table 0296 is often filled with them) and the language's own name and its English one.
OTHER_NAMES = {
    "en": {"eng", "english", "inglés", "ingles"},
    "es": {"spa", "spanish", "español", "espanol", "castellano"},
}

PAGE_PARAMETER = "lang"


def supported(code):
    """The code of settings.LANGUAGES that `code` names, or ""."""
    word = str(code or "").strip().lower().replace("_", "-")
    if not word:
        return ""
    languages = dict(settings.LANGUAGES)
    base = word.split("-")[0]
    if base in languages:
        return base
    return next((language for language, names in OTHER_NAMES.items() if word in names and language in languages), "")


def default():
    return supported(settings.LANGUAGE_CODE) or settings.LANGUAGE_CODE


def language_of(patient):
    """The language this patient reads: their preferred one when the clinic writes it."""
    return supported(getattr(patient, "preferred_language", "")) or default()


def for_patient(patient):
    """`with languages.for_patient(patient):` renders in the patient's language."""
    return translation.override(language_of(patient))


def of_page(request, patient=None):
    """The language a patient's page is shown in: the link's `?lang=`, else the patient's,
    else (no patient known, e.g. a broken link) the browser's, else the clinic's."""
    asked = supported(request.GET.get(PAGE_PARAMETER, ""))
    if asked:
        return asked
    if patient is not None:
        return language_of(patient)
    return supported(translation.get_language_from_request(request)) or default()


def for_page(request, patient=None):
    return translation.override(of_page(request, patient))


def current():
    return supported(translation.get_language()) or default()


class PatientPagesLanguage:
    """Pages a patient reaches without logging in (and their error pages) start in the
    language of `of_page` with no patient known; each view then narrows it to its patient's.
    Every other page stays in the clinic's default: Django's LocaleMiddleware would turn the
    staff pages and the admin into the language of the browser."""

    PATIENT_PATHS = ("/appointments/", "/offers/", "/my/", "/unsubscribe/", "/l/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(self.PATIENT_PATHS):
            return self.get_response(request)
        with for_page(request):
            response = self.get_response(request)
        # A page that knows no patient follows the browser's language: caches must tell them apart.
        patch_vary_headers(response, ["Accept-Language"])
        return response
