from anymail import urls as anymail_urls
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.generic import RedirectView

from clinic import patient_views, second_factor
from frontdesk import appointment_views, outbox
from frontdesk import views as frontdesk_views
from integrations.fhir import api as fhir
from integrations.twilio import views as twilio
from ops import health, metrics
from waitlist import views as waitlist_views


@cache_control(max_age=86400, public=True)
def favicon(request):
    """Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says; the icon itself
    is a static file under its hashed name."""
    return HttpResponseRedirect(static("favicon.ico"))


admin.site.site_header = "Backfill: front desk"
admin.site.site_title = "Backfill"
admin.site.index_title = "Clinic administration"

urlpatterns = [
    path("", RedirectView.as_view(url="/schedule/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/two-factor/", second_factor.confirm, name="second-factor"),
    path("accounts/two-factor/enrol/", second_factor.enrol, name="second-factor-enrol"),
    path("accounts/two-factor/passkeys/", include("django_otp_webauthn.urls", namespace="otp_webauthn")),
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("fhir/", include(fhir)),
    path("schedule/", frontdesk_views.schedule, name="schedule"),
    path("schedule/appointments/<int:pk>/", appointment_views.appointment_detail, name="appointment-detail"),
    path("schedule/appointments/<int:pk>/cancel/", appointment_views.cancel_appointment, name="appointment-cancel"),
    path("schedule/appointments/<int:pk>/retry/", appointment_views.retry_backfill, name="appointment-retry-backfill"),
    path("schedule/appointments/<int:pk>/book/", appointment_views.book_by_hand, name="appointment-book-by-hand"),
    path("schedule.html", RedirectView.as_view(url="/schedule/", permanent=False, query_string=True)),
    path("messages/", outbox.outbox, name="outbox"),
    # The outbox became the messages page; its old path (docs/reference.md, API) still shows it.
    path("emails/", outbox.outbox),
    path("emails.html", RedirectView.as_view(url="/messages/", permanent=False, query_string=True)),
    path("l/<str:code>/", patient_views.short_link, name="short-link"),
    path("unsubscribe/<str:token>/", patient_views.unsubscribe, name="unsubscribe"),
    path("sms/twilio/status/", twilio.status, name="twilio-status"),
    path("sms/twilio/inbound/", twilio.inbound, name="twilio-inbound"),
    path("my/<str:token>/", waitlist_views.self_service, name="self-service"),
    path("dashboard/", frontdesk_views.dashboard, name="dashboard"),
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
