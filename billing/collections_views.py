"""The collections desk: the AR worklist (/ar/worklist/) and the customer page's Collections panel.

Thin views, as in billing.views: crm.access and the role's permissions decide who may act (the
worklist is AR's: anyone who does not see every customer is refused with 403; a customer out of
reach on the panel's URLs is 404), billing.collections makes the write, and a refusal comes back
as form errors with nothing changed. With htmx the worklist's results, or the panel, are swapped
in place (200 even with errors, since htmx swaps only successful responses); without JavaScript a
success redirects back and a refusal renders the page with the errors (422).
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import collections
from billing.collections_forms import (
    CallForm,
    CancelPromiseForm,
    CollectorForm,
    CustomerDisputeForm,
    CustomerPromiseForm,
    DisputeForm,
    InvoicePromiseForm,
    ResolveDisputeForm,
    WorklistFilterForm,
)
from billing.collections_selectors import (
    WorklistFilters,
    collectors,
    customer_collections,
    worklist_currencies,
    worklist_invoices,
    worklist_rows,
    worklist_tab_counts,
)
from billing.forms import add_service_error
from billing.models import Invoice, PromiseToPay
from crm import access
from crm.models import Activity, Customer
from crm.services import assign_collector as assign_customer_collector
from ledger.errors import LedgerError
from ledger.money import base_currency

WORKLIST_PAGE_SIZE = 25
WORKLIST_TEMPLATE = "billing/worklist/worklist.html"
WORKLIST_RESULTS_TEMPLATE = "billing/worklist/_results.html"
PANEL_TEMPLATE = "billing/collections/_panel.html"
PANEL_PAGE_TEMPLATE = "billing/collections/customer_collections.html"
REFUSALS = (ValidationError, LedgerError)


def _money(amount, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _person(user) -> str:
    return user.get_full_name() or user.get_username()


# --- Worklist ----------------------------------------------------------------------------------


def _require_collections_desk(user, permission: str = "billing.view_invoice") -> None:
    """The desk is AR's and Finance Admins': they see every customer and the invoices."""
    if not (access.sees_all_customers(user) and user.has_perm("billing.view_invoice") and user.has_perm(permission)):
        raise PermissionDenied


def _filters_from(query: QueryDict, *, currencies: list[str]) -> tuple[WorklistFilterForm, WorklistFilters]:
    """The filters in `query`; a value that does not parse is ignored (the others still apply)."""
    form = WorklistFilterForm(query, currencies=currencies)
    form.is_valid()
    data = form.cleaned_data
    filters = WorklistFilters(
        tab=data.get("tab") or "chase",
        collector=data.get("collector") or "",
        currency=data.get("currency") or "",
        min_open_base=data.get("min_amount"),
    )
    return form, filters


def _query_string(query: QueryDict, *, drop=("page",)) -> str:
    kept = query.copy()
    for name in drop:
        kept.pop(name, None)
    return kept.urlencode()


def worklist_context(request, query: QueryDict, *, failed=None, notice: str = "") -> dict:
    """What the worklist page (or its results fragment) shows for `query` (filters, tab, page).
    `failed` is (invoice pk, action, bound form) for an in-place action that was refused."""
    user, today = request.user, timezone.localdate()
    currencies = worklist_currencies(today=today)
    form, filters = _filters_from(query, currencies=currencies)
    page = Paginator(worklist_invoices(user=user, filters=filters, today=today), WORKLIST_PAGE_SIZE).get_page(
        query.get("page")
    )
    rows = worklist_rows(list(page.object_list))
    can = {
        "call": user.has_perm("crm.add_activity"),
        "promise": user.has_perm("billing.add_promisetopay"),
        "dispute": user.has_perm("billing.change_invoice"),
        "collector": user.has_perm("crm.change_customer"),
    }
    failed_pk, failed_action, failed_form = failed or (None, None, None)
    return {
        "filter_form": form,
        "filters": filters,
        "tab_counts": worklist_tab_counts(user=user, filters=filters, today=today),
        "page": page,
        # Each row with the bound form of an action refused on it, to show again with its errors.
        "rows": [(row, {failed_action: failed_form} if row.invoice.pk == failed_pk else {}) for row in rows],
        "failed": failed,
        "failed_elsewhere": failed is not None and failed_pk not in {row.invoice.pk for row in rows},
        "can": can,
        "collectors": list(collectors()) if can["collector"] else [],
        "outcomes": Activity.Outcome.choices,
        "query": query.urlencode(),
        "query_without_page": _query_string(query),
        "query_without_tab": _query_string(query, drop=("page", "tab")),
        "today": today,
        "default_promise_date": today + timedelta(days=7),
        "base_currency": base_currency(),
        "notice": notice,
    }


@login_required
def worklist(request):
    _require_collections_desk(request.user)
    context = worklist_context(request, request.GET)
    if request.htmx and request.htmx.target == "worklist-results":
        return render(request, WORKLIST_RESULTS_TEMPLATE, context)
    return render(request, WORKLIST_TEMPLATE, context)


def _worklist_invoice(request, pk, permission: str) -> Invoice:
    _require_collections_desk(request.user, permission)
    return get_object_or_404(Invoice.objects.select_related("customer"), pk=pk)


def _return_query(request) -> QueryDict:
    """The worklist's query (filters, tab, page) the action was taken from, sent with the form."""
    return QueryDict(request.POST.get("q", ""))


