from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from backfill import views as backfill_views
from clinic import views as clinic_views
from scheduling import views as scheduling_views

admin.site.site_header = "Backfill: front desk"
admin.site.site_title = "Backfill"
admin.site.index_title = "Clinic administration"

urlpatterns = [
    path("", RedirectView.as_view(url="/schedule/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/", include("clinic.api_urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("anymail/", include("anymail.urls")),
    path("schedule/", scheduling_views.schedule, name="schedule"),
    path("schedule.html", RedirectView.as_view(url="/schedule/", permanent=False, query_string=True)),
    path("emails/", clinic_views.outbox, name="outbox"),
    path("emails.html", RedirectView.as_view(url="/emails/", permanent=False, query_string=True)),
    path("dashboard/", backfill_views.dashboard, name="dashboard"),
    path("", include("scheduling.urls")),
    path("", include("backfill.urls")),
]
