"""The receivables dashboard; mounted at /ar/dashboard/ (config.urls)."""

from django.urls import path

from billing import dashboard_views

app_name = "dashboard"

urlpatterns = [
    path("", dashboard_views.dashboard, name="index"),
]
