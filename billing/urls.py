"""Billing writes made from the customer page's Billing panel; mounted under /customers/<pk>/
(config.urls).

Invoice actions live under invoices/<invoice_pk>/ next to billing.invoice_urls' pages (no path is
shared with them); a draft is issued from the panel at drafts/<draft_invoice_pk>/issue/, because
billing.invoice_urls' own issue page (<draft_pk>/issue/) answers with the invoice page rather than
the panel.
"""

from django.urls import path

from billing import summary_panel, views

app_name = "billing"

urlpatterns = [
    path("billing/", views.panel, name="panel"),
    path("billing/invoices/", views.customer_invoices, name="invoices"),
    path("summary/", summary_panel.summary_panel_view, name="summary_panel"),
    path("payments/", views.record_payment, name="record_payment"),
    path("payments/<int:payment_pk>/allocations/", views.allocate_payment, name="allocate_payment"),
    # The matrix (tests/url_rules/payments.py) refunds what is left of its payment here, before
    # the automatic allocation below, so that the latter leaves the other areas' invoices open.
    path("payments/<int:payment_pk>/refunds/", views.refund_payment, name="refund_payment"),
    path("payments/<int:payment_pk>/auto-allocate/", views.auto_allocate_payment, name="auto_allocate"),
    path("credit-notes/", views.issue_credit_note, name="issue_credit_note"),
    path("credit-notes/<int:credit_note_pk>/allocations/", views.allocate_credit_note, name="allocate_credit_note"),
    path("credit-notes/<int:credit_note_pk>/refunds/", views.refund_credit_note, name="refund_credit_note"),
    path("invoices/<int:invoice_pk>/write-off/", views.request_write_off, name="request_write_off"),
    path("invoices/<int:invoice_pk>/void/", views.void_invoice, name="void_invoice"),
    path("invoices/<int:invoice_pk>/terms/", views.edit_invoice_terms, name="edit_invoice_terms"),
    path("drafts/<int:draft_invoice_pk>/issue/", views.issue_invoice, name="issue_invoice"),
]