def _worklist_answer(request, invoice: Invoice, action: str, form, notice: str):
    query = _return_query(request)
    if form.errors:
        context = worklist_context(request, query, failed=(invoice.pk, action, form))
        if request.htmx:
            return render(request, WORKLIST_RESULTS_TEMPLATE, context)
        return render(request, WORKLIST_TEMPLATE, context, status=422)
    if request.htmx:
        return render(request, WORKLIST_RESULTS_TEMPLATE, worklist_context(request, query, notice=notice))
    messages.success(request, notice)
    # Rebuilt from the parsed filters, so the redirect can only lead back to the worklist.
    _, filters = _filters_from(query, currencies=[query.get("currency", "")])
    back = QueryDict(mutable=True)
    for name, value in (
        ("tab", filters.tab),
        ("collector", filters.collector),
        ("currency", filters.currency),
        ("min_amount", filters.min_open_base),
        ("page", query.get("page", "") if query.get("page", "").isdigit() else ""),
    ):
        if value not in ("", None):
            back[name] = str(value)
    return redirect(reverse("worklist:index") + (f"?{back.urlencode()}" if back else ""))


@login_required
@require_POST
def worklist_log_call(request, overdue_invoice_pk):
    invoice = _worklist_invoice(request, overdue_invoice_pk, "crm.add_activity")
    form = CallForm(request.POST)
    notice = ""
    if form.is_valid():
        try:
            activity = collections.log_call(
                actor=request.user,
                customer=invoice.customer,
                invoice=invoice,
                outcome=form.cleaned_data["outcome"],
                text=form.cleaned_data["text"],
            )
            notice = f"Logged a call to {invoice.customer} about {invoice}: {activity.get_outcome_display().lower()}."
        except REFUSALS as error:
            add_service_error(form, error)
    return _worklist_answer(request, invoice, "call", form, notice)


@login_required
@require_POST
def worklist_record_promise(request, overdue_invoice_pk):
    invoice = _worklist_invoice(request, overdue_invoice_pk, "billing.add_promisetopay")
    form = InvoicePromiseForm(request.POST)
    notice = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            promise = collections.record_promise(
                actor=request.user,
                customer=invoice.customer,
                invoices=[invoice],
                amount=data["amount"] or invoice.open_amount,
                promised_on=data["promised_on"],
                note=data["note"],
            )
            notice = (
                f"Recorded {invoice.customer}'s promise to pay {_money(promise.amount, promise.currency)} by "
                f"{promise.promised_on:%Y-%m-%d} on {invoice}; it waits under “Under a live promise” until then."
            )
        except REFUSALS as error:
            add_service_error(form, error)
    return _worklist_answer(request, invoice, "promise", form, notice)


@login_required
@require_POST
def worklist_open_dispute(request, overdue_invoice_pk):
    invoice = _worklist_invoice(request, overdue_invoice_pk, "billing.change_invoice")
    form = DisputeForm(request.POST)
    notice = ""
    if form.is_valid():
        try:
            collections.open_dispute(actor=request.user, invoice=invoice, reason=form.cleaned_data["reason"])
            notice = f"Invoice {invoice} is disputed: it moved to the Disputed tab and gets no reminders."
        except REFUSALS as error:
            add_service_error(form, error)
    return _worklist_answer(request, invoice, "dispute", form, notice)


