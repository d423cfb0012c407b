from anymail import urls as anymail_urls
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from backfill import appointment_views, fhir, health
from backfill import sms_views as backfill_sms_views
from backfill import views as backfill_views
from clinic import patient_views as clinic_patient_views
from clinic import second_factor
from clinic import views as clinic_views
from waitlist import views as waitlist_views

admin.site.site_header = "Backfill: front desk"
admin.site.site_title = "Backfill"
admin.site.index_title = "Clinic administration"

urlpatterns = [
    path("", RedirectView.as_view(url="/schedule/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("clinic.api_urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/two-factor/", second_factor.confirm, name="second-factor"),
    path("accounts/two-factor/enrol/", second_factor.enrol, name="second-factor-enrol"),
    path("accounts/two-factor/passkeys/", include("django_otp_webauthn.urls", namespace="otp_webauthn")),
    path("favicon.ico", clinic_views.favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("fhir/", include(fhir)),
    path("schedule/", backfill_views.schedule, name="schedule"),
    path("schedule/appointments/<int:pk>/", appointment_views.appointment_detail, name="appointment-detail"),
    path("schedule/appointments/<int:pk>/cancel/", appointment_views.cancel_appointment, name="appointment-cancel"),
    path("schedule/appointments/<int:pk>/retry/", appointment_views.retry_backfill, name="appointment-retry-backfill"),
    path("schedule/appointments/<int:pk>/book/", appointment_views.book_by_hand, name="appointment-book-by-hand"),
    path("schedule.html", RedirectView.as_view(url="/schedule/", permanent=False, query_string=True)),
    path("messages/", clinic_views.outbox, name="outbox"),
    # The outbox became the messages page; its old path (docs/reference.md, API) still shows it.
    path("emails/", clinic_views.outbox),
    path("emails.html", RedirectView.as_view(url="/messages/", permanent=False, query_string=True)),
    path("l/<str:code>/", clinic_patient_views.short_link, name="short-link"),
    path("unsubscribe/<str:token>/", clinic_patient_views.unsubscribe, name="unsubscribe"),
    path("sms/twilio/status/", clinic_patient_views.twilio_status, name="twilio-status"),
    path("sms/twilio/inbound/", backfill_sms_views.twilio_inbound, name="twilio-inbound"),
    path("my/<str:token>/", waitlist_views.self_service, name="self-service"),
    path("dashboard/", backfill_views.dashboard, name="dashboard"),
    path("", include("scheduling.urls")),
    path("", include("backfill.urls")),
]


def tracking_webhooks():
    """Only the configured ESP's webhooks, and only once their secret is set: no other
    ESP's endpoint exists to be probed, and none accepts a built-in credential."""
    if not (settings.ANYMAIL_ESP and settings.ANYMAIL.get("WEBHOOK_SECRET")):
        return []
    prefix = f"{settings.ANYMAIL_ESP}/"
    return [pattern for pattern in anymail_urls.urlpatterns if str(pattern.pattern).lstrip("^").startswith(prefix)]


urlpatterns.append(path("anymail/", include(tracking_webhooks())))
handler500 = "clinic.errors.server_error"
