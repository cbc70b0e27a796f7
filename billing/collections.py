"""Every write about collecting: promises, disputes.

Promises to pay, disputes, and calls logged from the worklist. One function per use case, each in
one transaction, keyword arguments with the acting user explicit. Like billing.services, a write
about a customer's invoices locks the customer row first, then the invoices by primary key, so it
queues behind a payment being applied to the same invoices instead of reading them half-changed.
Every change goes through save_as, so the history names who made it; what a person would want
to read later (a promise made, kept or broken; a dispute opened or resolved) also goes on the
customer's timeline.

Decisions worth knowing:
- *Double submits.* A promise has no idempotency key of its own; instead an invoice is under at
  most one open promise. Recording the same promise again (same invoices, amount and date) while
  the first is open returns the first one unchanged, so a double click or a resent form records
  one promise; a different promise on an invoice that already has an open one is refused (cancel
  the first). The customer lock makes the check safe against two concurrent submits.
- *What keeps a promise.* Payments only: money applied from a payment to the promise's invoices
  from the day the promise was made to the promised day. A credit note is a correction of what
  is owed, not money received, so on its own it keeps nothing; but an invoice with nothing left
  to pay by the promised day (paid, or paid and credited) counts for all that was open on it when
  promised — the customer owes nothing more on it. A write-off is never payment.
- *Pro rata.* A promise paid short is broken; `paid_amount` records what came in time, and
  `PromiseToPay.kept_ratio` turns it into the share kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Max, Sum
from django.urls import reverse
from django.utils import timezone

from billing.collections_selectors import RESOLVED_PREFIX
from billing.models import CreditNoteAllocation, Invoice, PaymentAllocation, PromiseInvoice, PromiseToPay
from config import audit
from config.audit import save_as
from crm import services as crm_services
from crm.models import Activity, Customer
from ledger.money import ZERO, quantize

logger = logging.getLogger(__name__)

# How far ahead a promise may reach: beyond this it is a payment plan, not a promise.
MAX_PROMISE_DAYS = 180
SETTLING_ACTOR = "task:billing.tasks.settle_due_promises"
# simple-history's change reason column holds 100 characters.
CHANGE_REASON_LENGTH = 100


def _today() -> date:
    return timezone.localdate()


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _numbers(invoices: Iterable[Invoice]) -> str:
    return ", ".join(str(invoice) for invoice in invoices)


def _lock_customer(customer_id: int) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer_id)


def _lock_invoices(pks: Iterable[int]) -> list[Invoice]:
    return list(Invoice.objects.select_for_update().filter(pk__in=set(pks)).order_by("pk"))


# --- Promises to pay ---------------------------------------------------------------------------


@transaction.atomic
def record_promise(
    *,
    actor,
    customer: Customer,
    invoices: Iterable[Invoice],
    amount: Decimal,
    promised_on: date,
    made_on: date | None = None,
    note: str = "",
) -> PromiseToPay:
    """Record that the customer will pay `amount` on `invoices` by `promised_on`.

    The invoices must be the customer's, open, in one currency and under no other open promise;
    the amount positive and at most what is open on them; the date on or after the day the promise
    was made (today unless `made_on` says otherwise, never in the future) and at most
    MAX_PROMISE_DAYS later. The same promise submitted twice is recorded once."""
    invoice_pks = sorted({invoice.pk for invoice in invoices})
    if not invoice_pks:
        raise ValidationError({"invoices": "Choose at least one open invoice the promise covers."})
    try:
        amount = quantize(Decimal(amount))
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationError({"amount": "Enter the amount promised."}) from None
    today = _today()
    made_on = made_on or today
    note = (note or "").strip()
    if made_on > today:
        raise ValidationError({"made_on": "A promise cannot have been made in the future."})
    if promised_on < made_on:
        raise ValidationError({"promised_on": "The promised date cannot be before the day the promise was made."})
    if promised_on > made_on + timedelta(days=MAX_PROMISE_DAYS):
        raise ValidationError(
            {"promised_on": f"A promise reaches at most {MAX_PROMISE_DAYS} days ahead; agree a payment plan instead."}
        )
    if amount <= 0:
        raise ValidationError({"amount": f"A promise must be for a positive amount, not {amount}."})
    if len(note) > PromiseToPay._meta.get_field("note").max_length:
        raise ValidationError({"note": "Keep the note to 300 characters."})

    _lock_customer(customer.pk)
    locked = _lock_invoices(invoice_pks)
    if len(locked) != len(invoice_pks) or any(invoice.customer_id != customer.pk for invoice in locked):
        raise ValidationError({"invoices": f"A promise covers only {customer}'s own invoices."})
    not_open = [invoice for invoice in locked if invoice.status not in Invoice.OPEN_STATUSES]
    if not_open:
        raise ValidationError(
            {"invoices": f"Nothing is open on {_numbers(not_open)} any more; choose the customer's open invoices."}
        )
    currencies = sorted({invoice.currency for invoice in locked})
    if len(currencies) > 1:
        raise ValidationError(
            {"invoices": f"A promise is in one currency; these invoices are in {', '.join(currencies)}."}
        )
    currency = currencies[0]
    open_total = sum((invoice.open_amount for invoice in locked), ZERO)
    if amount > open_total:
        raise ValidationError(
            {"amount": f"{_money(amount, currency)} is more than the {_money(open_total, currency)} open on them."}
        )

    existing = _open_promise_on(invoice_pks)
    if existing is not None:
        same = sorted(existing.promised_invoices.values_list("invoice_id", flat=True)) == invoice_pks and (
            existing.amount,
            existing.promised_on,
        ) == (amount, promised_on)
        if same:
            return existing  # a second submission of the same promise
        raise ValidationError(
            {
                "invoices": f"{_numbers(locked)} already {'has' if len(locked) == 1 else 'have'} an open promise "
                f"({_money(existing.amount, existing.currency)} by {existing.promised_on:%Y-%m-%d}); "
                "cancel it before recording another."
            }
        )

    promise = PromiseToPay(
        customer=customer,
        amount=amount,
        currency=currency,
        promised_on=promised_on,
        made_on=made_on,
        note=note,
        created_by=actor,
    )
    # Each field's own value (the currency code); the business rules were checked above.
    promise.clean_fields(exclude=["customer", "created_by"])
    save_as(promise, actor=actor)
    for invoice in locked:
        save_as(PromiseInvoice(promise=promise, invoice=invoice, open_when_promised=invoice.open_amount), actor=actor)
    text = f"Promised to pay {_money(amount, currency)} by {promised_on:%Y-%m-%d} on {_numbers(locked)}."
    if note:
        text += f"\n{note}"
    crm_services.log_activity(
        actor=actor, customer=customer, kind=Activity.Kind.PROMISE, text=text, subject=_numbers(locked)[:200]
    )
    return promise


def _open_promise_on(invoice_pks: list[int]) -> PromiseToPay | None:
    return (
        PromiseToPay.objects.filter(status=PromiseToPay.Status.OPEN, promised_invoices__invoice_id__in=invoice_pks)
        .order_by("pk")
        .first()
    )


@transaction.atomic
def cancel_promise(*, actor, promise: PromiseToPay, reason: str) -> PromiseToPay:
    """Withdraw an open promise (recorded by mistake, or replaced by a new agreement). It is
    neither kept nor broken; the reason goes on the customer's timeline."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the promise is cancelled."})
    customer = _lock_customer(promise.customer_id)
    promise = PromiseToPay.objects.select_for_update().get(pk=promise.pk)
    if promise.status != PromiseToPay.Status.OPEN:
        raise ValidationError({"promise": f"This promise is {promise.get_status_display().lower()} already."})
    promise.status, promise.settled_on = PromiseToPay.Status.CANCELLED, _today()
    save_as(promise, actor=actor, update_fields=["status", "settled_on"])
    crm_services.log_activity(
        actor=actor,
        customer=customer,
        kind=Activity.Kind.PROMISE,
        text=f"Cancelled the promise of {_money(promise.amount, promise.currency)} by "
        f"{promise.promised_on:%Y-%m-%d}: {reason}",
        subject=_numbers(_promise_invoices(promise))[:200],
    )
    return promise