@login_required
@require_POST
def worklist_assign_collector(request, overdue_invoice_pk):
    invoice = _worklist_invoice(request, overdue_invoice_pk, "crm.change_customer")
    form = CollectorForm(request.POST, collectors=collectors())
    notice = ""
    if form.is_valid():
        collector = form.cleaned_data["collector"]
        try:
            assign_customer_collector(actor=request.user, customer=invoice.customer, collector=collector)
            notice = _collector_notice(invoice.customer, collector)
        except REFUSALS as error:
            add_service_error(form, error)
    return _worklist_answer(request, invoice, "collector", form, notice)


def _collector_notice(customer: Customer, collector) -> str:
    if collector is None:
        return f"{customer} has no collector now."
    return f"{_person(collector)} now collects from {customer}."


# --- The customer page's Collections panel -----------------------------------------------------


def _panel_permissions(user) -> dict[str, bool]:
    desk = access.sees_all_customers(user)
    return {
        "promise": desk and user.has_perm("billing.add_promisetopay"),
        "cancel": desk and user.has_perm("billing.change_promisetopay"),
        "dispute": desk and user.has_perm("billing.change_invoice"),
        "collector": desk and user.has_perm("crm.change_customer"),
    }


def panel_context(request, customer: Customer, *, failed=None, notice: str = "") -> dict:
    """What the panel shows. `failed` is (action, object pk or None, bound form) for a refused write,
    shown again with its errors."""
    can = _panel_permissions(request.user)
    # The open invoices are there to be picked in the promise and dispute forms.
    data = customer_collections(customer=customer, with_open_invoices=can["promise"] or can["dispute"])
    failed_action, failed_pk, failed_form = failed or (None, None, None)

    def bound(action, pk=None):
        return failed_form if (failed_action, failed_pk) == (action, pk) else None

    today = timezone.localdate()
    return {
        "customer": customer,
        "data": data,
        "can": can,
        "can_act": any(can.values()),
        "collectors": list(collectors()) if can["collector"] else [],
        "promise_form": bound("promise") or CustomerPromiseForm(),
        "dispute_form": bound("dispute") or CustomerDisputeForm(),
        "collector_form": bound("collector"),
        "open_promises": [(row, bound("cancel", row.promise.pk)) for row in data.open_promises],
        "disputed": [(invoice, bound("resolve", invoice.pk)) for invoice in data.disputed_invoices],
        "today": today,
        "default_promise_date": today + timedelta(days=7),
        "notice": notice,
        "refusal": _refusal_without_a_form(data, failed),
    }


def _refusal_without_a_form(data, failed) -> str:
    """The errors of a refused cancel or resolve whose form is no longer shown (the promise was
    settled, or the dispute resolved, meanwhile): said above the panel instead."""
    if failed is None or failed[0] not in ("cancel", "resolve"):
        return ""
    action, pk, form = failed
    if action == "cancel":
        shown = any(row.promise.pk == pk for row in data.open_promises)
    else:
        shown = any(invoice.pk == pk for invoice in data.disputed_invoices)
    return "" if shown else " ".join(message for errors in form.errors.values() for message in errors)


def customer_panel(request, customer: Customer):
    """The "Collections" panel of the customer page (registered in BillingConfig.ready())."""
    if not request.user.has_perm("billing.view_promisetopay"):
        return None
    return PANEL_TEMPLATE, panel_context(request, customer)


def _customer_for(request, pk, permission: str) -> Customer:
    """The customer in the URL if the user reaches it (404 otherwise), and the user works the
    collections desk with `permission` (403 otherwise)."""
    customer = access.get_visible_customer_or_404(request.user, pk)
    if not (access.sees_all_customers(request.user) and request.user.has_perm(permission)):
        raise PermissionDenied
    return customer


