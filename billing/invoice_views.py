"""Draft invoices from the customer page: a rep (or AR) prepares one, edits it while it is a
draft, and AR issues it. Mounted under /customers/<pk>/invoices/ (config.urls).

Thin views, checked in this order: signed in (login page otherwise), the customer within reach
(404 otherwise, so that a customer out of reach does not show it exists), the role's permission
(403), the invoice one of the customer's (404). billing.services makes every write; a refused
write (ValidationError, BillingError or a ledger error) changes nothing and comes back as a
message next to the form or above the invoice.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import services
from billing.invoice_forms import (
    LINE_PREFIX,
    MAX_LINES,
    Catalogue,
    DraftInvoiceForm,
    add_service_error,
    line_formset,
)
from billing.models import CreditNoteAllocation, Invoice, InvoiceLine, PaymentAllocation
from crm import access
from crm.models import Customer
from ledger.errors import LedgerError

FORM_TEMPLATE = "billing/invoices/form.html"


def _customer_for(request, pk, *permissions: str) -> Customer:
    """The customer in the URL if the user reaches it (404 otherwise), and the user holds one of
    `permissions` (403 otherwise)."""
    customer = access.get_visible_customer_or_404(request.user, pk)
    if not any(request.user.has_perm(permission) for permission in permissions):
        raise PermissionDenied
    return customer


def _invoice_of(customer: Customer, invoice_pk) -> Invoice:
    return get_object_or_404(Invoice, pk=invoice_pk, customer=customer)


def _detail_url(customer: Customer, invoice: Invoice) -> str:
    return reverse("invoices:detail", args=[customer.pk, invoice.pk])


def _render_form(request, customer, *, form, formset, invoice=None, status=200):
    return render(
        request,
        FORM_TEMPLATE,
        {
            "customer": customer,
            "invoice": invoice,
            "form": form,
            "formset": formset,
            "max_lines": MAX_LINES,
            "line_prefix": LINE_PREFIX,
        },
        status=status,
    )


def _save(request, customer, *, invoice=None):
    """Validate the posted invoice and lines and create or update the draft; the page again, with
    what is wrong next to the field, when it does not validate or the service refuses."""
    catalogue = Catalogue.load(lines=invoice.lines.all() if invoice else ())
    form = DraftInvoiceForm(request.POST)
    if "add_line" in request.POST:
        # "Add a line" without JavaScript: the same page with one more empty row, nothing saved.
        formset = line_formset(request.POST, catalogue=catalogue, add_rows=1)
        return _render_form(request, customer, form=DraftInvoiceForm(request.POST), formset=formset, invoice=invoice)
    formset = line_formset(request.POST, catalogue=catalogue)
    if form.is_valid() and formset.is_valid():
        data = form.cleaned_data
        try:
            if invoice is None:
                invoice = services.create_invoice(
                    actor=request.user,
                    customer=customer,
                    lines=formset.line_inputs(),
                    due_date=data["due_date"],
                    memo=data["memo"],
                )
                notice = f"Draft invoice saved: {invoice.gross_total:,.2f} {invoice.currency}."
            else:
                invoice = services.update_draft_invoice(
                    actor=request.user,
                    invoice=invoice,
                    lines=formset.line_inputs(),
                    due_date=data["due_date"],
                    memo=data["memo"],
                )
                notice = f"Draft invoice updated: {invoice.gross_total:,.2f} {invoice.currency}."
        except (LedgerError, ValidationError) as error:
            add_service_error(form, error)
        else:
            messages.success(request, notice)
            return redirect(_detail_url(customer, invoice))
    return _render_form(request, customer, form=form, formset=formset, invoice=invoice, status=422)


@login_required
@require_http_methods(["GET", "POST"])
def new_invoice(request, pk):
    customer = _customer_for(request, pk, "billing.add_invoice")
    if request.method == "POST":
        return _save(request, customer)
    return _render_form(request, customer, form=DraftInvoiceForm(), formset=line_formset(catalogue=Catalogue.load()))


@login_required
@require_http_methods(["GET", "POST"])
def edit_invoice(request, pk, draft_pk):
    customer = _customer_for(request, pk, "billing.change_invoice")
    invoice = _invoice_of(customer, draft_pk)
    if invoice.status != Invoice.Status.DRAFT:
        messages.error(
            request,
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; only a draft can be edited.",
        )
        return redirect(_detail_url(customer, invoice))
    if request.method == "POST":
        return _save(request, customer, invoice=invoice)
    lines = list(invoice.lines.all())
    form = DraftInvoiceForm(initial={"due_date": invoice.due_date, "memo": invoice.memo})
    formset = line_formset(catalogue=Catalogue.load(lines=lines), lines=lines)
    return _render_form(request, customer, form=form, formset=formset, invoice=invoice)


@login_required
@require_GET
def line_row(request, pk):
    """One more empty line row for the invoice form (htmx), numbered after the rows on the page;
    the form's row count is updated out of band."""
    customer = _customer_for(request, pk, "billing.add_invoice", "billing.change_invoice")
    try:
        index = int(request.GET.get(f"{LINE_PREFIX}-TOTAL_FORMS", "0"))
    except ValueError:
        index = 0
    if not 0 <= index < MAX_LINES:
        return HttpResponse(status=204)
    formset = line_formset(catalogue=Catalogue.load())
    return render(
        request,
        "billing/invoices/_line_row.html",
        {"customer": customer, "line": formset.blank_form(index), "index": index, "new_total": index + 1, "oob": True},
    )


