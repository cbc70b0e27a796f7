"""A connection's reconciliation report; mounted under /sync/connections/<int:connection_pk>/reconciliation/
(config.urls). Who may use it: integrations/access.py."""

from django.urls import path

from . import reconciliation_views

app_name = "reconciliation"

urlpatterns = [
    path("", reconciliation_views.report_page, name="report"),
    path("run/", reconciliation_views.run_report, name="run"),
]
