"""The write-off desk (/ar/write-offs/): requests awaiting a decision and the latest decisions.

Accounts receivable ask for write-offs from the customer page (billing.views.request_write_off)
and follow them here; a Finance Admin approves (the open balance is posted to bad debt on the
chosen date) or rejects with a reason. Checked in this order: signed in; to open the desk, the
right to see write-offs and to take part (ask or decide; reps hold neither, 403); to decide, the
write-off's customer within reach (404 otherwise) and billing.approve_writeoff (403). The service
refuses an approval by the person who asked, and a refusal (a locked period, an invoice paid
meanwhile) comes back next to the field with nothing changed. With htmx the desk is swapped in
place; without JavaScript a decision redirects back to the desk, a refusal shows it with the
errors (422).
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from billing import page_selectors, services
from billing.forms import ApproveWriteOffForm, RejectWriteOffForm, add_service_error
from billing.models import WriteOff
from crm import services as crm_services
from crm.models import Activity
from ledger.errors import LedgerError

DESK_TEMPLATE = "billing/writeoffs/desk.html"
DESK_FRAGMENT = "billing/writeoffs/_desk.html"
REFUSALS = (LedgerError, ValidationError)


@dataclass(frozen=True)
class Failed:
    """A decision form refused, to show again under its request: `action` "approve" or "reject"."""

    action: str
    write_off_pk: int
    form: forms.Form


def _person(user) -> str:
    return user.get_full_name() or user.get_username()


def _money(amount, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _require_desk(user) -> None:
    """The desk is for those who take part in write-offs: AR (who ask) and Finance Admins (who
    decide). A sales rep may see a write-off on their customer's page, not the desk."""
    if not user.has_perm("billing.view_writeoff") or not (
        user.has_perm("billing.request_writeoff") or user.has_perm("billing.approve_writeoff")
    ):
        raise PermissionDenied


def _write_off_to_decide(request, write_off_pk) -> WriteOff:
    """The write-off in the URL if its customer is within reach (404 otherwise), and the user may
    decide on write-offs (403 otherwise)."""
    write_off = page_selectors.desk_write_off(user=request.user, write_off_pk=write_off_pk)
    if write_off is None:
        raise Http404("No such write-off.")
    if not request.user.has_perm("billing.approve_writeoff"):
        raise PermissionDenied
    return write_off


def desk_context(request, *, failed: Failed | None = None, notice: str = "", refusal: str = "") -> dict:
    user = request.user
    mine = request.GET.get("mine") == "1"
    desk = page_selectors.write_off_desk(user=user, mine=mine)
    can_decide = user.has_perm("billing.approve_writeoff")
    rows, with_forms = [], set()
    for write_off in desk.pending:
        approve_form = reject_form = None
        if can_decide and write_off.requested_by_id != user.pk:
            with_forms.add(write_off.pk)
            approve_form, reject_form = ApproveWriteOffForm(), RejectWriteOffForm()
            if failed is not None and failed.write_off_pk == write_off.pk:
                if failed.action == "approve":
                    approve_form = failed.form
                else:
                    reject_form = failed.form
        rows.append((write_off, approve_form, reject_form))
    if failed is not None and failed.write_off_pk not in with_forms:
        # Decided meanwhile (e.g. by another Finance Admin), or not the user's to decide (their
        # own request): the reason goes above the list.
        refusal = " ".join(message for errors in failed.form.errors.values() for message in errors)
    return {
        "rows": rows,
        "decisions": desk.decisions,
        "mine": mine,
        "can_decide": can_decide,
        "today": timezone.localdate(),
        "notice": notice,
        "refusal": refusal,
    }


@login_required
@require_GET
def desk(request):
    _require_desk(request.user)
    template = DESK_FRAGMENT if request.htmx else DESK_TEMPLATE
    return render(request, template, desk_context(request))


def _done(request, notice: str):
    if request.htmx:
        return render(request, DESK_FRAGMENT, desk_context(request, notice=notice))
    messages.success(request, notice)
    return redirect("writeoffs:desk")


def _refused(request, failed: Failed):
    context = desk_context(request, failed=failed)
    if request.htmx:
        # 200, not 4xx: htmx swaps only successful responses by default, and the errors must show.
        return render(request, DESK_FRAGMENT, context)
    return render(request, DESK_TEMPLATE, context, status=422)


