"""Settings for the test run: the product's own, with the queue run in-process.

django-q2 reads `sync` when it is imported, so it is set here rather than with
override_settings. Tests that start a real qcluster run it with clinic.settings.
"""

from clinic.settings import *  # noqa: F403

Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SITE_URL = "http://testserver"
