from django.urls import path

from scheduling import patient_views

urlpatterns = [
    path("appointments/<str:action>/<str:token>/", patient_views.patient_action, name="patient-action"),
]