def _promise_invoices(promise: PromiseToPay) -> list[Invoice]:
    return [line.invoice for line in promise.promised_invoices.select_related("invoice").order_by("invoice_id")]


def settle_due_promises(*, as_of: date, actor=None) -> dict[str, int]:
    """Settle every open promise whose date is before `as_of`: kept when payments applied to its
    invoices in time reach the amount, broken otherwise. Returns how many were kept, broken, and
    could not be settled.

    Each promise is settled in a transaction of its own, under its customer's lock, and only while
    still open — so a second run (or two at once) settles nothing twice. One promise that cannot
    be settled is logged and left open for the next run; it does not hold up the others. A broken
    promise is put on the timeline and the owner rep is told: a notification, and an e-mail once
    the settlement is committed."""
    actor = actor or audit.system_actor(SETTLING_ACTOR)
    due = (
        PromiseToPay.objects.filter(status=PromiseToPay.Status.OPEN, promised_on__lt=as_of)
        .order_by("promised_on", "pk")
        .values_list("pk", "customer_id")
    )
    counts = {"kept": 0, "broken": 0, "failed": 0}
    for promise_id, customer_id in list(due):
        try:
            outcome = _settle_promise(actor=actor, promise_id=promise_id, customer_id=customer_id, as_of=as_of)
        except Exception:  # one bad promise must not stop the night's settlement of the others
            logger.exception("Could not settle promise to pay %s", promise_id)
            counts["failed"] += 1
            continue
        if outcome is not None:
            counts[outcome] += 1
    return counts


