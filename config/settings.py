"""Backfill settings, read from the environment.

With nothing set Backfill runs as production (docs/reference.md, Production): DEBUG off, a SECRET_KEY required,
HTTPS-only cookies, HSTS and the SSL redirect on. Each security setting can be turned by an
environment variable of Django's own name, so a deployment behind a TLS proxy, or the demo
on loopback (`bin/run`), says so explicitly. The database and broker default to SQLite and
the django-q2 ORM broker, so nothing else needs a service; production sets DATABASE_URL
(PostgreSQL) and optionally REDIS_URL.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name, default=False):
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name, default):
    return int(os.environ.get(name, str(default)))


def refuse_to_start(message):
    # A plain sentence and a non-zero exit, not a traceback: this is an operator's mistake.
    sys.stderr.write(f"Backfill cannot start: {message}\n")
    raise SystemExit(2)


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    refuse_to_start(
        "SECRET_KEY must be set. It signs patients' links and staff sessions; generate one with\n"
        "  python -c 'import secrets; print(secrets.token_urlsafe(50))'\n"
        "(bin/run makes one for the demo and keeps it in .demo/secret_key)."
    )
# Rotation: the old key stays here while links signed with it should keep working.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# Links in emails and texts start with this. Unset, they follow PORT (the port bin/run
# serves on), so a demo on another port still sends links that open.
SITE_URL = os.environ.get("SITE_URL", f"http://127.0.0.1:{os.environ.get('PORT', '8000')}").rstrip("/")

# --- Security (docs/reference.md, Production): on unless the environment turns it off ------------------------

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Behind a TLS-terminating proxy: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    header, _, value = os.environ["SECURE_PROXY_SSL_HEADER"].partition(",")
    SECURE_PROXY_SSL_HEADER = (header.strip(), value.strip() or "https")
# The health checks answer plain HTTP on the machine itself (a load balancer's probe).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_HTTPONLY = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "anymail",
    "axes",
    "csp",
    "phonenumber_field",
    "pgtrigger",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "django_otp_webauthn",
    "audit",
    "clinic",
    "scheduling",
    "waitlist",
    "backfill",
    "integrations.hl7",
    "privacy",
    "frontdesk",
    "ops",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Patients' pages in their language, staff pages in the clinic's (clinic/languages.py).
    "clinic.languages.PatientPagesLanguage",
    # A NUL in the address or a form answers 400 before any view reads it (PostgreSQL refuses NUL).
    "clinic.input_limits.RefuseNulMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Staff sessions end after SESSION_IDLE_MINUTES idle and SESSION_MAX_HOURS in all.
    "clinic.sessions.StaffSessionLimits",
    # request.user.is_verified(): whether this session confirmed a second factor.
    "django_otp.middleware.OTPMiddleware",
    # Accounts that need a second factor reach only its pages until they confirm one.
    "clinic.second_factor.RequireSecondFactor",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Who acts and through which entry point, for the audit trail's triggers.
    "audit.middleware.AuditMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A retried POST under /api/ with the same Idempotency-Key answers the first answer again.
    "clinic.idempotency.IdempotencyMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------

SQLITE_PATH = os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3"))
DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so a web process and a worker
    # wait for each other (timeout) instead of failing with "database is locked" when a
    # read transaction tries to upgrade. WAL lets readers run beside the one writer.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests that start a real worker need a file both processes can open.
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("SQLITE_TEST_PATH", str(BASE_DIR / "test-db.sqlite3"))}
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# A qcluster forks its workers from a process that has already connected (the ORM broker,
# the scheduler): a pool would hand the children connections shared with their parent
# ("prepared statement already exists"). The cluster keeps one plain connection per process.
RUNNING_QCLUSTER = sys.argv[1:2] == ["qcluster"]
if DATABASE_IS_POSTGRES and env_bool("DB_POOL", True) and not RUNNING_QCLUSTER:
    # Django's own pool (psycopg_pool), one per process: the server's connections stay at
    # processes x DB_POOL_MAX_SIZE whatever the load. Under runserver each request thread
    # kept a connection of its own, and 16 API clients exhausted PostgreSQL's 100.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A connection the pool hands out is checked first (Django passes the pool
    # ConnectionPool.check_connection): after a PostgreSQL restart the pool's old
    # connections are dead, and a request must not be the one to find out.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DB_POOL_MIN_SIZE", 1),
            "max_size": env_int("DB_POOL_MAX_SIZE", 4),
            # A request waits this long for a free connection, then fails (503, not a hang).
            "timeout": float(os.environ.get("DB_POOL_TIMEOUT", "10")),
        }
    }
elif DATABASE_IS_POSTGRES:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60)
    # A kept connection is checked before a job (or request) uses it: after a PostgreSQL
    # restart it is dead, and the job that found out would fail and wait for its retry.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASE_IS_POSTGRES and env_bool("POSTGRES_PREPARED_STATEMENTS", True):
    # Bind parameters on the server and prepare a statement once it has run 5 times on a
    # connection: PostgreSQL then skips parsing and planning the ORM's repeated queries,
    # a third of its CPU per cancellation (bench/stages.py). Turn off behind a
    # transaction-pooling pgbouncer older than 1.21.
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "server_side_binding": True,
        "prepare_threshold": 5,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes counts failed logins (the login page and the admin's): after AXES_FAILURE_LIMIT
# failures the account, and separately the client's address, are locked for AXES_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
# Clients' addresses: REMOTE_ADDR, or behind PROXY_COUNT trusted proxies the address the
# outermost one saw in X-Forwarded-For; one rule for the lockout and the throttles.
PROXY_COUNT = env_int("PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "clinic.access.client_address"
# A second factor (clinic/second_factor.py) for these roles and every superuser. Only the
# demo, on plain HTTP on its own machine, may turn it off (MFA_REQUIRED_ROLES=none).
MFA_REQUIRED_ROLES = env_list("MFA_REQUIRED_ROLES", "Clinic manager,Integrator")
if MFA_REQUIRED_ROLES == ["none"]:
    if SECURE_SSL_REDIRECT:
        refuse_to_start(
            "MFA_REQUIRED_ROLES=none turns the second factor off, which only the demo may do, on plain HTTP "
            "(SECURE_SSL_REDIRECT=0)."
        )
    MFA_REQUIRED_ROLES = []
OTP_TOTP_ISSUER = os.environ.get("OTP_TOTP_ISSUER", "Backfill")
# Passkeys (django-otp-webauthn) belong to the site's host name: changing it later means
# every passkey is enrolled again. A passkey is a second factor here, never a password.
OTP_WEBAUTHN_RP_ID = os.environ.get("OTP_WEBAUTHN_RP_ID", urlsplit(SITE_URL).hostname or "localhost")
OTP_WEBAUTHN_RP_NAME = OTP_TOTP_ISSUER
# Browsers offer passkeys only over HTTPS (or on localhost): a site on plain HTTP elsewhere
# (the demo on 127.0.0.1) is given its HTTPS origin, which its pages never have, so no passkey.
_site = urlsplit(SITE_URL)
_origin = f"{_site.scheme}://{_site.netloc}"
OTP_WEBAUTHN_ALLOWED_ORIGINS = env_list(
    "OTP_WEBAUTHN_ALLOWED_ORIGINS",
    _origin if _origin.startswith(("https://", "http://localhost")) else f"https://{_site.netloc}",
)
OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False
# A staff session ends after this long without a request, and this long after the login
# whatever happens (clinic/sessions.py); the cookie itself lasts no longer.
SESSION_IDLE_MINUTES = env_int("SESSION_IDLE_MINUTES", 30)
SESSION_MAX_HOURS = env_int("SESSION_MAX_HOURS", 12)
SESSION_COOKIE_AGE = SESSION_MAX_HOURS * 3600
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/schedule/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Languages (docs/reference.md, Languages): patients read messages and pages in their
# preferred_language when it is one of LANGUAGES, else in the clinic's default; staff pages
# stay in the default. Compiled catalogs (locale/*/LC_MESSAGES/django.mo) are built by
# bin/setup (clinic/catalogs.py), never committed.
LANGUAGES = [("en", "English"), ("es", "Español")]
LANGUAGE_CODE = os.environ.get("CLINIC_DEFAULT_LANGUAGE", "en")
if LANGUAGE_CODE not in dict(LANGUAGES):
    raise ImproperlyConfigured(f"CLINIC_DEFAULT_LANGUAGE must be one of {', '.join(dict(LANGUAGES))}.")
LOCALE_PATHS = [BASE_DIR / "locale"]
# Staff pages and the admin write dates and times as clinic/times.py does (one format per language).
FORMAT_MODULE_PATH = ["clinic.formats"]
TIME_ZONE = os.environ.get("TIME_ZONE", "America/New_York")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# Hashed, compressed names served by whitenoise; `bin/serve` collects them before it starts.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# A Content-Security-Policy on every page (docs/reference.md, Production): scripts and styles only from our own
# static files, so a script stored in a name or a reason could not run. The outbox shows
# each email in a sandboxed iframe (srcdoc), which the sandbox keeps from running scripts.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        # Style attributes place the schedule's cards, and emails carry inline styles; a
        # style cannot run code, so only scripts are held to our own files.
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "frame-src": [SELF],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
    }
}

# Throttles count in this cache (the login lockout is in the database: django-axes' database
# handler): Redis when there is one, so every process shares the counts; otherwise files under
# the project, shared by the processes of one machine (the embedded default). While Redis does
# not answer, each process counts in its own memory, and says so (clinic/cache.py): a Redis
# outage must not take the pages and the API down with it.
if os.environ.get("REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "clinic.cache.RedisWithLocalFallback",
            "LOCATION": os.environ["REDIS_URL"],
            # A Redis that does not answer costs a request at most this, then is left alone for a few seconds.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ.get("CACHE_DIR", str(BASE_DIR / ".cache")),
        }
    }

# --- Audit trail ------------------------------------------------------------------------
# Every change to patients, appointments, waitlist entries, providers, absences, webhook
# endpoints, users and roles is recorded by database triggers (audit/tracking.py), which
# django-pgtrigger installs on PostgreSQL after each migrate; none lives in a migration file.
PGTRIGGER_MIGRATIONS = False
PGTRIGGER_INSTALL_ON_MIGRATE = True
# Entries older than this are deleted by the nightly sweep; nothing else may delete one.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 6 * 365 + 2)  # six years, leap days included
# `manage.py flush` (the test run's reset, the demo's) may empty the trail only when this is on.
AUDIT_ALLOW_FLUSH = env_bool("AUDIT_ALLOW_FLUSH", False)

# Messages, patients' texts and feed messages older than this are deleted every night
# (privacy/retention.py); about two years by default.
MESSAGE_RETENTION_DAYS = env_int("MESSAGE_RETENTION_DAYS", 730)

# --- Queue (django-q2) ------------------------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": "backfill",
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    # A backfill job takes milliseconds; timeout bounds a stuck one, and retry must be
    # larger than timeout or a slow job is redelivered while still running.
    "timeout": 30,
    "retry": 60,
    # The ORM broker redelivers a task whose worker died; bound it so a poison task
    # cannot loop forever. Application-level retries with backoff live in the sweep.
    "max_attempts": 3,
    "ack_failures": True,
    # Successful tasks are not stored (-1): the slot, match log and outbox already record
    # what a job did. Storing them cost the monitor a write per job, and pruning to a
    # limit (e.g. 1000) loads every kept row under a lock per job, which capped the cluster
    # at a few dozen jobs a second (bench/latency.py). Failed tasks are always stored.
    "save_limit": int(os.environ.get("Q_SAVE_LIMIT", "-1")),
    "catch_up": False,
    # A worker is replaced after this many tasks (django-q2's default is 500). A new worker
    # reconnects, prepares its statements and compiles its templates again: at 100 jobs a
    # second the default replaced a worker every few seconds.
    "recycle": int(os.environ.get("Q_RECYCLE", "5000")),
    "poll": float(os.environ.get("Q_POLL", "0.05")),
    "sync": env_bool("Q_SYNC", False),
    "label": "Task queue",
}
# Webhook deliveries run in a cluster of their own (bin/serve starts it at a lower CPU
# priority, `Q_CLUSTER_NAME=webhooks manage.py qcluster`), so sending to a slow or busy
# receiver never takes a worker or CPU from a booking (docs/reference.md, Events, "not on the hot path").
WEBHOOK_QUEUE = "webhooks"
Q_CLUSTER["ALT_CLUSTERS"] = {
    WEBHOOK_QUEUE: {
        "workers": env_int("WEBHOOK_WORKERS", 1),
        # A delivery may wait on a receiver for WEBHOOK_TIMEOUT_SECONDS; one run sends for a
        # second, then queues its continuation.
        "poll": float(os.environ.get("WEBHOOK_POLL", "0.2")),
    },
}
# bin/serve runs each cluster under a watchdog (`manage.py supervise_qcluster`, ops/watchdog.py):
# it puts a check job on the cluster's queue every WATCHDOG_INTERVAL_SECONDS, and when that
# job has waited WATCHDOG_STALL_SECONDS while no job finished for as long (a worker killed
# while holding the queue's lock), it kills the cluster and starts a new one. Longer than
# any job should run (Q_CLUSTER["timeout"]), short enough to refill within a minute.
# Several hosts on one database and broker (docs/operations.md, "Scaling out"): each names
# itself, so each watchdog judges its own clusters (ops/watchdog.py heartbeat_key).
# Unset on a single host.
HOST_NAME = os.environ.get("HOST_NAME", "")
WATCHDOG_INTERVAL_SECONDS = float(os.environ.get("WATCHDOG_INTERVAL_SECONDS", "5"))
WATCHDOG_STALL_SECONDS = float(os.environ.get("WATCHDOG_STALL_SECONDS", "30"))
# Enqueued (by name) after a restart and whenever a cluster's process dies: the jobs it held are gone.
WATCHDOG_RECOVERY_JOB = "ops.sweep.recover_lost_jobs"
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # Reconnects after a PostgreSQL restart instead of stalling the queue for 10 s.
    Q_CLUSTER["broker_class"] = "clinic.queue.OrmBroker"

# --- Email -----------------------------------------------------------------------------

# Production sends through SMTP (EMAIL_HOST...) or an anymail ESP; the console backend,
# which only prints, is the default only with DEBUG on, and otherwise must be chosen.
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Backfill Clinic <appointments@clinic.example>")
# The ESP whose tracking webhook is served: taken from an anymail EMAIL_BACKEND
# ("anymail.backends.sendgrid.EmailBackend" -> "sendgrid"). Its URLs exist only once
# ANYMAIL_WEBHOOK_SECRET ("user:password", the basic auth the ESP sends) is set.
ANYMAIL_ESP = EMAIL_BACKEND.split(".")[2] if EMAIL_BACKEND.startswith("anymail.backends.") else ""
ANYMAIL = {}
if os.environ.get("ANYMAIL_WEBHOOK_SECRET"):
    ANYMAIL["WEBHOOK_SECRET"] = os.environ["ANYMAIL_WEBHOOK_SECRET"]
for key in (
    "SENDGRID_API_KEY",
    "MAILGUN_API_KEY",
    "MAILGUN_SENDER_DOMAIN",
    "POSTMARK_SERVER_TOKEN",
    "AMAZON_SES_CLIENT_PARAMS",
):
    if os.environ.get(key):
        ANYMAIL[key] = os.environ[key]
EMAIL_MAX_ATTEMPTS = int(os.environ.get("EMAIL_MAX_ATTEMPTS", "5"))
# Where the unsubscribe link and List-Unsubscribe header point people with a question.
CLINIC_PHONE = os.environ.get("CLINIC_PHONE", "(617) 555-0100")

# --- Texts (SMS) -------------------------------------------------------------------------
# Phone numbers are stored in E.164; a number typed without +country is read in this region.
PHONENUMBER_DEFAULT_REGION = os.environ.get("PHONE_REGION", "US")
PHONENUMBER_DB_FORMAT = "E164"
# "console" (prints), "locmem" (tests: clinic.sms.outbox), "twilio", or a dotted path to a
# class with send(to, body, status_callback) -> provider message id, as email backends do.
SMS_BACKEND = os.environ.get("SMS_BACKEND", "console")
# Texts name the time, the place and what to do; the provider's name only when this is on
# (a name can tell a specialty, and a text shows on a locked screen).
SMS_NAME_PROVIDER = env_bool("SMS_NAME_PROVIDER", False)
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
# Texts go from this number, or through a messaging service when its SID is set.
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
TWILIO_MESSAGING_SERVICE_SID = os.environ.get("TWILIO_MESSAGING_SERVICE_SID", "")
# Twilio signs the URL it called: behind a proxy, the public base URL (SITE_URL) is what it
# called, not what Django sees.
TWILIO_WEBHOOK_BASE_URL = os.environ.get("TWILIO_WEBHOOK_BASE_URL", "").rstrip("/")

# --- REST API -------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "clinic.access.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every endpoint checks the account's Django permissions (clinic.access.ModelPermissions):
    # an account in no group can do nothing, whatever its is_staff flag says.
    "DEFAULT_PERMISSION_CLASSES": ["clinic.access.ModelPermissions"],
    # Per token (or per staff session): 429 with Retry-After past the rate.
    "DEFAULT_THROTTLE_CLASSES": ["clinic.access.PerTokenThrottle"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Domain refusals (AppointmentConflict, CannotCancel, BackfillError...) answer 409.
    "EXCEPTION_HANDLER": "clinic.api.api_exception_handler",
    # The API speaks JSON (docs/reference.md, API); one request format keeps the schema and its checks simple.
    # JSON nested deeper than 64 levels, or with NUL in a string, is a 400 (clinic/input_limits.py).
    "DEFAULT_PARSER_CLASSES": ["clinic.input_limits.BoundedJSONParser"],
}
# Abuse limits (docs/reference.md, Production), as "N/second|minute|hour|day".
API_THROTTLE_RATE = os.environ.get("API_THROTTLE_RATE", "1200/minute")  # per token or staff session
PATIENT_LINK_THROTTLE_RATE = os.environ.get("PATIENT_LINK_THROTTLE_RATE", "30/minute")  # per client address
# Clients' addresses come from X-Forwarded-For only behind PROXY_COUNT trusted proxies; 0
# ignores the header (None would trust all of it). clinic.access.client_address applies it.
REST_FRAMEWORK["NUM_PROXIES"] = PROXY_COUNT

# Bounds on what the API accepts: an appointment's length, and how far back and ahead a
# waitlist entry's earliest/latest dates may be (a little back: the caller's "today" may be
# behind ours).
APPOINTMENT_MAX_HOURS = env_int("APPOINTMENT_MAX_HOURS", 8)
WAITLIST_DATES_PAST_DAYS = env_int("WAITLIST_DATES_PAST_DAYS", 7)
WAITLIST_DATES_AHEAD_DAYS = env_int("WAITLIST_DATES_AHEAD_DAYS", 730)

# Webhooks (docs/reference.md, Events): a delivery is retried for this long, then failed; an endpoint whose
# every delivery failed for this long is disabled.
WEBHOOK_RETRY_HOURS = env_int("WEBHOOK_RETRY_HOURS", 24)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
# Delivered webhooks are deleted by the sweep this many days after delivery (failed ones stay,
# to be re-sent); the integrator's log of deliveries goes back this far.
WEBHOOK_DELIVERY_RETENTION_DAYS = env_int("WEBHOOK_DELIVERY_RETENTION_DAYS", 30)
# Webhook URLs may name loopback and private addresses only with this on: for the demo and
# tests whose receiver runs on this machine. `check --deploy` refuses it (clinic/checks.py).
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", False)
# While events keep coming, a run waits this long between its passes, to send a burst's
# events in one pass (bench/latency.py --webhook 1).
WEBHOOK_BATCH_SECONDS = float(os.environ.get("WEBHOOK_BATCH_SECONDS", "0.5"))
# The HL7 v2 interface (docs/hl7.md). `manage.py hl7_listen` serves MLLP on HL7_BIND
# (host:port; bin/serve starts it when set). Acknowledgements name Backfill as HL7_APPLICATION
# at HL7_FACILITY; PID-3's MRN is the repetition assigned by HL7_MRN_AUTHORITY (empty: the
# one typed MR, else the first). A connection silent for HL7_IDLE_SECONDS is closed; a
# message longer than HL7_MAX_MESSAGE_BYTES is refused. Messages are kept HL7_RETENTION_DAYS.
HL7_BIND = os.environ.get("HL7_BIND", "")
HL7_APPLICATION = os.environ.get("HL7_APPLICATION", "BACKFILL")
HL7_FACILITY = os.environ.get("HL7_FACILITY", "")
HL7_MRN_AUTHORITY = os.environ.get("HL7_MRN_AUTHORITY", "")
HL7_IDLE_SECONDS = env_int("HL7_IDLE_SECONDS", 600)
HL7_MAX_MESSAGE_BYTES = env_int("HL7_MAX_MESSAGE_BYTES", 1024 * 1024)
HL7_RETENTION_DAYS = env_int("HL7_RETENTION_DAYS", 90)
# Messages applied at once (one thread and database connection each): at most the pool's size.
HL7_WORKERS = env_int("HL7_WORKERS", env_int("DB_POOL_MAX_SIZE", 4))
# Outbound: an endpoint's acknowledgement is awaited this long; a message is retried with
# backoff for HL7_RETRY_HOURS, then given up (shown in the admin, re-sent by hand).
HL7_TIMEOUT_SECONDS = env_int("HL7_TIMEOUT_SECONDS", 10)
HL7_RETRY_HOURS = env_int("HL7_RETRY_HOURS", 24)
# The identifier system under which integrators' external ids appear in the FHIR view.
FHIR_IDENTIFIER_SYSTEM = os.environ.get("FHIR_IDENTIFIER_SYSTEM", "urn:backfill:external-id")
# An Idempotency-Key is remembered this long.
IDEMPOTENCY_HOURS = env_int("IDEMPOTENCY_HOURS", 24)

# GET /metrics: a staff token with the view_metrics permission, or this bearer secret
# (for a Prometheus scraper). Unset: a token only.
METRICS_SCRAPE_SECRET = os.environ.get("METRICS_SCRAPE_SECRET", "")
# /readyz answers 503 while the sweep has not run for this long or an open freed slot has
# waited this long for its job.
READY_SWEEP_STALE_SECONDS = env_int("READY_SWEEP_STALE_SECONDS", 180)
READY_SLOT_STUCK_SECONDS = env_int("READY_SLOT_STUCK_SECONDS", 300)

SPECTACULAR_SETTINGS = {
    "TITLE": "Backfill API",
    "DESCRIPTION": "Appointments, waitlist, freed slots and the provider-unavailable workflow.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components, so read-only fields (id, status) are not
    # asked for in request bodies.
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page's JavaScript is served from our static files, so it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "clinic.api.document_error_responses",
    ],
    # Three models have a "status"; name each one's choices in the schema.
    "ENUM_NAME_OVERRIDES": {
        "AppointmentStatusEnum": "scheduling.models.Appointment.Status",
        "WaitlistStatusEnum": "waitlist.models.WaitlistEntry.Status",
        "FreedSlotStatusEnum": "backfill.models.FreedSlot.Status",
        # Two fields named "events": the webhooks' keeps its name, the HL7 endpoints' has its own.
        "EventsEnum": "clinic.webhook_api.SUBSCRIBABLE",
        "Hl7EventEnum": "integrations.hl7.models.OUTBOUND_EVENTS",
    },
}

# --- Backfill tunables (docs/reference.md, Rules, 6): the seed's defaults ----------------------------------

BACKFILL = {
    # Matching (docs/reference.md, Rules)
    "MIN_NO_SHOW_RISK": 0.6,  # 0 turns the risk filter off
    "MIN_SCORE": 50,
    "HIGH_RISK_THRESHOLD": 0.8,
    "HIGH_RISK_POINTS": 40,
    "MEDIUM_RISK_THRESHOLD": 0.6,
    "MEDIUM_RISK_POINTS": 30,
    # A learned risk (set by the no-show model) is judged by where it stands among the
    # clinic's scored patients: each threshold above has a quantile it stands for, rising
    # with the thresholds and equal where they are (clinic/risk_scale.py, docs/rules.md).
    # The median is the floor (and, as the floor is the medium threshold, +30); the highest
    # fifth gets +40.
    "LEARNED_FLOOR_QUANTILE": 0.5,
    "LEARNED_MEDIUM_RISK_QUANTILE": 0.5,
    "LEARNED_HIGH_RISK_QUANTILE": 0.8,
    "SPECIALTY_POINTS": 20,
    "AVAILABILITY_POINTS": 20,
    "LOCATION_POINTS": 10,
    # docs/reference.md, Rules: booking someone on a day they said they can't come manufactures a no-show.
    "REQUIRE_AVAILABILITY": True,
    # Beyond the seed: points when the slot falls inside the entry's stated time windows.
    "TIME_OF_DAY_POINTS": 0,
    # Beyond the seed: a patient moved earlier releases their later appointment, which is
    # backfilled in turn.
    "CHAIN_BACKFILL": False,
    # Beyond the seed: several slots of one specialty freed at once (a provider's afternoon)
    # are filled together, assigning patients to maximise the total score.
    "BATCH_BACKFILL": False,
    # Beyond the seed: instead of booking, email the top OFFER_TOP_N candidates a
    # time-limited offer; the first to accept wins, the next ones are offered on expiry.
    "OFFER_MODE": False,
    "OFFER_TOP_N": 3,
    "OFFER_MINUTES": 30,
    # A slot starting sooner than this is not worth auto-booking.
    "MIN_LEAD_MINUTES": 60,
    # How many ranked candidates a run looks at (and logs) per location group.
    "CANDIDATE_POOL": 10,
    # Failure handling: the sweep retries a failed job with exponential backoff.
    "MAX_ATTEMPTS": 5,
    "RETRY_BACKOFF_SECONDS": 30,
    # A slot still open this long after its job was enqueued is presumed lost (a job takes
    # milliseconds; Redis keeps nothing across a restart). With the sweep every 30 s, a slot
    # whose job was lost is handled within a minute (docs/reference.md, Production).
    "LOST_JOB_SECONDS": 30,
    # Dashboard / stats (seed: $120 lost per empty slot)
    "SLOT_VALUE": 120,
    # Reassignment (docs/reference.md, Reassignment)
    "REASSIGN_SAME_LOCATION_POINTS": 40,
    "REASSIGN_PREFERRED_LOCATION_POINTS": 20,
    "REASSIGN_SEEN_BEFORE_POINTS": 20,
    "REASSIGN_SAME_TIME_POINTS": 20,
    "REASSIGN_MIN_SCORE": 60,
    # A move to another location waits this long (at most) for the patient's yes, then is released.
    "REASSIGN_ANSWER_HOURS": 24,
    # No-show model (docs/reference.md, No-show model, scheduling/no_show.py): used only when it ranks the newest
    # visits it never saw at least this well; trained only on at least this many visits.
    "NO_SHOW_MIN_AUC": 0.6,
    "NO_SHOW_MIN_VISITS": 200,
    # Contact rules: no offer is sent in these hours of the clinic's local time (it waits
    # until they end; an offer that could not be answered in time by then is not sent);
    # empty turns them off. Booking confirmations are not offers and go at once.
    "QUIET_HOURS": "20:00-08:00",
    # At most this many offers per patient in 7 days.
    "MAX_OFFERS_PER_WEEK": 3,
    # A patient who let this many offers in a row go by (declined or expired) gets no more
    # until staff or the patient resume them; 0 turns it off.
    "PAUSE_AFTER_DECLINES": 3,
}


def env_override(defaults, prefix):
    """BACKFILL_MIN_SCORE=40 in the environment overrides BACKFILL["MIN_SCORE"]."""
    for name, default in defaults.items():
        raw = os.environ.get(prefix + name)
        if raw is None:
            continue
        defaults[name] = env_bool(prefix + name) if isinstance(default, bool) else type(default)(raw)


env_override(BACKFILL, "BACKFILL_")

# --- Logging --------------------------------------------------------------------------

LOG_DIR = Path(os.environ.get("LOG_DIR", BASE_DIR / "logs"))
LOG_DIR.mkdir(parents=True, exist_ok=True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        # One event, one line: newlines and control characters in logged values (a cancel
        # reason, a name) are escaped, so a value cannot forge a line of its own.
        "plain": {"()": "clinic.log.OneLineFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {"unhandled_errors_only": {"()": "clinic.log.UnhandledErrorsOnly"}},
    "handlers": {
        # LOG_CONSOLE_LEVEL=WARNING keeps a command's own story readable (bin/manage sets it);
        # the file below still gets every line.
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "level": os.environ.get("LOG_CONSOLE_LEVEL", "INFO"),
        },
        "file": {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(LOG_DIR / "api.log"),
            "maxBytes": 5 * 1024 * 1024,
            "backupCount": 5,
            "formatter": "plain",
            "delay": True,
        },
    },
    "loggers": {
        "backfill": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
        "scheduling": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
        "clinic": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
        "ops": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
        # Every unhandled error, with its traceback (Django logs it here, then answers 500 or
        # 503: clinic/errors.py). Django's own handlers would print it only with DEBUG on.
        "django.request": {
            "handlers": ["console", "file"],
            "level": "ERROR",
            "filters": ["unhandled_errors_only"],
            "propagate": False,
        },
        "hl7": {"handlers": ["console", "file"], "level": "INFO", "propagate": False},
    },
}