# The decisions: the service's write plus telling the requester and the customer's timeline, in
# one transaction, so that a decision is never recorded without its story (or the other way).


@transaction.atomic
def _approve(*, actor, write_off: WriteOff, written_off_on) -> WriteOff:
    write_off = services.approve_write_off(actor=actor, write_off=write_off, written_off_on=written_off_on)
    invoice = write_off.invoice
    amount = _money(write_off.amount, invoice.currency)
    crm_services.log_activity(
        actor=actor,
        customer=invoice.customer,
        kind=Activity.Kind.NOTE,
        text=f"Invoice {invoice} written off as bad debt: {amount} on {write_off.written_off_on:%Y-%m-%d}, "
        f"approved by {_person(actor)}. Reason given: {write_off.reason}",
        subject=str(invoice),
    )
    crm_services.notify(
        recipient=write_off.requested_by,
        text=f"Your write-off of invoice {invoice} ({amount}) was approved by {_person(actor)}.",
        url=reverse("crm:customer_detail", args=[invoice.customer_id]),
        customer=invoice.customer,
    )
    return write_off


REJECTION_REASON_LENGTH = RejectWriteOffForm.base_fields["reason"].max_length


@transaction.atomic
def _reject(*, actor, write_off: WriteOff, reason: str) -> WriteOff:
    write_off = services.reject_write_off(actor=actor, write_off=write_off)
    # The write-off has no field for why it was rejected; the history row that records the
    # rejection carries it (page_selectors.write_off_desk reads it back for the desk).
    rejection = write_off.history.order_by("-history_date", "-history_id").first()
    rejection.history_change_reason = reason[:REJECTION_REASON_LENGTH]
    rejection.save(update_fields=["history_change_reason"])
    invoice = write_off.invoice
    crm_services.log_activity(
        actor=actor,
        customer=invoice.customer,
        kind=Activity.Kind.NOTE,
        text=f"Write-off of invoice {invoice} rejected by {_person(actor)}: {reason} "
        f"(asked for because: {write_off.reason})",
        subject=str(invoice),
    )
    crm_services.notify(
        recipient=write_off.requested_by,
        text=f"Your write-off of invoice {invoice} was rejected by {_person(actor)}: {reason}",
        url=reverse("crm:customer_detail", args=[invoice.customer_id]),
        customer=invoice.customer,
    )
    return write_off


@login_required
@require_POST
def decide(request, write_off_pk):
    """Approve (with the write-off date) or reject (with a reason) one request: the form's
    `decision` says which."""
    write_off = _write_off_to_decide(request, write_off_pk)
    decision = request.POST.get("decision")
    if decision == "approve":
        return _approve_from(request, write_off)
    if decision == "reject":
        return _reject_from(request, write_off)
    return HttpResponseBadRequest("Say whether the write-off is approved or rejected.")


def _approve_from(request, write_off: WriteOff):
    form = ApproveWriteOffForm(request.POST)
    failed = Failed("approve", write_off.pk, form)
    if not form.is_valid():
        return _refused(request, failed)
    try:
        write_off = _approve(
            actor=request.user, write_off=write_off, written_off_on=form.cleaned_data["written_off_on"]
        )
    except REFUSALS as error:
        add_service_error(form, error, period_field="written_off_on")
        return _refused(request, failed)
    invoice = write_off.invoice
    return _done(
        request,
        f"Wrote off invoice {invoice} of {invoice.customer.display_name}: "
        f"{_money(write_off.amount, invoice.currency)} posted to bad debt on {write_off.written_off_on:%Y-%m-%d}.",
    )


def _reject_from(request, write_off: WriteOff):
    form = RejectWriteOffForm(request.POST)
    failed = Failed("reject", write_off.pk, form)
    if not form.is_valid():
        return _refused(request, failed)
    try:
        write_off = _reject(actor=request.user, write_off=write_off, reason=form.cleaned_data["reason"])
    except REFUSALS as error:
        add_service_error(form, error)
        return _refused(request, failed)
    return _done(
        request,
        f"Rejected the write-off of invoice {write_off.invoice} of {write_off.invoice.customer.display_name}; "
        f"{_person(write_off.requested_by)} has been told why.",
    )
