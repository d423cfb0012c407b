"""The Spanish catalog covers every string a patient can read (docs/operations.md, Languages).

The strings are read from the sources as makemessages reads them (Django's own `templatize`
for templates, the gettext calls in Python), in pure Python: a machine without GNU gettext
runs this test too. Staff pages are marked for translation but stay in the clinic's
language, so their strings need no Spanish.
"""

import ast
import re
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils.translation.template import templatize

from clinic import catalogs

ROOT = Path(settings.BASE_DIR)
CATALOG = ROOT / "locale" / "es" / "LC_MESSAGES" / "django.po"
STAFF_ONLY = ("templates/staff/", "templates/admin/", "templates/registration/", "templates/403.html", "frontdesk/")
NOT_SOURCES = ("tests/", "bench/", "docs/", "static/", "staticfiles/", "locale/", ".venv/", ".cache/")
GETTEXT_CALLS = {
    "gettext": ("msgid",),
    "gettext_lazy": ("msgid",),
    "ngettext": ("msgid", "plural"),
    "ngettext_lazy": ("msgid", "plural"),
    "pgettext": ("context", "msgid"),
    "pgettext_lazy": ("context", "msgid"),
    "npgettext": ("context", "msgid", "plural"),
    "npgettext_lazy": ("context", "msgid", "plural"),
}
# templatize writes each marked string as a call with Python string literals.
TEMPLATIZED_CALL = re.compile(r"\b(n?p?gettext)\(((?:u'(?:[^'\\]|\\.)*'(?:, )?)+)")
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")
# clinic/times.py gives each of its patterns every one of these, whichever the original names.
TIME_NAMES = {"{weekday}", "{weekday_short}", "{month}", "{month_short}", "{day}", "{year}", "{date}", "{time}"}


def _python_strings(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        roles = GETTEXT_CALLS.get(name)
        if not roles or not all(isinstance(arg, ast.Constant) for arg in node.args[: len(roles)]):
            continue
        found = dict(zip(roles, (arg.value for arg in node.args), strict=False))
        yield found.get("context"), found["msgid"]


def _template_strings(path):
    for match in TEMPLATIZED_CALL.finditer(templatize(path.read_text(), origin=str(path))):
        literals = ast.literal_eval(f"({match.group(2).rstrip(', ')},)")
        with_context = match.group(1).startswith(("pgettext", "npgettext"))
        yield (literals[0], literals[1]) if with_context else (None, literals[0])


def patient_strings():
    """{(context, msgid): first file} for every marked string a patient can read."""
    found = {}
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(NOT_SOURCES + STAFF_ONLY) or "/migrations/" in relative or not path.is_file():
            continue
        if path.suffix == ".py":
            strings = _python_strings(path)
        elif relative.startswith("templates/"):
            strings = _template_strings(path)
        else:
            continue
        for key in strings:
            found.setdefault(key, relative)
    return found


@pytest.fixture(scope="module")
def catalog():
    return {(entry.msgctxt, entry.msgid): entry for entry in polib.pofile(str(CATALOG)) if not entry.obsolete}


def test_the_sources_mark_the_strings_patients_read():
    strings = patient_strings()
    assert (None, "Hello %(name)s,") in strings
    assert ("time of day", "PM") in strings
    assert (None, "This link is not one we sent.") in strings


def test_every_string_a_patient_reads_has_a_spanish_translation(catalog):
    missing = {
        f"{where}: {msgid!r}"
        for (context, msgid), where in patient_strings().items()
        if (context, msgid) not in catalog or not catalog[(context, msgid)].translated()
    }
    assert not missing, "Translate in locale/es/LC_MESSAGES/django.po:\n" + "\n".join(sorted(missing))


def test_no_translation_is_fuzzy(catalog):
    fuzzy = [entry.msgid for entry in catalog.values() if entry.fuzzy]
    assert not fuzzy, fuzzy


def test_each_translation_keeps_the_placeholders_of_its_original(catalog):
    broken = []
    for entry in catalog.values():
        translations = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        for translation in filter(None, translations):
            wanted, used = set(PLACEHOLDER.findall(entry.msgid)), set(PLACEHOLDER.findall(translation))
            allowed = wanted | TIME_NAMES if wanted <= TIME_NAMES else wanted
            if not wanted <= used | TIME_NAMES or not used <= allowed:
                broken.append(entry.msgid)
    assert not broken, broken


def test_a_catalog_changed_since_it_was_compiled_is_reported_by_manage_py_check(tmp_path, monkeypatch):
    po = tmp_path / "es" / "LC_MESSAGES" / "django.po"
    po.parent.mkdir(parents=True)
    po.write_text(CATALOG.read_text())
    monkeypatch.setattr(catalogs, "LOCALE", tmp_path)

    with pytest.raises(SystemCheckError, match="clinic.W001"):
        call_command("check", fail_level="WARNING")
    catalogs.compile_catalogs(tmp_path)
    call_command("check", fail_level="WARNING")
