"""Checks that `manage.py check --deploy` adds to Django's own: settings a demo or a test
may turn on, which production must not run with."""

from django.conf import settings
from django.core import checks


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
