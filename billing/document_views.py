"""The invoice and statement PDFs, opened in the browser (Content-Disposition: inline).

Anyone who can see the customer (crm.access: 404 beyond, checked first so that a customer's
existence does not leak) and holds `billing.view_invoice` (403 without it) may open them.
"""

from __future__ import annotations

from datetime import date

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from billing import documents
from billing.models import Invoice
from crm import access

VIEW_INVOICE = "billing.view_invoice"


def _reachable_customer(request, pk):
    customer = access.get_visible_customer_or_404(request.user, pk)
    if not request.user.has_perm(VIEW_INVOICE):
        raise PermissionDenied("You may not open this customer's invoices.")
    return customer


def pdf_response(pdf: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(as_attachment=False, filename=filename)
    # A customer's documents are not to be kept by shared caches.
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@login_required
def invoice_pdf(request, pk, invoice_pk):
    customer = _reachable_customer(request, pk)
    invoice = get_object_or_404(Invoice, pk=invoice_pk, customer=customer)
    return pdf_response(documents.render_invoice_pdf(invoice), documents.invoice_filename(invoice))


@require_GET
@login_required
def statement_pdf(request, pk):
    customer = _reachable_customer(request, pk)
    as_of = timezone.localdate()
    if request.GET.get("as_of"):
        try:
            as_of = date.fromisoformat(request.GET["as_of"])
        except ValueError:
            return HttpResponseBadRequest("as_of must be a date written as YYYY-MM-DD, e.g. 2026-11-30.")
    pdf = documents.render_statement_pdf(customer, as_of)
    return pdf_response(pdf, documents.statement_filename(customer, as_of))
