"""Settings for the test run: the product's own, with the queue run in-process.

django-q2 reads `sync` when it is imported, so it is set here rather than with
override_settings. Tests that start a real qcluster run it with config.settings; the
environment set here reaches them too, so they sign links with the same key.
"""

import os
import secrets

# Production is the default (docs/reference.md, Production); the test run says what it differs in, as bin/run does.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
    os.environ.setdefault(name, "0")
os.environ.setdefault("SECURE_HSTS_SECONDS", "0")
# Transactional tests empty every table between tests, the audit trail included.
os.environ.setdefault("AUDIT_ALLOW_FLUSH", "1")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

from config.settings import *  # noqa: E402,F403

Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SITE_URL = "http://testserver"
# Tests render pages without running collectstatic first; bin/serve's manifest storage is
# tested through bin/serve itself.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SMS_BACKEND = "locmem"
# Tests log staff in with force_login; the second factor's own tests turn it on.
MFA_REQUIRED_ROLES = []
# Contact rules are tested on their own, with frozen time; elsewhere offers go at any hour.
BACKFILL = {**BACKFILL, "QUIET_HOURS": ""}  # noqa: F405
TWILIO_ACCOUNT_SID = "AC" + "0" * 32
TWILIO_AUTH_TOKEN = "test-auth-token"
TWILIO_FROM_NUMBER = "+16175550199"
WEBHOOK_BATCH_SECONDS = 0.01  # a run's pause between passes; the tests' receivers answer at once
