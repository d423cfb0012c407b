"""The translation catalogs: locale/<language>/LC_MESSAGES/django.po, written by people
(docs/operations.md, Languages), compiled here to the .mo files Django reads.

Django's `compilemessages` needs GNU gettext's msgfmt, which a newcomer's machine may lack;
polib is pure Python. `bin/setup` runs `python -m clinic.catalogs`, and the test run compiles
before it starts (tests/conftest.py). Compiled files are never committed (.gitignore): a
stale one would hide a changed translation. Imports nothing of Django, so it runs before
any setting exists.
"""

import os
import sys
from pathlib import Path

import polib

LOCALE = Path(__file__).resolve().parent.parent / "locale"


def catalogs(locale=None):
    return sorted((locale or LOCALE).glob("*/LC_MESSAGES/*.po"))


def compile_catalogs(locale=None):
    """Compile every catalog whose .mo is missing or older than its .po; returns those compiled.
    Fuzzy entries are left out, as msgfmt does: a guess is never sent to a patient."""
    compiled = []
    for po_path in catalogs(locale):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        # Written aside and renamed: parallel test workers compile at once, and none may read half a file.
        partial = mo_path.with_suffix(f".mo.{os.getpid()}")
        polib.pofile(str(po_path)).save_as_mofile(str(partial))
        os.replace(partial, mo_path)
        compiled.append(mo_path)
    return compiled


def main():
    for path in compile_catalogs():
        sys.stdout.write(f"Compiled {path.relative_to(LOCALE.parent)}\n")


if __name__ == "__main__":
    main()
