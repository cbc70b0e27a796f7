"""A customer's printable documents; mounted under /customers/<pk>/documents/ (config.urls)."""

from django.urls import path

from billing import document_views

app_name = "documents"

urlpatterns = [
    path("invoices/<int:invoice_pk>.pdf", document_views.invoice_pdf, name="invoice_pdf"),
    path("statement.pdf", document_views.statement_pdf, name="statement_pdf"),
]
