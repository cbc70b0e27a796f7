"""The AR collections worklist; mounted at /ar/worklist/ (config.urls)."""

from django.urls import path

from billing import collections_views as views

app_name = "worklist"

urlpatterns = [
    path("", views.worklist, name="index"),
    path("invoices/<int:overdue_invoice_pk>/call/", views.worklist_log_call, name="log_call"),
    path("invoices/<int:overdue_invoice_pk>/promise/", views.worklist_record_promise, name="record_promise"),
    path("invoices/<int:overdue_invoice_pk>/dispute/", views.worklist_open_dispute, name="open_dispute"),
    path("invoices/<int:overdue_invoice_pk>/collector/", views.worklist_assign_collector, name="assign_collector"),
]