@login_required
@require_GET
def invoice_detail(request, pk, invoice_pk):
    customer = _customer_for(request, pk, "billing.view_invoice")
    invoice = get_object_or_404(
        Invoice.objects.prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.select_related("product", "tax_rate")),
        ),
        pk=invoice_pk,
        customer=customer,
    )
    payments = list(
        PaymentAllocation.objects.filter(invoice=invoice).select_related("payment").order_by("allocated_on", "id")
    )
    credits = list(
        CreditNoteAllocation.objects.filter(invoice=invoice)
        .select_related("credit_note")
        .order_by("allocated_on", "id")
    )
    user = request.user
    is_draft = invoice.status == Invoice.Status.DRAFT
    return render(
        request,
        "billing/invoices/detail.html",
        {
            "customer": customer,
            "invoice": invoice,
            "lines": [(line, _unit_price(line.unit_price)) for line in invoice.lines.all()],
            "payment_allocations": payments,
            "credit_allocations": credits,
            "is_draft": is_draft,
            "can_edit": is_draft and user.has_perm("billing.change_invoice"),
            "can_issue": is_draft and user.has_perm("billing.issue_invoice"),
        },
    )


@login_required
@require_POST
def issue_invoice(request, pk, draft_pk):
    customer = _customer_for(request, pk, "billing.issue_invoice")
    invoice = _invoice_of(customer, draft_pk)
    try:
        invoice = services.issue_invoice(actor=request.user, invoice=invoice)
    except (LedgerError, ValidationError) as error:
        messages.error(request, f"The invoice was not issued: {_reason(error)}")
    else:
        messages.success(
            request,
            f"Issued invoice {invoice.number} for {invoice.gross_total:,.2f} {invoice.currency}, "
            f"due {invoice.due_date:%Y-%m-%d}.",
        )
    return redirect(_detail_url(customer, invoice))


@login_required
@require_POST
def delete_invoice(request, pk, draft_pk):
    """Discard a draft. Needs the right to change invoices (a draft is work in progress, with no
    number and nothing posted), not to delete them, which no role but Finance Admin holds."""
    customer = _customer_for(request, pk, "billing.change_invoice")
    invoice = _invoice_of(customer, draft_pk)
    try:
        services.delete_draft_invoice(actor=request.user, invoice=invoice)
    except (LedgerError, ValidationError) as error:
        messages.error(request, f"The invoice was not discarded: {_reason(error)}")
        return redirect(_detail_url(customer, invoice))
    messages.success(request, "Draft invoice discarded.")
    return redirect("crm:customer_detail", pk=customer.pk)


def _unit_price(price: Decimal) -> str:
    """Two decimals, or four when the price has them (unit prices are kept to 0.0001)."""
    return f"{price:,.2f}" if price == price.quantize(Decimal("0.01")) else f"{price:,.4f}"


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)
