"""Checks that `manage.py check` (and `--deploy`) adds to Django's own: settings a demo or a test
may turn on, which production must not run with, and translations left uncompiled."""

from django.conf import settings
from django.core import checks

from clinic import catalogs


@checks.register(checks.Tags.security, deploy=True)
def webhooks_stay_outside(app_configs, **kwargs):
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        return []
    return [
        checks.Error(
            "WEBHOOK_ALLOW_PRIVATE is on: an integrator's webhook URL may reach loopback and private "
            "addresses (this machine's services, the cloud's metadata address).",
            hint="Unset WEBHOOK_ALLOW_PRIVATE; it is for the demo and tests with a receiver on this machine.",
            id="clinic.E001",
        )
    ]


@checks.register()
def translations_compiled(app_configs, **kwargs):
    """A catalog not compiled (or older than its .po) leaves patients reading the clinic's default language."""
    stale = [
        po
        for po in catalogs.catalogs()
        if not po.with_suffix(".mo").exists() or po.with_suffix(".mo").stat().st_mtime < po.stat().st_mtime
    ]
    if not stale:
        return []
    return [
        checks.Warning(
            f"{len(stale)} translation catalog(s) not compiled since they changed: "
            f"{', '.join(str(po.parent.parent.name) for po in stale)}.",
            hint="Run bin/setup, or .venv/bin/python -m clinic.catalogs (docs/operations.md, Languages).",
            id="clinic.W001",
        )
    ]
