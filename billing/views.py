"""The billing panel on the customer page, and the writes AR makes from it: payments (record,
allocate by hand or automatically, refund), credit notes (issue, apply, refund), write-off
requests, issuing or voiding an invoice, and changing an issued invoice's due date and memo.

Thin views, checked in this order: signed in, the customer within reach (crm.access; 404 beyond,
so that a customer out of reach does not show it exists), the role's permission for the write
(403), the document one of the customer's (404). billing.services makes the write, and a refused
write (BillingError, ledger error or ValidationError: nothing was changed) comes back as form
errors next to the field. With htmx the panel is swapped in place; without JavaScript a success
redirects to the customer page, and a refusal shows the panel with the errors on a page of its
own (422).
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.utils import ErrorDict, ErrorList
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import page_selectors, services
from billing.errors import IdempotencyConflict
from billing.forms import (
    CREDIT_NOTE_LINE_PREFIX,
    CREDIT_NOTE_MAX_LINES,
    AllocateCreditForm,
    AllocatePaymentForm,
    CreditNoteForm,
    InvoiceTermsForm,
    RecordPaymentForm,
    RefundForm,
    VoidInvoiceForm,
    WriteOffRequestForm,
    add_service_error,
    credit_note_lines,
    new_idempotency_key,
)
from billing.models import CreditNote, CreditNoteAllocation, Invoice, Payment, PaymentAllocation, TaxRate
from crm import access
from crm.models import Customer
from ledger.errors import LedgerError

PANEL_TEMPLATE = "billing/_customer_panel.html"
PAGE_TEMPLATE = "billing/customer_billing.html"
REFUSALS = (LedgerError, ValidationError)
# Who picks among the customer's open invoices beyond the panel's table (page_selectors.
# customer_billing's with_choices): applying credit, naming an invoice in a credit note, opening
# a void or write-off under an invoice further down.
CHOOSES_AMONG_OPEN_INVOICES = (
    "allocate_payment",
    "allocate_credit_note",
    "issue_credit_note",
    "void_invoice",
    "request_write_off",
    "edit_invoice_terms",
)
# Whoever may void an issued invoice may change its due date and memo: both are AR's corrections
# to a document already sent, and neither is a rep's (a rep prepares drafts).
EDIT_INVOICE_TERMS = "billing.void_invoice"
# Credit-note forms already used in this session (form token → credit note), newest last.
CREDIT_NOTE_TOKENS = "billing.credit_note_forms"
CREDIT_NOTE_TOKENS_KEPT = 20


@dataclass(frozen=True)
class Failed:
    """A form refused by validation or by the service, to show again with its errors: `action`
    names the form, `target` the payment, credit note or invoice it was posted for."""

    action: str
    target: int | None
    form: forms.Form
    formset: forms.BaseFormSet | None = None


# The kinds of InvoiceAction, each the `action` of its Failed form.
INVOICE_ACTIONS = ("void", "write_off", "terms")


@dataclass(frozen=True)
class InvoiceAction:
    """The form opened under one invoice's row: "void" (a confirmation), "write_off" or "terms"
    (its due date and memo)."""

    kind: str
    invoice_pk: int
    form: forms.Form


def _permissions(user) -> dict[str, bool]:
    def has(name: str) -> bool:
        return user.has_perm(f"billing.{name}")

    return {
        "view_payments": has("view_payment"),
        "view_credit_notes": has("view_creditnote"),
        "view_write_offs": has("view_writeoff"),
        "record_payment": has("add_payment"),
        "allocate_payment": has("add_paymentallocation"),
        "refund": has("add_refund"),
        "issue_credit_note": has("add_creditnote"),
        "allocate_credit_note": has("add_creditnoteallocation"),
        "request_write_off": has("request_writeoff"),
        "write_off_desk": has("view_writeoff") and (has("request_writeoff") or has("approve_writeoff")),
        "issue_invoice": has("issue_invoice"),
        "void_invoice": has("void_invoice"),
        "edit_invoice_terms": user.has_perm(EDIT_INVOICE_TERMS),
    }


def _failed_form(failed: Failed | None, action: str, target: int | None):
    if failed is not None and failed.action == action and failed.target == target:
        return failed
    return None


def _credit_rows(rows, *, kind: str, failed: Failed | None, can_allocate: bool, can_refund: bool, shown: set):
    """Each payment or credit note row with its allocation and refund forms (bound ones where
    they were refused)."""
    result = []
    for row in rows:
        credit = row.credit
        allocate_form = refund_form = None
        if can_allocate and row.allocatable:
            again = _failed_form(failed, f"allocate_{kind}", credit.pk)
            allocate_form = (
                again.form
                if again
                else AllocateCreditForm(
                    credit=credit,
                    invoices=page_selectors.allocatable_invoices(credit=credit),
                    initial={"invoice": row.allocatable[0].pk, "amount": row.suggested_amount},
                )
            )
            shown.add((f"allocate_{kind}", credit.pk))
        if can_refund and row.refundable:
            again = _failed_form(failed, f"refund_{kind}", credit.pk)
            refund_form = again.form if again else RefundForm(credit=credit)
            shown.add((f"refund_{kind}", credit.pk))
        result.append((row, allocate_form, refund_form))
    return result


def panel_context(
    request,
    customer: Customer,
    *,
    failed: Failed | None = None,
    invoice_action: InvoiceAction | None = None,
    notice: str = "",
    refusal: str = "",
) -> dict:
    """What the panel template needs. `failed` is a refused form to show again with its errors
    (where its row still shows a form; otherwise its reason goes above the panel);
    `invoice_action` a form to open under an invoice's row."""
    user = request.user
    can = _permissions(user)
    billing = page_selectors.customer_billing(
        customer=customer,
        today=timezone.localdate(),
        with_choices=any(can[name] for name in CHOOSES_AMONG_OPEN_INVOICES),
    )
    shown: set[tuple[str, int | None]] = set()
    payment_rows = _credit_rows(
        billing.payments,
        kind="payment",
        failed=failed,
        can_allocate=can["allocate_payment"],
        can_refund=can["refund"],
        shown=shown,
    )
    credit_note_rows = _credit_rows(
        billing.credit_notes,
        kind="credit_note",
        failed=failed,
        can_allocate=can["allocate_credit_note"],
        can_refund=can["refund"],
        shown=shown,
    )
    if failed is not None and failed.action in INVOICE_ACTIONS:
        invoice_action = InvoiceAction(failed.action, failed.target, failed.form)
    if invoice_action is not None:
        row = next((row for row in billing.invoices if row.invoice.pk == invoice_action.invoice_pk), None)
        if row is None:
            invoice_action = None
        else:
            shown.add((invoice_action.kind, invoice_action.invoice_pk))
    payment_form = credit_note_form = credit_note_formset = None
    if can["record_payment"]:
        again = _failed_form(failed, "payment", None)
        payment_form = again.form if again else RecordPaymentForm()
        shown.add(("payment", None))
    tax_rates = []
    if can["issue_credit_note"]:
        tax_rates = list(TaxRate.objects.filter(is_active=True).order_by("name"))
        again = _failed_form(failed, "credit_note", None)
        if again:
            credit_note_form, credit_note_formset = again.form, again.formset
        else:
            credit_note_form = CreditNoteForm(invoices=page_selectors.creditable_invoices(customer=customer))
            credit_note_formset = credit_note_lines(tax_rates=TaxRate.objects.none())
        shown.add(("credit_note", None))
    if failed is not None and (failed.action, failed.target) not in shown:
        # Refused for a row that no longer shows its form (e.g. its credit was used meanwhile):
        # the reason goes above the panel instead.
        refusal = " ".join(message for errors in failed.form.errors.values() for message in errors)
    return {
        "customer": customer,
        "billing": billing,
        "can": can,
        # The oldest-due open invoices (and the one an action is open under), then (below a
        # divider) the recently settled, drafts and void ones.
        "invoice_groups": [
            group
            for group in (
                billing.open_invoice_rows(also=invoice_action.invoice_pk if invoice_action else None),
                billing.recent_invoices,
            )
            if group
        ],
        "invoice_action": invoice_action,
        "payment_rows": payment_rows,
        "credit_note_rows": credit_note_rows,
        "payment_form": payment_form,
        "credit_note_form": credit_note_form,
        "credit_note_formset": credit_note_formset,
        "credit_note_line_prefix": CREDIT_NOTE_LINE_PREFIX,
        "credit_note_max_lines": CREDIT_NOTE_MAX_LINES,
        "tax_rates": tax_rates,
        "today": timezone.localdate(),
        "notice": notice,
        "refusal": refusal,
    }


