from django.urls import path

from backfill import offer_views

urlpatterns = [
    path("offers/<str:action>/<str:token>/", offer_views.offer_action, name="slot-offer-action"),
]
