"""The aging report; mounted at /ar/aging/ (config.urls)."""

from django.urls import path

from billing import aging_views

app_name = "aging"

urlpatterns = [
    path("", aging_views.aging_report, name="report"),
    path("customers/<int:pk>/", aging_views.customer_invoices, name="customer"),
    path("export/", aging_views.export_report, name="export"),
]