def customer_panel(request, customer: Customer):
    """The "Billing" panel of the customer page (registered in BillingConfig.ready())."""
    if not request.user.has_perm("billing.view_invoice"):
        return None
    return PANEL_TEMPLATE, panel_context(request, customer)


def _customer_page(customer: Customer) -> str:
    return reverse("crm:customer_detail", args=[customer.pk]) + "#billing-panel"


# Sent with every change made in place, so that other parts of the page showing the customer's
# figures (e.g. the account summary) may refresh themselves: hx-trigger="billing-changed from:body".
CHANGED_EVENT = "billing-changed"


def _done(request, customer: Customer, notice: str):
    if request.htmx:
        response = render(request, PANEL_TEMPLATE, panel_context(request, customer, notice=notice))
        response["HX-Trigger"] = CHANGED_EVENT
        return response
    messages.success(request, notice)
    return redirect(_customer_page(customer))


def _refused(request, customer: Customer, failed: Failed | None = None, *, refusal: str = ""):
    context = panel_context(request, customer, failed=failed, refusal=refusal)
    if request.htmx:
        # 200, not 4xx: htmx swaps only successful responses by default, and the errors must show.
        return render(request, PANEL_TEMPLATE, context)
    return render(request, PAGE_TEMPLATE, context, status=422)