def _panel_answer(request, customer: Customer, *, failed, notice: str):
    if failed is not None:
        context = panel_context(request, customer, failed=failed)
        if request.htmx:
            return render(request, PANEL_TEMPLATE, context)
        return render(request, PANEL_PAGE_TEMPLATE, context, status=422)
    if request.htmx:
        return render(request, PANEL_TEMPLATE, panel_context(request, customer, notice=notice))
    messages.success(request, notice)
    return redirect(reverse("crm:customer_detail", args=[customer.pk]) + "#collections-panel")


def _open_invoices(customer: Customer):
    return Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES).order_by("due_date", "pk")


@login_required
@require_POST
def record_promise(request, pk):
    customer = _customer_for(request, pk, "billing.add_promisetopay")
    form = CustomerPromiseForm(request.POST, open_invoices=_open_invoices(customer))
    notice = ""
    if form.is_valid():
        data = form.cleaned_data
        invoices = list(data["invoices"])
        try:
            promise = collections.record_promise(
                actor=request.user,
                customer=customer,
                invoices=invoices,
                amount=data["amount"] or sum(invoice.open_amount for invoice in invoices),
                promised_on=data["promised_on"],
                note=data["note"],
            )
            notice = (
                f"Recorded a promise to pay {_money(promise.amount, promise.currency)} by "
                f"{promise.promised_on:%Y-%m-%d} on {', '.join(str(invoice) for invoice in invoices)}."
            )
        except REFUSALS as error:
            add_service_error(form, error)
    return _panel_answer(request, customer, failed=("promise", None, form) if form.errors else None, notice=notice)


@login_required
@require_POST
def cancel_promise(request, pk, promise_pk):
    customer = _customer_for(request, pk, "billing.change_promisetopay")
    promise = get_object_or_404(PromiseToPay, pk=promise_pk, customer=customer)
    form = CancelPromiseForm(request.POST)
    notice = ""
    if form.is_valid():
        try:
            collections.cancel_promise(actor=request.user, promise=promise, reason=form.cleaned_data["reason"])
            promised = f"{_money(promise.amount, promise.currency)} by {promise.promised_on:%Y-%m-%d}"
            notice = f"Cancelled the promise of {promised}."
        except REFUSALS as error:
            add_service_error(form, error)
    return _panel_answer(request, customer, failed=("cancel", promise.pk, form) if form.errors else None, notice=notice)


@login_required
@require_POST
def open_dispute(request, pk):
    customer = _customer_for(request, pk, "billing.change_invoice")
    form = CustomerDisputeForm(request.POST, open_invoices=_open_invoices(customer).filter(disputed=False))
    notice = ""
    if form.is_valid():
        invoice = form.cleaned_data["invoice"]
        try:
            collections.open_dispute(actor=request.user, invoice=invoice, reason=form.cleaned_data["reason"])
            notice = f"Invoice {invoice} is disputed; it gets no reminders until the dispute is resolved."
        except REFUSALS as error:
            add_service_error(form, error)
    return _panel_answer(request, customer, failed=("dispute", None, form) if form.errors else None, notice=notice)


@login_required
@require_POST
def resolve_dispute(request, pk, disputed_invoice_pk):
    customer = _customer_for(request, pk, "billing.change_invoice")
    invoice = get_object_or_404(Invoice, pk=disputed_invoice_pk, customer=customer)
    form = ResolveDisputeForm(request.POST)
    notice = ""
    if form.is_valid():
        try:
            collections.resolve_dispute(actor=request.user, invoice=invoice, resolution=form.cleaned_data["resolution"])
            notice = f"The dispute on invoice {invoice} is resolved; it is chased and reminded again if overdue."
        except REFUSALS as error:
            add_service_error(form, error)
    return _panel_answer(
        request, customer, failed=("resolve", invoice.pk, form) if form.errors else None, notice=notice
    )


@login_required
@require_POST
def assign_collector(request, pk):
    customer = _customer_for(request, pk, "crm.change_customer")
    form = CollectorForm(request.POST, collectors=collectors())
    notice = ""
    if form.is_valid():
        collector = form.cleaned_data["collector"]
        try:
            customer = assign_customer_collector(actor=request.user, customer=customer, collector=collector)
            notice = _collector_notice(customer, collector)
        except REFUSALS as error:
            add_service_error(form, error)
    return _panel_answer(request, customer, failed=("collector", None, form) if form.errors else None, notice=notice)
