"""The billing panel on the customer page, and the two writes AR makes from it.

Thin views: crm.access decides which customers a person reaches (404 beyond, checked first), a
permission which writes they may make (403), billing.services makes the write, and a refused
write (BillingError, ledger error or ValidationError: nothing was changed) comes back as form
errors. With htmx the panel is swapped in place; without JavaScript a success redirects to the
customer page, and a refusal shows the panel with the errors on a page of its own (422).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import page_selectors, services
from billing.errors import IdempotencyConflict
from billing.forms import AllocatePaymentForm, RecordPaymentForm, add_service_error, new_idempotency_key
from billing.models import Payment, PaymentAllocation
from crm import access
from crm.models import Customer
from ledger.errors import LedgerError

PANEL_TEMPLATE = "billing/_customer_panel.html"
REFUSED_TEMPLATE = "billing/customer_billing.html"


def panel_context(
    request,
    customer: Customer,
    *,
    payment_form: RecordPaymentForm | None = None,
    allocate_form: AllocatePaymentForm | None = None,
    notice: str = "",
) -> dict:
    """What the panel template needs; `payment_form` / `allocate_form` are bound forms to show
    again with their errors (the allocation form for the payment it was posted for)."""
    user = request.user
    billing = page_selectors.customer_billing(customer=customer, today=timezone.localdate())
    can_allocate = user.has_perm("billing.add_paymentallocation")
    payment_rows, refusal = [], ""
    for row in billing.payments:
        form = None
        if can_allocate and row.allocatable:
            if allocate_form is not None and allocate_form.payment.pk == row.payment.pk:
                form, allocate_form = allocate_form, None
            else:
                form = AllocatePaymentForm(
                    payment=row.payment,
                    invoices=page_selectors.allocatable_invoices(payment=row.payment),
                    initial={"invoice": row.allocatable[0].pk, "amount": row.suggested_amount},
                )
        payment_rows.append((row, form))
    if allocate_form is not None:
        # Refused for a payment that no longer shows a form (e.g. its credit was used meanwhile):
        # the reason goes above the panel instead.
        refusal = " ".join(message for errors in allocate_form.errors.values() for message in errors)
    can_record = user.has_perm("billing.add_payment")
    return {
        "customer": customer,
        "billing": billing,
        # Open invoices, then (below a divider) the recently settled, drafts and void ones.
        "invoice_groups": [group for group in (billing.open_invoices, billing.recent_invoices) if group],
        "payment_rows": payment_rows,
        "can_view_payments": user.has_perm("billing.view_payment"),
        "can_record_payment": can_record,
        "payment_form": (payment_form or RecordPaymentForm()) if can_record else None,
        "notice": notice,
        "refusal": refusal,
    }


def customer_panel(request, customer: Customer):
    """The "Billing" panel of the customer page (registered in BillingConfig.ready())."""
    if not request.user.has_perm("billing.view_invoice"):
        return None
    return PANEL_TEMPLATE, panel_context(request, customer)


def _done(request, customer: Customer, notice: str):
    if request.htmx:
        return render(request, PANEL_TEMPLATE, panel_context(request, customer, notice=notice))
    messages.success(request, notice)
    return redirect(reverse("crm:customer_detail", args=[customer.pk]) + "#billing-panel")


def _refused(request, customer: Customer, **forms):
    context = panel_context(request, customer, **forms)
    if request.htmx:
        # 200, not 4xx: htmx swaps only successful responses by default, and the errors must show.
        return render(request, PANEL_TEMPLATE, context)
    return render(request, REFUSED_TEMPLATE, context, status=422)


def _customer_for(request, pk, permission: str) -> Customer:
    """The customer in the URL, if the user reaches it (404 otherwise, so that a customer out of
    reach does not show it exists), and the user holds `permission` (403 otherwise)."""
    customer = access.get_visible_customer_or_404(request.user, pk)
    if not request.user.has_perm(permission):
        raise PermissionDenied
    return customer


def _money(amount, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _payment_notice(payment: Payment) -> str:
    applied = [
        f"{_money(allocation.amount, payment.currency)} to {allocation.invoice}"
        for allocation in PaymentAllocation.objects.filter(payment=payment).select_related("invoice")
    ]
    notice = f"Recorded {_money(payment.amount, payment.currency)} ({payment.get_method_display().lower()})."
    if applied:
        notice += " Applied " + ", ".join(applied) + "."
    if payment.status == Payment.Status.CLEARED:
        notice += f" Unapplied credit from it: {_money(payment.unapplied_amount, payment.currency)}."
    return notice


@login_required
@require_POST
def record_payment(request, pk):
    customer = _customer_for(request, pk, "billing.add_payment")
    form = RecordPaymentForm(request.POST)
    if not form.is_valid():
        return _refused(request, customer, payment_form=form)
    data = form.cleaned_data
    try:
        payment = services.record_payment(
            actor=request.user,
            customer=customer,
            amount=data["amount"],
            received_on=data["received_on"],
            method=data["method"],
            reference=data["reference"],
            auto_apply=data["auto_apply"],
            idempotency_key=data["idempotency_key"],
        )
    except (LedgerError, ValidationError) as error:
        add_service_error(form, error)
        if isinstance(error, IdempotencyConflict):
            # The key belongs to the payment recorded first; submitting again is a new payment.
            form.data = form.data.copy()
            form.data["idempotency_key"] = new_idempotency_key()
        return _refused(request, customer, payment_form=form)
    return _done(request, customer, _payment_notice(payment))


@login_required
@require_POST
def allocate_payment(request, pk, payment_pk):
    customer = _customer_for(request, pk, "billing.add_paymentallocation")
    payment = get_object_or_404(Payment, pk=payment_pk, customer=customer)
    form = AllocatePaymentForm(
        request.POST, payment=payment, invoices=page_selectors.allocatable_invoices(payment=payment)
    )
    if not form.is_valid():
        return _refused(request, customer, allocate_form=form)
    try:
        allocation = services.allocate_payment(
            actor=request.user,
            payment=payment,
            invoice=form.cleaned_data["invoice"],
            amount=form.cleaned_data["amount"],
        )
    except (LedgerError, ValidationError) as error:
        add_service_error(form, error)
        return _refused(request, customer, allocate_form=form)
    notice = (
        f"Applied {_money(allocation.amount, payment.currency)} of the payment received "
        f"{payment.received_on:%Y-%m-%d} to {allocation.invoice}."
    )
    return _done(request, customer, notice)