def paid_toward(promise: PromiseToPay, lines: list[PromiseInvoice]) -> Decimal:
    """What counts as paid on a promise (see the module docstring): per invoice, the payments
    applied from `made_on` to `promised_on`, or all that was open when promised if the invoice
    had nothing left to pay by `promised_on`; never more than was open on it when promised."""
    invoice_ids = [line.invoice_id for line in lines]
    paid = dict(
        PaymentAllocation.objects.filter(
            invoice_id__in=invoice_ids, allocated_on__gte=promise.made_on, allocated_on__lte=promise.promised_on
        )
        .values("invoice_id")
        .annotate(total=Sum("amount"))
        .values_list("invoice_id", "total")
    )
    settled_ids = [line.invoice_id for line in lines if line.invoice.status == Invoice.Status.PAID]
    last_applied: dict[int, date] = {}
    for allocations in (PaymentAllocation.objects, CreditNoteAllocation.objects):
        rows = (
            allocations.filter(invoice_id__in=settled_ids)
            .values("invoice_id")
            .annotate(last=Max("allocated_on"))
            .values_list("invoice_id", "last")
        )
        for invoice_id, last in rows:
            last_applied[invoice_id] = max(last, last_applied.get(invoice_id, last))
    total = ZERO
    for line in lines:
        cleared_in_time = line.invoice_id in last_applied and last_applied[line.invoice_id] <= promise.promised_on
        counted = line.open_when_promised if cleared_in_time else quantize(paid.get(line.invoice_id) or ZERO)
        total += min(counted, line.open_when_promised)
    return quantize(total)


@transaction.atomic
def _settle_promise(*, actor, promise_id: int, customer_id: int, as_of: date) -> str | None:
    customer = _lock_customer(customer_id)
    promise = PromiseToPay.objects.select_for_update().filter(pk=promise_id).first()
    if promise is None or promise.status != PromiseToPay.Status.OPEN or promise.promised_on >= as_of:
        return None  # settled (or cancelled) meanwhile, e.g. by a concurrent run
    lines = list(promise.promised_invoices.select_related("invoice").order_by("invoice_id"))
    promise.paid_amount = paid_toward(promise, lines)
    kept = promise.paid_amount >= promise.amount
    promise.status = PromiseToPay.Status.KEPT if kept else PromiseToPay.Status.BROKEN
    promise.settled_on = as_of
    save_as(promise, actor=actor, update_fields=["status", "paid_amount", "settled_on"])

    numbers = _numbers(line.invoice for line in lines)
    promised = f"{_money(promise.amount, promise.currency)} by {promise.promised_on:%Y-%m-%d}"
    if kept:
        text = f"Kept the promise of {promised} on {numbers}."
    else:
        paid = _money(promise.paid_amount, promise.currency)
        text = f"Broke the promise of {promised} on {numbers}: {paid} paid in time ({promise.kept_ratio:.0%})."
    crm_services.log_activity(
        actor=actor, customer=customer, kind=Activity.Kind.PROMISE, text=text, subject=numbers[:200]
    )
    if not kept:
        _tell_owner_of_broken_promise(customer=customer, text=text)
    return promise.status


def _tell_owner_of_broken_promise(*, customer: Customer, text: str) -> None:
    owner = customer.owner
    if owner is None or not owner.is_active:
        return
    url = reverse("crm:customer_detail", args=[customer.pk]) + "#collections-panel"
    crm_services.notify(recipient=owner, customer=customer, text=f"{customer}: {text}", url=url)
    if not owner.email:
        return
    subject = f"{customer} broke a promise to pay"
    body = (
        f"{customer} ({customer.account_number}) did not keep a promise to pay.\n\n{text}\n\n"
        "The customer is back at the top of the collections worklist; their page in Concord "
        f"({url}) shows the promise and the payments.\n"
    )

    def send() -> None:
        # After the commit: a rolled-back settlement sends nothing, and a rerun finds the promise
        # settled and sends nothing twice. A mail server that is down costs this e-mail only.
        try:
            send_mail(subject, body, settings.CONCORD_COLLECTIONS_FROM_EMAIL, [owner.email])
        except Exception:  # the notification in Concord stands; the e-mail is a courtesy
            logger.exception("Could not e-mail %s about a broken promise of %s", owner.email, customer)

    transaction.on_commit(send)


