"""The integrator API under /api/ (docs/reference.md, API).

Paths answer with or without the trailing slash: the seed's own commands use
`POST /api/trigger-workflow`, and a redirect to the slashed path would lose a POST's body.
"""

from django.urls import re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from audit.api import AuditEventViewSet
from backfill.api import FreedSlotViewSet, StatsView
from clinic.api import (
    InsurancePlanViewSet,
    LocationViewSet,
    PatientViewSet,
    ProviderViewSet,
    SpecialtyViewSet,
    api_not_found,
)
from clinic.message_api import MessageViewSet
from clinic.webhook_api import WebhookDeliveryViewSet, WebhookEndpointViewSet
from integrations.hl7.api import Hl7EndpointViewSet, Hl7MessageViewSet
from privacy.api import PatientExportView
from scheduling.api import AppointmentViewSet, TriggerWorkflowView
from waitlist.api import WaitlistEntryViewSet

app_name = "api"

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("locations", LocationViewSet)
router.register("specialties", SpecialtyViewSet)
router.register("insurance-plans", InsurancePlanViewSet)
router.register("providers", ProviderViewSet)
router.register("patients", PatientViewSet)
router.register("appointments", AppointmentViewSet)
router.register("waitlist", WaitlistEntryViewSet, basename="waitlist")
router.register("webhook-endpoints", WebhookEndpointViewSet)
router.register("webhook-deliveries", WebhookDeliveryViewSet)
router.register("messages", MessageViewSet)
router.register("hl7-endpoints", Hl7EndpointViewSet)
router.register("hl7-messages", Hl7MessageViewSet)
router.register("freed-slots", FreedSlotViewSet, basename="freed-slot")
router.register("audit-events", AuditEventViewSet)

# The schema and its docs page describe the API, not the clinic's data: open to read.
urlpatterns = [
    re_path(r"^patients/(?P<pk>[0-9]+)/export/?$", PatientExportView.as_view(), name="patient-export"),
    *router.urls,
    re_path(r"^trigger-workflow/?$", TriggerWorkflowView.as_view(), name="trigger-workflow"),
    re_path(r"^stats/?$", StatsView.as_view(), name="stats"),
    re_path(r"^schema/?$", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    re_path(
        r"^docs/?$",
        SpectacularSwaggerSplitView.as_view(url_name="api:schema", permission_classes=[AllowAny]),
        name="docs",
    ),
    re_path(r"", api_not_found),
]
