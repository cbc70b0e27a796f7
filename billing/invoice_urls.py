"""Draft invoices of one customer; mounted under /customers/<pk>/invoices/ (config.urls)."""

from django.urls import path

from billing import invoice_views

app_name = "invoices"

urlpatterns = [
    path("new/", invoice_views.new_invoice, name="new"),
    path("lines/new/", invoice_views.line_row, name="line_row"),
    path("<int:invoice_pk>/", invoice_views.invoice_detail, name="detail"),
    # Only a draft is edited, issued or discarded: `draft_pk` says so (the view still checks).
    path("<int:draft_pk>/edit/", invoice_views.edit_invoice, name="edit"),
    # Last, so that the role × URL matrix's walk reaches the pages above before the draft it
    # uses is issued or discarded.
    path("<int:draft_pk>/issue/", invoice_views.issue_invoice, name="issue"),
    path("<int:draft_pk>/delete/", invoice_views.delete_invoice, name="delete"),
]