# --- Disputes ----------------------------------------------------------------------------------


def _change_reason(text: str) -> str:
    return text if len(text) <= CHANGE_REASON_LENGTH else text[: CHANGE_REASON_LENGTH - 1] + "…"


def _save_invoice(invoice: Invoice, *, actor, change_reason: str) -> None:
    # The change reason travels with the history row, so the invoice's history tells the dispute's
    # story on its own (billing.collections_selectors.dispute_episodes reads it).
    invoice._change_reason = _change_reason(change_reason)
    try:
        save_as(invoice, actor=actor, update_fields=["disputed", "dispute_reason", "disputed_at", "updated_at"])
    finally:
        del invoice._change_reason


@transaction.atomic
def open_dispute(*, actor, invoice: Invoice, reason: str) -> Invoice:
    """The customer disputes an open invoice: it leaves dunning (and automatic allocation) until
    the dispute is resolved. The reason is kept on the invoice and put on the timeline."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say what the customer disputes."})
    if len(reason) > Invoice._meta.get_field("dispute_reason").max_length:
        raise ValidationError({"reason": "Keep the reason to 300 characters; the timeline can hold more."})
    customer = _lock_customer(invoice.customer_id)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status not in Invoice.OPEN_STATUSES:
        status = invoice.get_status_display().lower()
        raise ValidationError({"invoice": f"Invoice {invoice} is {status}; only an open invoice can be disputed."})
    if invoice.disputed:
        raise ValidationError(
            {"invoice": f"Invoice {invoice} is disputed already ({invoice.dispute_reason}); resolve that first."}
        )
    invoice.disputed, invoice.dispute_reason, invoice.disputed_at = True, reason, timezone.now()
    _save_invoice(invoice, actor=actor, change_reason=f"Dispute opened: {reason}")
    crm_services.log_activity(
        actor=actor,
        customer=customer,
        kind=Activity.Kind.NOTE,
        text=f"Invoice {invoice} disputed: {reason}",
        subject=str(invoice),
    )
    return invoice


@transaction.atomic
def resolve_dispute(*, actor, invoice: Invoice, resolution: str) -> Invoice:
    """Close the invoice's dispute with what was decided: the flag, reason and date are cleared
    (the invoice's history keeps them) and the resolution goes on the timeline."""
    resolution = (resolution or "").strip()
    if not resolution:
        raise ValidationError({"resolution": "Say how the dispute was resolved."})
    customer = _lock_customer(invoice.customer_id)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if not invoice.disputed:
        raise ValidationError({"invoice": f"Invoice {invoice} is not disputed."})
    reason, since = invoice.dispute_reason, invoice.disputed_at
    invoice.disputed, invoice.dispute_reason, invoice.disputed_at = False, "", None
    _save_invoice(invoice, actor=actor, change_reason=f"{RESOLVED_PREFIX}{resolution}")
    since_text = f" since {timezone.localtime(since):%Y-%m-%d}" if since else ""
    disputed = f"Disputed{since_text}: {reason or 'no reason given'}"
    crm_services.log_activity(
        actor=actor,
        customer=customer,
        kind=Activity.Kind.NOTE,
        text=f"Dispute on invoice {invoice} resolved: {resolution}\n({disputed})",
        subject=str(invoice),
    )
    return invoice


# --- Calls -------------------------------------------------------------------------------------


@transaction.atomic
def log_call(*, actor, customer: Customer, outcome: str, text: str = "", invoice: Invoice | None = None) -> Activity:
    """A collections call and how it went, on the customer's timeline (about `invoice`, if given)."""
    if outcome not in Activity.Outcome.values:
        raise ValidationError({"outcome": "Choose how the call went."})
    if invoice is not None and invoice.customer_id != customer.pk:
        raise ValidationError({"invoice": f"Invoice {invoice} is not {customer}'s."})
    text = (text or "").strip() or Activity.Outcome(outcome).label
    return crm_services.log_activity(
        actor=actor,
        customer=customer,
        kind=Activity.Kind.CALL,
        outcome=outcome,
        text=text,
        subject=str(invoice) if invoice is not None else "",
    )