def _customer_for(request, pk, permission: str) -> Customer:
    """The customer in the URL, if the user reaches it (404 otherwise, so that a customer out of
    reach does not show it exists), and the user holds `permission` (403 otherwise)."""
    customer = access.get_visible_customer_or_404(request.user, pk)
    if not request.user.has_perm(permission):
        raise PermissionDenied
    return customer


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


def _money(amount, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


# --- The panel itself ----------------------------------------------------------------------------


@login_required
@require_GET
def panel(request, pk):
    """The panel on its own, for htmx (e.g. "Keep it" under a void confirmation); without
    JavaScript, the customer page."""
    customer = _customer_for(request, pk, "billing.view_invoice")
    if not request.htmx:
        return redirect(_customer_page(customer))
    return render(request, PANEL_TEMPLATE, panel_context(request, customer))


@login_required
@require_GET
def customer_invoices(request, pk):
    """Every invoice of the customer, a page at a time: the open ones oldest due first (where the
    panel's table stops), or all of them newest first."""
    customer = _customer_for(request, pk, "billing.view_invoice")
    show = request.GET.get("show")
    show = show if show in page_selectors.INVOICE_LIST_FILTERS else "open"
    return render(
        request,
        "billing/invoice_list.html",
        {
            "customer": customer,
            "show": show,
            "page": page_selectors.customer_invoice_page(
                customer=customer, today=timezone.localdate(), show=show, page=request.GET.get("page")
            ),
            "can": _permissions(request.user),
        },
    )


# --- Payments ------------------------------------------------------------------------------------


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
        return _refused(request, customer, Failed("payment", None, form))
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
    except REFUSALS as error:
        add_service_error(form, error, period_field="received_on")
        if isinstance(error, IdempotencyConflict):
            # The key belongs to the payment recorded first; submitting again is a new payment.
            form.data = form.data.copy()
            form.data["idempotency_key"] = new_idempotency_key()
        return _refused(request, customer, Failed("payment", None, form))
    return _done(request, customer, _payment_notice(payment))


@login_required
@require_POST
def allocate_payment(request, pk, payment_pk):
    customer = _customer_for(request, pk, "billing.add_paymentallocation")
    payment = get_object_or_404(Payment, pk=payment_pk, customer=customer)
    form = AllocatePaymentForm(
        request.POST, payment=payment, invoices=page_selectors.allocatable_invoices(credit=payment)
    )
    failed = Failed("allocate_payment", payment.pk, form)
    if not form.is_valid():
        return _refused(request, customer, failed)
    try:
        allocation = services.allocate_payment(
            actor=request.user,
            payment=payment,
            invoice=form.cleaned_data["invoice"],
            amount=form.cleaned_data["amount"],
        )
    except REFUSALS as error:
        add_service_error(form, error)
        return _refused(request, customer, failed)
    notice = (
        f"Applied {_money(allocation.amount, payment.currency)} of the payment received "
        f"{payment.received_on:%Y-%m-%d} to {allocation.invoice}."
    )
    return _done(request, customer, notice)


@login_required
@require_POST
def auto_allocate_payment(request, pk, payment_pk):
    """Apply a payment's unapplied credit to the oldest open invoices (disputed ones skipped)."""
    customer = _customer_for(request, pk, "billing.add_paymentallocation")
    payment = get_object_or_404(Payment, pk=payment_pk, customer=customer)
    try:
        allocations = services.auto_allocate(actor=request.user, payment=payment)
    except REFUSALS as error:
        return _refused(request, customer, refusal=_reason(error))
    received = f"the payment received {payment.received_on:%Y-%m-%d}"
    if not allocations:
        payment.refresh_from_db()
        if payment.status != Payment.Status.CLEARED:
            status = payment.get_status_display().lower()
            return _done(
                request, customer, f"Nothing to apply: {received} is {status}; only a cleared payment's credit applies."
            )
        if payment.unapplied_amount == 0:
            return _done(request, customer, f"Nothing to apply: {received} has no unapplied credit left.")
        return _done(
            request,
            customer,
            f"Nothing was applied: no open {payment.currency} invoice can take credit from {received} "
            "(disputed invoices are left for a person to decide).",
        )
    applied = ", ".join(
        f"{_money(allocation.amount, payment.currency)} to {allocation.invoice}" for allocation in allocations
    )
    return _done(request, customer, f"Applied {applied} from {received}.")


# --- Refunds -------------------------------------------------------------------------------------


def _refund(request, customer: Customer, credit: Payment | CreditNote, kind: str):
    form = RefundForm(request.POST, credit=credit)
    failed = Failed(f"refund_{kind}", credit.pk, form)
    if not form.is_valid():
        return _refused(request, customer, failed)
    data = form.cleaned_data
    try:
        refund = services.refund_credit(
            actor=request.user,
            amount=data["amount"],
            refunded_on=data["refunded_on"],
            method=data["method"],
            reference=data["reference"],
            idempotency_key=data["idempotency_key"],
            **{kind: credit},
        )
    except REFUSALS as error:
        add_service_error(form, error, period_field="refunded_on", document="refund")
        if isinstance(error, IdempotencyConflict):
            form.data = form.data.copy()
            form.data["idempotency_key"] = new_idempotency_key("refund")
        return _refused(request, customer, failed)
    source = f"payment received {credit.received_on:%Y-%m-%d}" if kind == "payment" else f"credit note {credit}"
    return _done(
        request,
        customer,
        f"Refunded {_money(refund.amount, refund.currency)} ({refund.get_method_display().lower()}) "
        f"on {refund.refunded_on:%Y-%m-%d} out of the {source}.",
    )


@login_required
@require_POST
def refund_payment(request, pk, payment_pk):
    customer = _customer_for(request, pk, "billing.add_refund")
    payment = get_object_or_404(Payment, pk=payment_pk, customer=customer)
    return _refund(request, customer, payment, "payment")


@login_required
@require_POST
def refund_credit_note(request, pk, credit_note_pk):
    customer = _customer_for(request, pk, "billing.add_refund")
    credit_note = get_object_or_404(CreditNote, pk=credit_note_pk, customer=customer)
    return _refund(request, customer, credit_note, "credit_note")


# --- Credit notes --------------------------------------------------------------------------------


def _already_issued(request, customer: Customer, token: str) -> CreditNote | None:
    credit_note_pk = request.session.get(CREDIT_NOTE_TOKENS, {}).get(token)
    if credit_note_pk is None:
        return None
    return CreditNote.objects.filter(pk=credit_note_pk, customer=customer).first()


def _remember_issued(request, token: str, credit_note: CreditNote) -> None:
    tokens = dict(request.session.get(CREDIT_NOTE_TOKENS, {}))
    tokens[token] = credit_note.pk
    request.session[CREDIT_NOTE_TOKENS] = dict(list(tokens.items())[-CREDIT_NOTE_TOKENS_KEPT:])


def _credit_note_notice(credit_note: CreditNote) -> str:
    money = _money(credit_note.gross_total, credit_note.currency)
    notice = f"Issued credit note {credit_note} for {money}"
    notice += f" against invoice {credit_note.invoice}." if credit_note.invoice_id else " on the customer's account."
    applied = [
        f"{_money(allocation.amount, credit_note.currency)} to {allocation.invoice}"
        for allocation in CreditNoteAllocation.objects.filter(credit_note=credit_note).select_related("invoice")
    ]
    if applied:
        notice += " Applied " + ", ".join(applied) + "."
    notice += f" Unapplied credit from it: {_money(credit_note.unapplied_amount, credit_note.currency)}."
    return notice


@login_required
@require_POST
def issue_credit_note(request, pk):
    """Credit the customer, optionally against one of their invoices (applied to what is open on
    it). "Another line" (the `add_line` button) shows the form again with one more row."""
    customer = _customer_for(request, pk, "billing.add_creditnote")
    tax_rates = TaxRate.objects.filter(is_active=True)
    form = CreditNoteForm(request.POST, invoices=page_selectors.creditable_invoices(customer=customer))
    add_line = "add_line" in request.POST
    formset = credit_note_lines(request.POST, tax_rates=tax_rates, add_row=add_line)
    if add_line:
        # Nothing is checked or saved yet: the form comes back as typed, with one more row.
        _hide_errors(form, formset)
        return _form_again(request, customer, Failed("credit_note", None, form, formset))
    failed = Failed("credit_note", None, form, formset)
    if not (form.is_valid() and formset.is_valid()):
        return _refused(request, customer, failed)
    data = form.cleaned_data
    existing = _already_issued(request, customer, data["form_token"])
    if existing is not None:
        return _done(
            request, customer, f"Credit note {existing} was issued from this form already; nothing new was issued."
        )
    try:
        credit_note = services.issue_credit_note(
            actor=request.user,
            customer=customer,
            lines=formset.line_inputs(),
            reason=data["reason"],
            invoice=data["invoice"],
            issue_date=data["issue_date"],
        )
    except REFUSALS as error:
        add_service_error(form, error, period_field="issue_date", document="credit note")
        return _refused(request, customer, failed)
    _remember_issued(request, data["form_token"], credit_note)
    return _done(request, customer, _credit_note_notice(credit_note))


def _hide_errors(form: forms.Form, formset: forms.BaseFormSet) -> None:
    """Show a bound form and formset as typed, without validating them (not yet submitted)."""
    form._errors = ErrorDict()
    formset._errors, formset._non_form_errors = [ErrorDict() for _ in formset.forms], ErrorList()
    for line in formset.forms:
        line._errors = ErrorDict()


def _form_again(request, customer: Customer, failed: Failed):
    """The panel with `failed`'s form open as typed: in place with htmx, else on its own page
    (200: nothing was refused, the person asked for another row)."""
    context = panel_context(request, customer, failed=failed)
    return render(request, PANEL_TEMPLATE if request.htmx else PAGE_TEMPLATE, context)


@login_required
@require_POST
def allocate_credit_note(request, pk, credit_note_pk):
    customer = _customer_for(request, pk, "billing.add_creditnoteallocation")
    credit_note = get_object_or_404(CreditNote, pk=credit_note_pk, customer=customer)
    form = AllocateCreditForm(
        request.POST, credit=credit_note, invoices=page_selectors.allocatable_invoices(credit=credit_note)
    )
    failed = Failed("allocate_credit_note", credit_note.pk, form)
    if not form.is_valid():
        return _refused(request, customer, failed)
    try:
        allocation = services.allocate_credit_note(
            actor=request.user,
            credit_note=credit_note,
            invoice=form.cleaned_data["invoice"],
            amount=form.cleaned_data["amount"],
        )
    except REFUSALS as error:
        add_service_error(form, error)
        return _refused(request, customer, failed)
    return _done(
        request,
        customer,
        f"Applied {_money(allocation.amount, credit_note.currency)} of credit note {credit_note} "
        f"to {allocation.invoice}.",
    )


# --- Invoices: write-off requests, void, due date and memo, issue --------------------------------


def _invoice_action_page(request, customer: Customer, action: InvoiceAction):
    """The panel with `action`'s form open under its invoice: in place with htmx, else on a page."""
    context = panel_context(request, customer, invoice_action=action)
    return render(request, PANEL_TEMPLATE if request.htmx else PAGE_TEMPLATE, context)


@login_required
@require_http_methods(["GET", "POST"])
def request_write_off(request, pk, invoice_pk):
    """GET opens the request form under the invoice; POST asks a Finance Admin to write it off."""
    customer = _customer_for(request, pk, "billing.request_writeoff")
    invoice = get_object_or_404(Invoice, pk=invoice_pk, customer=customer)
    if request.method == "GET":
        return _invoice_action_page(request, customer, InvoiceAction("write_off", invoice.pk, WriteOffRequestForm()))
    form = WriteOffRequestForm(request.POST)
    failed = Failed("write_off", invoice.pk, form)
    if not form.is_valid():
        return _refused(request, customer, failed)
    try:
        services.request_write_off(actor=request.user, invoice=invoice, reason=form.cleaned_data["reason"])
    except REFUSALS as error:
        add_service_error(form, error)
        return _refused(request, customer, failed)
    return _done(
        request,
        customer,
        f"Asked for invoice {invoice} ({_money(invoice.open_amount, invoice.currency)} open) to be written off. "
        "A Finance Admin decides on the write-off desk; until then it stays open.",
    )


@login_required
@require_http_methods(["GET", "POST"])
def void_invoice(request, pk, invoice_pk):
    """GET asks for confirmation (under the invoice's row); POST voids the invoice."""
    customer = _customer_for(request, pk, "billing.void_invoice")
    invoice = get_object_or_404(Invoice, pk=invoice_pk, customer=customer)
    if request.method == "GET":
        return _invoice_action_page(request, customer, InvoiceAction("void", invoice.pk, VoidInvoiceForm()))
    form = VoidInvoiceForm(request.POST)
    failed = Failed("void", invoice.pk, form)
    if not form.is_valid():
        return _refused(request, customer, failed)
    try:
        invoice = services.void_invoice(actor=request.user, invoice=invoice, voided_on=form.cleaned_data["voided_on"])
    except REFUSALS as error:
        add_service_error(form, error, period_field="voided_on")
        return _refused(request, customer, failed)
    return _done(
        request,
        customer,
        f"Voided invoice {invoice} ({_money(invoice.gross_total, invoice.currency)}) on {invoice.voided_on:%Y-%m-%d}; "
        "its ledger entry is reversed.",
    )


def _terms_notice(invoice: Invoice, *, due_date_was, memo_was: str) -> str:
    changed = []
    if invoice.due_date != due_date_was:
        changed.append(f"now due {invoice.due_date:%Y-%m-%d}")
    if invoice.memo != memo_was:
        changed.append("memo cleared" if not invoice.memo else "memo changed")
    if not changed:
        return f"Nothing changed on invoice {invoice}: its due date and memo are as they were."
    return f"Invoice {invoice}: {' and '.join(changed)}. Its amounts and the ledger are unchanged."


@login_required
@require_http_methods(["GET", "POST"])
def edit_invoice_terms(request, pk, invoice_pk):
    """GET opens the due date and memo of an issued invoice under its row; POST changes them in
    place (billing.services.update_issued_invoice: nothing is posted, the history keeps who)."""
    customer = _customer_for(request, pk, EDIT_INVOICE_TERMS)
    invoice = get_object_or_404(Invoice, pk=invoice_pk, customer=customer)
    if request.method == "GET":
        return _invoice_action_page(
            request, customer, InvoiceAction("terms", invoice.pk, InvoiceTermsForm(invoice=invoice))
        )
    form = InvoiceTermsForm(request.POST, invoice=invoice)
    failed = Failed("terms", invoice.pk, form)
    if not form.is_valid():
        return _refused(request, customer, failed)
    due_date_was, memo_was = invoice.due_date, invoice.memo
    try:
        invoice = services.update_issued_invoice(
            actor=request.user, invoice=invoice, due_date=form.cleaned_data["due_date"], memo=form.cleaned_data["memo"]
        )
    except REFUSALS as error:
        add_service_error(form, error)
        return _refused(request, customer, failed)
    return _done(request, customer, _terms_notice(invoice, due_date_was=due_date_was, memo_was=memo_was))


@login_required
@require_POST
def issue_invoice(request, pk, draft_invoice_pk):
    """Issue a draft from the panel: it is numbered, dated today and posted."""
    customer = _customer_for(request, pk, "billing.issue_invoice")
    invoice = get_object_or_404(Invoice, pk=draft_invoice_pk, customer=customer)
    try:
        invoice = services.issue_invoice(actor=request.user, invoice=invoice)
    except REFUSALS as error:
        return _refused(request, customer, refusal=f"The invoice was not issued: {_reason(error)}")
    return _done(
        request,
        customer,
        f"Issued invoice {invoice.number} for {_money(invoice.gross_total, invoice.currency)}, "
        f"due {invoice.due_date:%Y-%m-%d}.",
    )
