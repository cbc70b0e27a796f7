"""Every write to invoices, payments, credit notes, refunds and write-offs.

One function per use case, each atomic. Money operations on a customer lock the customer row
first, then the documents they change, so concurrent operations on one customer queue up in one
order and cannot over-apply a balance or deadlock. Every amount is validated before the first
write; a refused operation raises a BillingError (or ValidationError) and changes nothing.
"""

from __future__ import annotations

import calendar
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from types import SimpleNamespace

from django.core.exceptions import ValidationError
from django.core.validators import DecimalValidator
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, DecimalField, F, Field, Max, Min, Value, When, prefetch_related_objects
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone

from billing import pricing
from billing.errors import (
    AllocationExceedsBalance,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidState,
    NotPermitted,
)
from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    NumberSequence,
    Payment,
    PaymentAllocation,
    Product,
    RecurringInvoice,
    Refund,
    Source,
    TaxRate,
    WriteOff,
)
from config import bulk
from config.audit import is_system_actor, save_as
from crm.models import Customer
from jobs import services as jobs
from ledger import posting
from ledger.models import Account
from ledger.money import ZERO, base_currency, quantize, to_base
from ledger.services import (
    account_for,
    accounts_by_role,
    check_period_open,
    locked_through,
    period_check,
    post_entries,
    rate_on,
)


def _check_fields(instance, *, exclude=()) -> None:
    """Validate each field's own value (choices, digits, currency code) without a query. Related
    rows were fetched by the caller, and constraints are the database's to enforce (the
    services check every business rule before writing), so neither is looked up again."""
    relations = [field.name for field in instance._meta.fields if field.is_relation]
    instance.clean_fields(exclude=[*relations, *exclude])


def _lock_customer(customer_id: int) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer_id)


def _move_receivables(customer_id: int, *, open_by: Decimal = ZERO, unapplied_by: Decimal = ZERO) -> None:
    """Keep the customer's stored receivables (crm.Customer.ar_*) in step with a change to its
    documents, in the same transaction; the caller holds the customer's row lock."""
    Customer.objects.filter(pk=customer_id).update(
        ar_open=F("ar_open") + open_by,
        ar_unapplied=F("ar_unapplied") + unapplied_by,
        ar_balance=F("ar_balance") + (open_by - unapplied_by),
    )


def _latest_day(*days: date | None) -> date:
    return max(day for day in days if day is not None)


def _invoice_settled_on(invoice: Invoice, *also: date) -> date:
    """The day an invoice's open amount reached zero, counting by the dates of the events (which
    may be back-dated): the latest of its allocations and `also`."""
    paid = PaymentAllocation.objects.filter(invoice=invoice).aggregate(day=Max("allocated_on"))["day"]
    credited = CreditNoteAllocation.objects.filter(invoice=invoice).aggregate(day=Max("allocated_on"))["day"]
    return _latest_day(paid, credited, *also)


def _credit_used_up_on(credit) -> date:
    """The day a payment's or credit note's unapplied amount reached zero (event dates)."""
    allocated = credit.allocations.aggregate(day=Max("allocated_on"))["day"]
    refunded = credit.refunds.aggregate(day=Max("refunded_on"))["day"]
    return _latest_day(allocated, refunded)


def _today() -> date:
    return timezone.localdate()


# --- Lines ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineInput:
    """A line as a person or a program gives it; what is left out comes from the product."""

    description: str = ""
    quantity: Decimal = Decimal(1)
    unit_price: Decimal | None = None
    product: Product | None = None
    discount_type: str = "none"
    discount_value: Decimal = ZERO
    tax_rate: TaxRate | None = None
    revenue_account: Account | None = None


def _build_line(line_class, position: int, given: LineInput, *, accounts=account_for, **owner):
    fields = vars(_line_fields(position, given, accounts=accounts))
    unit_cost = fields.pop("unit_cost")
    line = line_class(**fields, **owner)
    if hasattr(line, "unit_cost") and given.product is not None:
        line.unit_cost = unit_cost
    return line


def _line_fields(position: int, given: LineInput, *, accounts=account_for) -> SimpleNamespace:
    """A line's fields by name, priced (billing.pricing), as `_build_line` makes the line: what is
    left out comes from the product; `unit_cost` is the product's (None without one). The batch
    services write these without building a model instance per line."""
    product = given.product
    if product is None and given.unit_price is None:
        raise ValidationError({"unit_price": f"Line {position} needs a unit price or a product."})
    line = SimpleNamespace(
        position=position,
        product=product,
        description=given.description or (product.name if product else ""),
        quantity=Decimal(given.quantity),
        unit_price=Decimal(given.unit_price if given.unit_price is not None else product.unit_price),
        discount_type=given.discount_type,
        discount_value=Decimal(given.discount_value),
        tax_rate=given.tax_rate if given.tax_rate is not None else (product.tax_rate if product else None),
        revenue_account=given.revenue_account
        or (product.revenue_account if product else accounts(Account.Role.REVENUE)),
    )
    if not line.description:
        raise ValidationError({"description": f"Line {position} needs a description."})
    line.unit_cost = product.unit_cost if product is not None else None
    pricing.apply_to_line(line)
    return line


# --- Numbers ----------------------------------------------------------------------------------


def _draw_number(series: str, *, actor) -> str:
    """The next number of a gapless series. Called inside the transaction that uses it: the lock
    on the series row serialises concurrent issues, and a rollback returns the number."""
    return _draw_numbers(series, 1, actor=actor)[0]


def _draw_numbers(series: str, count: int, *, actor) -> list[str]:
    """The next `count` numbers of a gapless series, in order, taken under one lock of its row
    in one update (as `_draw_number`, for a batch)."""
    sequence = NumberSequence.objects.select_for_update().filter(series=series).first()
    if sequence is None:
        try:
            with transaction.atomic():
                save_as(NumberSequence(series=series, prefix=f"{series}-"), actor=actor, force_insert=True)
        except IntegrityError:
            pass  # created meanwhile by a concurrent first issue
        sequence = NumberSequence.objects.select_for_update().get(series=series)
    first = sequence.next_number
    sequence.next_number += count
    save_as(sequence, actor=actor, update_fields=["next_number"])
    return [f"{sequence.prefix}{number:06d}" for number in range(first, first + count)]


# Where documents numbered by an accounting package are filed (`issue_invoice(number=…)`,
# `issue_credit_note(number=…)`): Concord never draws from it, so the package's numbers can
# never collide with the ones Concord draws from its own series.
EXTERNAL_SERIES = "SYNC"


def _take_number(model, *, series: str, number: str) -> str:
    """A number given from outside (an accounting package's), checked before the first write: it
    is filed in a series Concord does not draw from, and is not taken in it yet."""
    number = (number or "").strip()
    longest = model._meta.get_field("number").max_length
    if not number or len(number) > longest:
        raise ValidationError({"number": f"A document number has 1 to {longest} characters, not {number!r}."})
    if NumberSequence.objects.filter(series=series).exists():
        raise ValidationError(
            {"number": f"Concord numbers series {series} itself; numbers from elsewhere need a series of their own."}
        )
    if model.objects.filter(series=series, number=number).exists():
        raise ValidationError({"number": f"{number} is taken already in series {series}."})
    return number


def _booking_rate(currency: str, on: date, given: Decimal | None) -> Decimal:
    """The rate a document is booked at: Concord's rate of the day, or the rate it was booked at
    elsewhere (an accounting package's), so that both books carry the same base amounts."""
    if given is None:
        return rate_on(currency, on)
    given = Decimal(given)
    if given <= 0:
        raise ValidationError({"exchange_rate": f"An exchange rate must be positive, not {given}."})
    if currency == base_currency() and given != 1:
        raise ValidationError({"exchange_rate": f"{currency} is the base currency; its rate is 1, not {given}."})
    return given


# --- Invoices ---------------------------------------------------------------------------------


@transaction.atomic
def create_invoice(
    *,
    actor,
    customer: Customer,
    lines: list[LineInput],
    currency: str | None = None,
    due_date: date | None = None,
    memo: str = "",
    source: str = Source.MANUAL,
    external_system: str = "",
    external_id: str = "",
    recurring_template: RecurringInvoice | None = None,
    period_start: date | None = None,
) -> Invoice:
    """A draft invoice in the customer's currency (or `currency`), with its lines priced."""
    if not lines:
        raise ValidationError({"lines": "An invoice needs at least one line."})
    currency = currency or customer.currency
    if currency != customer.currency:
        raise CurrencyMismatch(f"{customer} is invoiced in {customer.currency}, not {currency}.")
    invoice = Invoice(
        customer=customer,
        currency=currency,
        due_date=due_date,
        memo=memo,
        source=source,
        external_system=external_system,
        external_id=external_id,
        recurring_template=recurring_template,
        period_start=period_start,
        created_by=actor,
    )
    built = [_build_line(InvoiceLine, position, given) for position, given in enumerate(lines, start=1)]
    invoice.net_total, invoice.tax_total, invoice.gross_total = pricing.document_totals(built)
    _check_fields(invoice, exclude=["number"])
    save_as(invoice, actor=actor)
    for line in built:
        line.invoice = invoice
        _check_fields(line)
        save_as(line, actor=actor)
    return invoice


def _fix_issue_terms(invoice: Invoice, *, issue_date: date | None, rate) -> None:
    """Check that a draft can be issued and fix its issue and due dates and its exchange rate: the
    same rule for one invoice and for a batch (`rate(currency, day)`, rate_on or a batch's cache)."""
    if invoice.status != Invoice.Status.DRAFT:
        raise InvalidState(f"Invoice {invoice} is {invoice.get_status_display().lower()}, not a draft.")
    if invoice.gross_total <= 0:
        raise InvalidState("An invoice for nothing cannot be issued; add a priced line.")
    invoice.issue_date = issue_date or _today()
    invoice.due_date = invoice.due_date or invoice.issue_date + timedelta(days=invoice.customer.payment_terms_days)
    if invoice.due_date < invoice.issue_date:
        raise ValidationError({"due_date": "The due date cannot be before the issue date."})
    invoice.exchange_rate = rate(invoice.currency, invoice.issue_date)


@transaction.atomic
def issue_invoice(
    *,
    actor,
    invoice: Invoice,
    issue_date: date | None = None,
    number: str | None = None,
    series: str = EXTERNAL_SERIES,
    exchange_rate: Decimal | None = None,
) -> Invoice:
    """Number the draft from its series, fix its exchange rate and due date, and post it.

    An invoice first issued in an accounting package keeps what it has there: its `number`, filed
    in `series` (one Concord does not draw from, so the numbers never collide), and its
    `exchange_rate` (so that both books carry the same base amounts)."""
    _lock_customer(invoice.customer_id)
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    _fix_issue_terms(
        invoice, issue_date=issue_date, rate=lambda currency, day: _booking_rate(currency, day, exchange_rate)
    )
    lines = list(invoice.lines.select_related("tax_rate__liability_account", "revenue_account"))
    if number is None:
        invoice.number = _draw_number(invoice.series, actor=actor)
    else:
        invoice.series, invoice.number = series, _take_number(Invoice, series=series, number=number)
    invoice.status = Invoice.Status.ISSUED
    invoice.issue_entry, invoice.base_gross = posting.invoice_issued(invoice, lines, actor=actor)
    invoice.open_amount, invoice.open_base = invoice.gross_total, invoice.base_gross
    save_as(invoice, actor=actor)
    _move_receivables(invoice.customer_id, open_by=invoice.open_amount)
    return invoice


@transaction.atomic
def void_invoice(*, actor, invoice: Invoice, voided_on: date | None = None) -> Invoice:
    """Cancel an issued invoice nothing has been applied to: its entry is reversed."""
    _lock_customer(invoice.customer_id)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status == Invoice.Status.DRAFT:
        raise InvalidState(f"{invoice} is a draft: delete it instead of voiding it.")
    if invoice.status not in Invoice.OPEN_STATUSES or invoice.open_amount != invoice.gross_total:
        raise InvalidState(
            f"Invoice {invoice} has payments or credits applied ({invoice.get_status_display().lower()}); "
            "only an invoice with nothing applied can be voided. Issue a credit note instead."
        )
    voided_on = voided_on or _today()
    if voided_on < invoice.issue_date:
        raise ValidationError({"voided_on": "An invoice cannot be voided before it was issued."})
    posting.invoice_voided(invoice, voided_on=voided_on, actor=actor)
    # A void invoice has nothing left to write off: a request still awaiting approval is closed
    # as rejected, by whoever voided it, with why in its history.
    for write_off in WriteOff.objects.select_for_update().filter(invoice=invoice, status=WriteOff.Status.REQUESTED):
        write_off.status, write_off.decided_by, write_off.decided_at = WriteOff.Status.REJECTED, actor, timezone.now()
        write_off._change_reason = f"Invoice {invoice} was voided."
        save_as(write_off, actor=actor)
    _move_receivables(invoice.customer_id, open_by=-invoice.open_amount)
    invoice.status, invoice.voided_on = Invoice.Status.VOID, voided_on
    invoice.open_amount = invoice.open_base = ZERO
    save_as(invoice, actor=actor)
    return invoice


@transaction.atomic
def set_dispute(*, actor, invoice: Invoice, disputed: bool, reason: str = "") -> Invoice:
    """Flag an invoice as disputed (with why) or clear the flag."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if disputed and not reason.strip():
        raise ValidationError({"dispute_reason": "Say what the customer disputes."})
    invoice.disputed, invoice.dispute_reason = disputed, reason.strip() if disputed else ""
    save_as(invoice, actor=actor)
    return invoice


@transaction.atomic
def update_issued_invoice(*, actor, invoice: Invoice, due_date: date | None = None, memo: str | None = None) -> Invoice:
    """Change what an issued invoice says without touching its amounts: its due date (its aging
    bucket and dunning follow the new date from now on) and its memo; None leaves a field as it
    is. Neither is in the ledger, so nothing is posted; the history keeps the previous values. A
    draft is changed with `update_draft_invoice`, and a void invoice is closed."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status in (Invoice.Status.DRAFT, Invoice.Status.VOID):
        raise InvalidState(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; only an issued invoice is changed here."
        )
    changes = {}
    if due_date is not None and due_date != invoice.due_date:
        if due_date < invoice.issue_date:
            raise ValidationError({"due_date": "The due date cannot be before the issue date."})
        changes["due_date"] = due_date
    if memo is not None and memo != invoice.memo:
        changes["memo"] = memo
    if not changes:
        return invoice  # nothing to record: no empty entry in the history
    for name, value in changes.items():
        setattr(invoice, name, value)
    _check_fields(invoice)
    save_as(invoice, actor=actor, update_fields=[*changes, "updated_at"])
    return invoice


def _first_applied_on(invoice: Invoice) -> date | None:
    """The earliest day anything was set against an invoice: a payment or credit applied, a write-off
    posted, a credit note raised against it."""
    days = [
        PaymentAllocation.objects.filter(invoice=invoice).aggregate(day=Min("allocated_on"))["day"],
        CreditNoteAllocation.objects.filter(invoice=invoice).aggregate(day=Min("allocated_on"))["day"],
        invoice.write_offs.filter(status=WriteOff.Status.APPROVED).aggregate(day=Min("written_off_on"))["day"],
        invoice.credit_notes.aggregate(day=Min("issue_date"))["day"],
    ]
    return min((day for day in days if day is not None), default=None)


@transaction.atomic
def amend_issued_invoice(
    *,
    actor,
    invoice: Invoice,
    lines: list[LineInput],
    issue_date: date | None = None,
    exchange_rate: Decimal | None = None,
) -> Invoice:
    """Correct an issued invoice in place — its lines, issue date or booking rate — as an
    accounting package edits an invoice (Concord's own pages correct one with a credit note).

    The invoice is restated (ledger.posting.invoice_restated): its issue entry is reversed on that
    entry's own date and the invoice is posted again as it now stands, on its issue date, so the
    books as of any day read as though it had always been so; both dates must be in open periods.
    While nothing is applied to it the amount may change, and its open balance and the customer's
    receivables follow. Once a payment, credit or write-off has touched it, only a restatement that
    leaves what the customer owes as it was (the same total and base amount: a description, a
    revenue account) is allowed. A new issue date books at that day's rate unless `exchange_rate`
    is given; otherwise the invoice keeps its rate."""
    if not lines:
        raise ValidationError({"lines": "An invoice needs at least one line."})
    _lock_customer(invoice.customer_id)
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    if invoice.status in (Invoice.Status.DRAFT, Invoice.Status.VOID):
        raise InvalidState(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; only an issued invoice is amended."
        )
    built = [
        _build_line(InvoiceLine, position, given, invoice=invoice) for position, given in enumerate(lines, start=1)
    ]
    for line in built:
        _check_fields(line)
    net, tax, gross = pricing.document_totals(built)
    if gross <= 0:
        raise InvalidState(f"Invoice {invoice} would be for nothing; void it instead.")
    new_issue_date = issue_date or invoice.issue_date
    if invoice.due_date < new_issue_date:
        raise ValidationError({"issue_date": f"Invoice {invoice} is due {invoice.due_date}, before {new_issue_date}."})
    touched = invoice.status != Invoice.Status.ISSUED or invoice.open_amount != invoice.gross_total
    was_gross, was_base = invoice.gross_total, invoice.base_gross
    if exchange_rate is not None or new_issue_date != invoice.issue_date:
        invoice.exchange_rate = _booking_rate(invoice.currency, new_issue_date, exchange_rate)
    invoice.issue_date = new_issue_date
    invoice.net_total, invoice.tax_total, invoice.gross_total = net, tax, gross
    _, receivable = posting.invoice_issued_entry(invoice, built)
    if touched and (gross, receivable) != (was_gross, was_base):
        raise InvalidState(
            f"Invoice {invoice} has payments, credits or a write-off applied ({invoice.get_status_display().lower()}); "
            f"its amount cannot change under them ({was_gross} → {gross} {invoice.currency}). "
            "Correct it with a credit note instead."
        )
    first_applied = _first_applied_on(invoice)
    if first_applied is not None and first_applied < new_issue_date:
        raise ValidationError(
            {"issue_date": f"Invoice {invoice} has credit or payments dated {first_applied}, before {new_issue_date}."}
        )
    # What was credited against it is applied to it (or it was settled first), so the rules above
    # hold this already; checked all the same, as issue_credit_note checks the other way round.
    credited = sum(invoice.credit_notes.values_list("gross_total", flat=True), ZERO)
    if credited > gross:
        raise AllocationExceedsBalance(f"Invoice {invoice} has {credited} credited on it, more than its new {gross}.")
    for old_line in invoice.lines.all():
        old_line._history_user = actor
        old_line.delete()
    for line in built:
        save_as(line, actor=actor)
    invoice.issue_entry, invoice.base_gross = posting.invoice_restated(
        invoice, built, previous_entry=invoice.issue_entry, actor=actor
    )
    invoice.open_amount += gross - was_gross
    invoice.open_base += invoice.base_gross - was_base
    _check_fields(invoice)
    save_as(invoice, actor=actor)
    _move_receivables(invoice.customer_id, open_by=gross - was_gross)
    return invoice


def _settle_status(invoice: Invoice) -> None:
    if invoice.open_amount == ZERO:
        invoice.status = Invoice.Status.PAID
    elif invoice.open_amount < invoice.gross_total:
        invoice.status = Invoice.Status.PARTIALLY_PAID
    else:
        invoice.status = Invoice.Status.ISSUED


# --- Applying credit to invoices --------------------------------------------------------------


def _portion(amount: Decimal, *, of_amount: Decimal, of_base: Decimal, rate: Decimal) -> Decimal:
    """The base-currency carrying value of `amount` out of an open `of_amount` carried at
    `of_base`: all of it when the whole is used, otherwise at the document's rate (never more)."""
    if amount == of_amount:
        return of_base
    return min(to_base(amount, rate), of_base)


def _first_open_day(day: date) -> date:
    """`day`, or the first day after the lock date if `day` is in a locked period."""
    lock = locked_through()
    return day if lock is None or day > lock else lock + timedelta(days=1)


def _apply(
    *, actor, credit, invoice: Invoice, amount: Decimal, allocated_on: date | None, allocation_class, field, **links
):
    """Apply `amount` of a payment's or credit note's unapplied credit to an invoice. The caller
    holds the customer lock and has locked `credit` and `invoice`."""
    amount = quantize(Decimal(amount))
    if invoice.customer_id != credit.customer_id:
        raise InvalidState(f"{credit} belongs to another customer than invoice {invoice}.")
    if invoice.currency != credit.currency:
        raise CurrencyMismatch(f"Invoice {invoice} is in {invoice.currency}; {credit} is in {credit.currency}.")
    if invoice.status not in Invoice.OPEN_STATUSES:
        raise InvalidState(f"Invoice {invoice} is {invoice.get_status_display().lower()}; nothing is open on it.")
    if amount <= 0:
        raise AllocationExceedsBalance(f"An allocation must be positive, not {amount}.")
    if amount > invoice.open_amount:
        raise AllocationExceedsBalance(
            f"{amount} {invoice.currency} is more than the {invoice.open_amount} still open on invoice {invoice}."
        )
    if amount > credit.unapplied_amount:
        raise AllocationExceedsBalance(
            f"{amount} {credit.currency} is more than the {credit.unapplied_amount} unapplied on {credit}."
        )
    credit_date = getattr(credit, "received_on", None) or credit.issue_date
    allocated_on = allocated_on or _first_open_day(max(invoice.issue_date, credit_date))
    if allocated_on < max(invoice.issue_date, credit_date):
        raise ValidationError({"allocated_on": "Credit cannot be applied before both documents exist."})
    # Even when it posts nothing (no FX difference), an allocation changes what the aging of its
    # day shows; a locked period's figures must not move.
    check_period_open(allocated_on)
    allocation = allocation_class(
        invoice=invoice,
        amount=amount,
        allocated_on=allocated_on,
        invoice_base=_portion(
            amount, of_amount=invoice.open_amount, of_base=invoice.open_base, rate=invoice.exchange_rate
        ),
        credit_base=_portion(
            amount, of_amount=credit.unapplied_amount, of_base=credit.unapplied_base, rate=credit.exchange_rate
        ),
        created_by=actor,
        **{field: credit},
        **links,
    )
    save_as(allocation, actor=actor)
    allocation.fx_entry = posting.allocation_settled(allocation, document=credit, actor=actor)
    if allocation.fx_entry is not None:
        save_as(allocation, actor=actor, update_fields=["fx_entry"])
    invoice.open_amount -= amount
    invoice.open_base -= allocation.invoice_base
    _settle_status(invoice)
    if invoice.open_amount == ZERO:
        invoice.settled_on = _invoice_settled_on(invoice)
    save_as(invoice, actor=actor)
    credit.unapplied_amount -= amount
    credit.unapplied_base -= allocation.credit_base
    if credit.unapplied_amount == ZERO:
        credit.used_up_on = _credit_used_up_on(credit)
    save_as(credit, actor=actor)
    _move_receivables(invoice.customer_id, open_by=-amount, unapplied_by=-amount)
    return allocation


@transaction.atomic
def allocate_payment(
    *, actor, payment: Payment, invoice: Invoice, amount: Decimal, allocated_on: date | None = None
) -> PaymentAllocation:
    """Apply part or all of a payment's unapplied amount to an open invoice of the same customer."""
    _lock_customer(payment.customer_id)
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if payment.status != Payment.Status.CLEARED:
        raise InvalidState(f"{payment} is {payment.get_status_display().lower()}; only cleared payments apply.")
    return _apply(
        actor=actor,
        credit=payment,
        invoice=invoice,
        amount=amount,
        allocated_on=allocated_on,
        allocation_class=PaymentAllocation,
        field="payment",
    )


def _oldest_due_first(customer_id: int, currency: str):
    return (
        Invoice.objects.select_for_update()
        .filter(customer_id=customer_id, currency=currency, status__in=Invoice.OPEN_STATUSES)
        .order_by("due_date", "issue_date", "id")
    )


@transaction.atomic
def auto_allocate(*, actor, payment: Payment) -> list[PaymentAllocation]:
    """Apply a payment to the customer's open invoices, oldest due date first, until it is used up."""
    _lock_customer(payment.customer_id)
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    if payment.status != Payment.Status.CLEARED:
        return []
    allocations = []
    for invoice in _oldest_due_first(payment.customer_id, payment.currency):
        if payment.unapplied_amount == ZERO:
            break
        if invoice.disputed:
            continue  # a disputed invoice is settled by a person's decision, not automatically
        amount = min(invoice.open_amount, payment.unapplied_amount)
        allocations.append(
            _apply(
                actor=actor,
                credit=payment,
                invoice=invoice,
                amount=amount,
                allocated_on=_first_open_day(max(invoice.issue_date, payment.received_on)),
                allocation_class=PaymentAllocation,
                field="payment",
            )
        )
    return allocations


# --- Payments ---------------------------------------------------------------------------------


def _same_payment(existing: Payment, **given) -> bool:
    return all(getattr(existing, name) == value for name, value in given.items())


@transaction.atomic
def record_payment(
    *,
    actor,
    customer: Customer,
    amount: Decimal,
    received_on: date,
    method: str,
    currency: str | None = None,
    reference: str = "",
    status: str = Payment.Status.CLEARED,
    idempotency_key: str | None = None,
    auto_apply: bool = True,
    exchange_rate: Decimal | None = None,
) -> Payment:
    """Record money received. A cleared payment is posted at once and, unless `auto_apply` is
    off, applied to the oldest open invoices; what is left is the customer's credit. It is booked
    at Concord's rate of its day, or at `exchange_rate` (the rate an accounting package booked).

    With an `idempotency_key`, a retry of the same request returns the first payment unchanged;
    the same key with different details is refused.
    """
    amount = quantize(Decimal(amount))
    currency = currency or customer.currency
    request = {
        "customer_id": customer.pk,
        "amount": amount,
        "currency": currency,
        "received_on": received_on,
        "method": method,
    }
    if idempotency_key:
        existing = Payment.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if not _same_payment(existing, **request):
                raise IdempotencyConflict(
                    f"Idempotency key {idempotency_key!r} was used for a different payment ({existing})."
                )
            return existing
    if amount <= 0:
        raise ValidationError({"amount": f"A payment must be positive, not {amount}."})
    if currency != customer.currency:
        raise CurrencyMismatch(f"{customer} pays in {customer.currency}, not {currency}.")
    if status not in (Payment.Status.CLEARED, Payment.Status.PENDING):
        raise ValidationError({"status": "A new payment is either cleared or pending."})
    _lock_customer(customer.pk)
    payment = Payment(
        customer=customer,
        amount=amount,
        currency=currency,
        received_on=received_on,
        method=method,
        reference=reference,
        status=Payment.Status.PENDING,
        idempotency_key=idempotency_key or None,
        created_by=actor,
    )
    _check_fields(payment, exclude=["idempotency_key"])
    try:
        with transaction.atomic():
            save_as(payment, actor=actor)
    except IntegrityError:
        # A concurrent retry with the same key won the race; answer as for a retry.
        existing = Payment.objects.get(idempotency_key=idempotency_key)
        if not _same_payment(existing, **request):
            raise IdempotencyConflict(
                f"Idempotency key {idempotency_key!r} was used for a different payment."
            ) from None
        return existing
    if status == Payment.Status.CLEARED:
        payment = clear_payment(actor=actor, payment=payment, exchange_rate=exchange_rate)
        if auto_apply:
            auto_allocate(actor=actor, payment=payment)
            payment.refresh_from_db()
    return payment


@transaction.atomic
def clear_payment(*, actor, payment: Payment, exchange_rate: Decimal | None = None) -> Payment:
    """A pending payment has arrived: post it (on its received date, at Concord's rate of the day or
    the `exchange_rate` given) and make it usable as credit."""
    _lock_customer(payment.customer_id)
    payment = Payment.objects.select_for_update().select_related("customer").get(pk=payment.pk)
    if payment.status != Payment.Status.PENDING:
        raise InvalidState(f"{payment} is {payment.get_status_display().lower()}, not pending.")
    payment.exchange_rate = _booking_rate(payment.currency, payment.received_on, exchange_rate)
    payment.base_amount = to_base(payment.amount, payment.exchange_rate)
    payment.status = Payment.Status.CLEARED
    payment.entry = posting.payment_received(payment, actor=actor)
    payment.unapplied_amount, payment.unapplied_base = payment.amount, payment.base_amount
    save_as(payment, actor=actor)
    _move_receivables(payment.customer_id, unapplied_by=payment.unapplied_amount)
    return payment


@transaction.atomic
def fail_payment(*, actor, payment: Payment, failed_on: date | None = None) -> Payment:
    """A pending payment that never arrived, or a cleared one that bounced before it was used."""
    _lock_customer(payment.customer_id)
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    failed_on = failed_on or _today()
    if payment.status == Payment.Status.CLEARED:
        if payment.unapplied_amount != payment.amount:
            raise InvalidState(
                f"{payment} has been applied or refunded; undo its allocations before marking it failed."
            )
        if failed_on < payment.received_on:
            raise ValidationError({"failed_on": "A payment cannot fail before it was received."})
        posting.payment_failed(payment, failed_on=failed_on, actor=actor)
        _move_receivables(payment.customer_id, unapplied_by=-payment.unapplied_amount)
        payment.unapplied_amount = payment.unapplied_base = ZERO
    elif payment.status != Payment.Status.PENDING:
        raise InvalidState(f"{payment} is {payment.get_status_display().lower()}; it cannot fail now.")
    payment.status, payment.failed_on = Payment.Status.FAILED, failed_on
    save_as(payment, actor=actor)
    return payment


# --- Credit notes and refunds -----------------------------------------------------------------


@transaction.atomic
def issue_credit_note(
    *,
    actor,
    customer: Customer,
    lines: list[LineInput],
    reason: str,
    invoice: Invoice | None = None,
    issue_date: date | None = None,
    number: str | None = None,
    series: str = EXTERNAL_SERIES,
    exchange_rate: Decimal | None = None,
) -> CreditNote:
    """Credit a customer. Against an invoice it is booked at the invoice's rate and applied to
    what is open on it; anything beyond (or a standalone note) is the customer's credit.

    A credit note first issued in an accounting package keeps its `number`, filed in `series`,
    and (standalone) its `exchange_rate`, as `issue_invoice` does for invoices."""
    if not lines:
        raise ValidationError({"lines": "A credit note needs at least one line."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the customer is credited."})
    _lock_customer(customer.pk)
    issue_date = issue_date or _today()
    if invoice is not None:
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.customer_id != customer.pk:
            raise InvalidState(f"Invoice {invoice} belongs to another customer.")
        if invoice.status in (Invoice.Status.DRAFT, Invoice.Status.VOID):
            raise InvalidState(f"Invoice {invoice} is {invoice.get_status_display().lower()}; it cannot be credited.")
        if issue_date < invoice.issue_date:
            raise ValidationError({"issue_date": "A credit note cannot predate the invoice it credits."})
        if exchange_rate is not None and Decimal(exchange_rate) != invoice.exchange_rate:
            raise ValidationError(
                {"exchange_rate": f"A credit note against {invoice} is booked at the invoice's rate, not another."}
            )
    credit_note = CreditNote(
        customer=customer,
        invoice=invoice,
        # Against an invoice, in the invoice's currency and at its rate, so that it reverses it
        # exactly (even if the customer has since moved to another currency).
        currency=invoice.currency if invoice else customer.currency,
        issue_date=issue_date,
        exchange_rate=invoice.exchange_rate if invoice else _booking_rate(customer.currency, issue_date, exchange_rate),
        reason=reason.strip(),
        created_by=actor,
    )
    built = [_build_line(CreditNoteLine, position, given) for position, given in enumerate(lines, start=1)]
    credit_note.net_total, credit_note.tax_total, credit_note.gross_total = pricing.document_totals(built)
    if invoice is not None:
        credited = sum(invoice.credit_notes.values_list("gross_total", flat=True), ZERO)
        if credited + credit_note.gross_total > invoice.gross_total:
            already = f" ({credited} has been credited on it already)" if credited else ""
            raise AllocationExceedsBalance(
                f"A credit of {credit_note.gross_total} is more than is left to credit on invoice {invoice}: "
                f"its total is {invoice.gross_total}{already}."
            )
    if number is None:
        credit_note.number = _draw_number(credit_note.series, actor=actor)
    else:
        credit_note.series, credit_note.number = series, _take_number(CreditNote, series=series, number=number)
    _check_fields(credit_note)
    save_as(credit_note, actor=actor)
    for line in built:
        line.credit_note = credit_note
        save_as(line, actor=actor)
    credit_note.entry, credit_note.base_gross = posting.credit_note_issued(credit_note, built, actor=actor)
    credit_note.unapplied_amount, credit_note.unapplied_base = credit_note.gross_total, credit_note.base_gross
    save_as(credit_note, actor=actor)
    _move_receivables(customer.pk, unapplied_by=credit_note.unapplied_amount)
    if invoice is not None and invoice.status in Invoice.OPEN_STATUSES:
        _apply(
            actor=actor,
            credit=credit_note,
            invoice=invoice,
            amount=min(invoice.open_amount, credit_note.unapplied_amount),
            allocated_on=issue_date,
            allocation_class=CreditNoteAllocation,
            field="credit_note",
        )
    return credit_note


@transaction.atomic
def allocate_credit_note(
    *,
    actor,
    credit_note: CreditNote,
    invoice: Invoice,
    amount: Decimal,
    allocated_on: date | None = None,
    applied_with: Payment | None = None,
) -> CreditNoteAllocation:
    """Apply a credit note's unapplied credit to an open invoice of the same customer;
    `applied_with` names the payment an accounting package applied it through."""
    _lock_customer(credit_note.customer_id)
    credit_note = CreditNote.objects.select_for_update().get(pk=credit_note.pk)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if applied_with is not None and applied_with.customer_id != credit_note.customer_id:
        raise InvalidState(f"{applied_with} belongs to another customer than {credit_note}.")
    return _apply(
        actor=actor,
        credit=credit_note,
        invoice=invoice,
        amount=amount,
        allocated_on=allocated_on,
        allocation_class=CreditNoteAllocation,
        field="credit_note",
        applied_with=applied_with,
    )


@transaction.atomic
def refund_credit(
    *,
    actor,
    amount: Decimal,
    refunded_on: date,
    method: str,
    payment: Payment | None = None,
    credit_note: CreditNote | None = None,
    reference: str = "",
    idempotency_key: str | None = None,
    exchange_rate: Decimal | None = None,
) -> Refund:
    """Pay back part or all of the unapplied credit of one payment or credit note, at Concord's
    rate of the refund's day or the `exchange_rate` given (the rate an accounting package booked)."""
    if (payment is None) == (credit_note is None):
        raise ValidationError("A refund comes out of exactly one payment or one credit note.")
    credit = payment or credit_note
    # The customer lock first: a concurrent retry with the same key then waits for the first
    # attempt and finds its refund, instead of colliding with it on the unique key.
    _lock_customer(credit.customer_id)
    if idempotency_key:
        existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            same = (existing.payment_id, existing.credit_note_id, existing.amount) == (
                getattr(payment, "pk", None),
                getattr(credit_note, "pk", None),
                quantize(Decimal(amount)),
            )
            if not same:
                raise IdempotencyConflict(f"Idempotency key {idempotency_key!r} was used for a different refund.")
            return existing
    credit = type(credit).objects.select_for_update().select_related("customer").get(pk=credit.pk)
    amount = quantize(Decimal(amount))
    if isinstance(credit, Payment) and credit.status != Payment.Status.CLEARED:
        raise InvalidState(f"{credit} is {credit.get_status_display().lower()}; only cleared payments refund.")
    if amount <= 0:
        raise ValidationError({"amount": f"A refund must be positive, not {amount}."})
    if amount > credit.unapplied_amount:
        raise AllocationExceedsBalance(
            f"{amount} {credit.currency} is more than the {credit.unapplied_amount} of unapplied credit on {credit}."
        )
    credit_date = getattr(credit, "received_on", None) or credit.issue_date
    if refunded_on < credit_date:
        raise ValidationError({"refunded_on": "A refund cannot predate the credit it pays back."})
    rate = _booking_rate(credit.currency, refunded_on, exchange_rate)
    refund = Refund(
        customer=credit.customer,
        payment=credit if isinstance(credit, Payment) else None,
        credit_note=credit if isinstance(credit, CreditNote) else None,
        amount=amount,
        currency=credit.currency,
        refunded_on=refunded_on,
        method=method,
        reference=reference,
        exchange_rate=rate,
        carrying_base=_portion(
            amount, of_amount=credit.unapplied_amount, of_base=credit.unapplied_base, rate=credit.exchange_rate
        ),
        bank_base=to_base(amount, rate),
        idempotency_key=idempotency_key or None,
        created_by=actor,
    )
    save_as(refund, actor=actor)
    refund.entry = posting.refund_paid(refund, actor=actor)
    save_as(refund, actor=actor, update_fields=["entry"])
    credit.unapplied_amount -= amount
    credit.unapplied_base -= refund.carrying_base
    if credit.unapplied_amount == ZERO:
        credit.used_up_on = _credit_used_up_on(credit)
    if isinstance(credit, Payment) and credit.unapplied_amount == ZERO and not credit.allocations.exists():
        credit.status = Payment.Status.REFUNDED
    save_as(credit, actor=actor)
    _move_receivables(credit.customer_id, unapplied_by=-amount)
    return refund


# --- Write-offs -------------------------------------------------------------------------------


@transaction.atomic
def request_write_off(*, actor, invoice: Invoice, reason: str) -> WriteOff:
    """Ask for an invoice's open balance to be written off as bad debt; a Finance Admin decides.

    A person needs billing.request_writeoff (AR, Finance Admin); an unattended actor (a command or
    a task, which cannot sign in) asks on the code's own authority. Approval is checked again."""
    if not (actor.has_perm("billing.request_writeoff") or is_system_actor(actor)):
        raise NotPermitted("Only accounts receivable or a Finance Admin may ask for a write-off.")
    # The customer first, as every money operation does: concurrent requests for one invoice queue
    # up, and the second finds the first awaiting approval.
    _lock_customer(invoice.customer_id)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status not in Invoice.OPEN_STATUSES:
        raise InvalidState(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; nothing is open to write off."
        )
    if not reason.strip():
        raise ValidationError({"reason": "Say why the debt is bad."})
    if invoice.write_offs.filter(status=WriteOff.Status.REQUESTED).exists():
        raise InvalidState(f"A write-off of invoice {invoice} is already awaiting approval.")
    write_off = WriteOff(invoice=invoice, reason=reason.strip(), requested_by=actor)
    save_as(write_off, actor=actor)
    return write_off


@transaction.atomic
def approve_write_off(*, actor, write_off: WriteOff, written_off_on: date | None = None) -> WriteOff:
    """A Finance Admin (not the requester) approves: the open balance is posted to bad debt."""
    if not actor.has_perm("billing.approve_writeoff"):
        raise NotPermitted("Only a Finance Admin may approve a write-off.")
    # The customer's row first, as every money operation locks it: locking the write-off first
    # and the customer second could deadlock against a payment on the same customer.
    _lock_customer(WriteOff.objects.values_list("invoice__customer_id", flat=True).get(pk=write_off.pk))
    write_off = WriteOff.objects.select_for_update().get(pk=write_off.pk)
    if write_off.requested_by_id == actor.pk:
        raise NotPermitted("A write-off must be approved by someone other than the person who asked for it.")
    if write_off.status != WriteOff.Status.REQUESTED:
        raise InvalidState(f"This write-off is {write_off.get_status_display().lower()} already.")
    invoice = Invoice.objects.select_for_update().get(pk=write_off.invoice_id)
    if invoice.status not in Invoice.OPEN_STATUSES:
        raise InvalidState(
            f"Invoice {invoice} is {invoice.get_status_display().lower()}; nothing is left to write off."
        )
    write_off.invoice = invoice
    write_off.written_off_on = written_off_on or _today()
    if write_off.written_off_on < invoice.issue_date:
        raise ValidationError({"written_off_on": "An invoice cannot be written off before it was issued."})
    write_off.amount, write_off.base_amount = invoice.open_amount, invoice.open_base
    write_off.entry = posting.invoice_written_off(write_off, actor=actor)
    write_off.status, write_off.decided_by, write_off.decided_at = WriteOff.Status.APPROVED, actor, timezone.now()
    save_as(write_off, actor=actor)
    _move_receivables(invoice.customer_id, open_by=-invoice.open_amount)
    invoice.open_amount = invoice.open_base = ZERO
    invoice.status = Invoice.Status.WRITTEN_OFF
    invoice.settled_on = _invoice_settled_on(invoice, write_off.written_off_on)
    save_as(invoice, actor=actor)
    return write_off


@transaction.atomic
def reject_write_off(*, actor, write_off: WriteOff) -> WriteOff:
    if not actor.has_perm("billing.approve_writeoff"):
        raise NotPermitted("Only a Finance Admin may decide on a write-off.")
    write_off = WriteOff.objects.select_for_update().get(pk=write_off.pk)
    if write_off.status != WriteOff.Status.REQUESTED:
        raise InvalidState(f"This write-off is {write_off.get_status_display().lower()} already.")
    write_off.status, write_off.decided_by, write_off.decided_at = WriteOff.Status.REJECTED, actor, timezone.now()
    save_as(write_off, actor=actor)
    return write_off


# --- Recurring invoices -----------------------------------------------------------------------


def next_period(start: date, interval: str, *, day_of_month: int | None = None) -> date:
    """The period after `start`. Months keep `day_of_month` (default: start's day), moved back
    to the month's last day where the month is shorter: 31 Jan → 28 Feb → 31 Mar."""
    if interval == RecurringInvoice.Interval.WEEK:
        return start + timedelta(weeks=1)
    months = {"month": 1, "quarter": 3, "year": 12}[interval]
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day_of_month or start.day, calendar.monthrange(year, month)[1]))


def _billing_day(template: RecurringInvoice, period: date) -> int:
    """The day of the month a template bills on. A period on a month's last day may have been
    moved back from a later day (28 Feb for the 31st): the template's first period tells."""
    if period.day < calendar.monthrange(period.year, period.month)[1]:
        return period.day
    first = template.invoices.order_by("period_start").values_list("period_start", flat=True).first()
    return max(period.day, first.day) if first else period.day


def generate_recurring_invoices(*, actor, as_of: date | None = None, job_id: int | None = None) -> int:
    """Issue every period that has come due, for every active template; returns how many.

    Exactly one invoice per template and period: the template row is locked while a period is
    billed, and the database refuses a second invoice for the same template and period — so a
    second run, concurrent or late, bills only what the first did not. With `job_id`, the job
    shows how many templates are done (each period is its own transaction, so progress shows).
    """
    as_of = as_of or _today()
    issued = 0
    due = list(RecurringInvoice.objects.filter(is_active=True, next_date__lte=as_of).values_list("pk", flat=True))
    if job_id is not None:
        jobs.advance(job_id=job_id, done=0, total=len(due), message="Issuing recurring invoices…")
    for done, template_id in enumerate(due, start=1):
        while _bill_next_period(actor=actor, template_id=template_id, as_of=as_of):
            issued += 1
        if job_id is not None:
            jobs.advance(
                job_id=job_id, done=done, message=f"{issued} invoice{'s' if issued != 1 else ''} issued so far"
            )
    return issued


@transaction.atomic
def _bill_next_period(*, actor, template_id: int, as_of: date) -> bool:
    template = RecurringInvoice.objects.select_for_update().select_related("customer").get(pk=template_id)
    period = template.next_date
    if not template.is_active or period > as_of or (template.end_date and period > template.end_date):
        return False
    if not Invoice.objects.filter(recurring_template=template, period_start=period).exists():
        invoice = create_invoice(
            actor=actor,
            customer=template.customer,
            lines=[
                LineInput(
                    description=line.description,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                    product=line.product,
                    discount_type=line.discount_type,
                    discount_value=line.discount_value,
                    tax_rate=line.tax_rate,
                    revenue_account=line.revenue_account,
                )
                for line in template.lines.all()
            ],
            memo=template.memo,
            source=Source.RECURRING,
            recurring_template=template,
            period_start=period,
        )
        issue_invoice(actor=actor, invoice=invoice, issue_date=period)
    template.next_date = next_period(period, template.interval, day_of_month=_billing_day(template, period))
    save_as(template, actor=actor, update_fields=["next_date"])
    return True


# --- Draft invoices ---------------------------------------------------------------------------


def _lock_draft(invoice: Invoice) -> Invoice:
    """Lock the customer, then the invoice, and refuse anything but a draft."""
    _lock_customer(invoice.customer_id)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.DRAFT:
        raise ValidationError(
            {
                "status": f"Invoice {invoice} is {invoice.get_status_display().lower()}; only a draft can be "
                "changed. An issued invoice is corrected with a credit note."
            }
        )
    return invoice


@transaction.atomic
def update_draft_invoice(
    *, actor, invoice: Invoice, lines: list[LineInput], due_date: date | None = None, memo: str = ""
) -> Invoice:
    """Replace a draft invoice's lines, due date and memo, repriced by the rounding rule. Only a
    draft changes: an issued invoice is in the ledger and is corrected by a credit note."""
    if not lines:
        raise ValidationError({"lines": "An invoice needs at least one line."})
    invoice = _lock_draft(invoice)
    built = [_build_line(InvoiceLine, position, given) for position, given in enumerate(lines, start=1)]
    invoice.due_date, invoice.memo = due_date, memo
    invoice.net_total, invoice.tax_total, invoice.gross_total = pricing.document_totals(built)
    _check_fields(invoice, exclude=["number"])
    for line in built:
        _check_fields(line)
    for old_line in invoice.lines.all():
        old_line._history_user = actor
        old_line.delete()
    save_as(invoice, actor=actor)
    for line in built:
        line.invoice = invoice
        save_as(line, actor=actor)
    return invoice


@transaction.atomic
def delete_draft_invoice(*, actor, invoice: Invoice) -> None:
    """Discard a draft invoice and its lines (the history keeps them). A draft has no number and
    no ledger entry yet, so nothing else refers to it; an issued invoice is voided instead."""
    invoice = _lock_draft(invoice)
    for line in invoice.lines.all():
        line._history_user = actor
        line.delete()
    invoice._history_user = actor
    invoice.delete()


# --- Batches ------------------------------------------------------------------------------------
#
# The one-at-a-time services above, for many documents in one transaction and a number of
# statements that does not grow with the batch: the same checks, in the same order (every
# document is checked before the first write, so one bad document refuses the whole batch), the
# same numbers, journal entries, balances, settlement days and history rows. A batch locks its
# customers in one statement in primary-key order, then its documents, so batches and single
# operations queue up behind each other without deadlock.

# Stored receivables of at most this many customers are moved per statement (a CASE per customer).
RECEIVABLES_PER_STATEMENT = 500


@dataclass(frozen=True)
class InvoiceDraft:
    """One invoice of a `create_invoices` batch, as `create_invoice` takes it (in the customer's
    currency, entered in Concord)."""

    customer: Customer
    lines: list[LineInput]
    due_date: date | None = None
    memo: str = ""


@dataclass(frozen=True)
class PaymentDraft:
    """One cleared payment of a `record_payments` batch, as `record_payment` takes it."""

    customer: Customer
    amount: Decimal
    received_on: date
    method: str
    currency: str | None = None  # the customer's when left out
    reference: str = ""
    idempotency_key: str | None = None


# What the batches read of the customers they lock; any other field loads when first read.
LOCKED_CUSTOMER_FIELDS = ("id", "display_name", "currency", "payment_terms_days")


def _lock_customers(customer_ids) -> dict[int, Customer]:
    """Lock many customers in one statement, in primary-key order, as `_lock_customer` does one.
    Only what a batch reads of them is loaded (their names go into the entries' memos): a
    customer row is wide, and reading 500 in full took three times as long."""
    wanted = sorted(set(customer_ids))
    locked = {
        customer.pk: customer
        for customer in Customer.objects.select_for_update()
        .filter(pk__in=wanted)
        .only(*LOCKED_CUSTOMER_FIELDS)
        .order_by("pk")
    }
    if len(locked) != len(wanted):
        missing = sorted(set(wanted) - set(locked))
        raise Customer.DoesNotExist(f"No customer has the id {missing[0]}.")
    return locked


def _move_receivables_of(moves: dict[int, list[Decimal]]) -> None:
    """`_move_receivables` for many customers at once: {customer id: [open_by, unapplied_by]}."""
    moved = sorted(
        (pk, open_by, unapplied_by) for pk, (open_by, unapplied_by) in moves.items() if open_by or unapplied_by
    )
    if connection.vendor == "postgresql" and moved:
        with connection.cursor() as cursor:
            cursor.execute(
                # Only a placeholder and the model's own table name are put into the text.
                f"UPDATE {connection.ops.quote_name(Customer._meta.db_table)} AS c "  # noqa: S608
                "SET ar_open = c.ar_open + v.open_by, "
                "ar_unapplied = c.ar_unapplied + v.unapplied_by, "
                "ar_balance = c.ar_balance + v.open_by - v.unapplied_by "
                # One JSON parameter rather than three placeholders per customer, which psycopg
                # would splice into the text one by one.
                "FROM (SELECT (r->>0)::bigint, (r->>1)::numeric, (r->>2)::numeric "
                "FROM jsonb_array_elements(%s::jsonb) AS r) AS v(id, open_by, unapplied_by) WHERE c.id = v.id",
                [json.dumps([[pk, str(open_by), str(unapplied_by)] for pk, open_by, unapplied_by in moved])],
            )
        return
    money = DecimalField(max_digits=18, decimal_places=2)
    for start in range(0, len(moved), RECEIVABLES_PER_STATEMENT):
        chunk = moved[start : start + RECEIVABLES_PER_STATEMENT]

        def each(amount_of, chunk=chunk):
            return Case(
                *(When(pk=pk, then=Value(amount_of(open_by, unapplied_by))) for pk, open_by, unapplied_by in chunk),
                output_field=money,
            )

        Customer.objects.filter(pk__in=[pk for pk, _, _ in chunk]).update(
            ar_open=F("ar_open") + each(lambda open_by, unapplied_by: open_by),
            ar_unapplied=F("ar_unapplied") + each(lambda open_by, unapplied_by: unapplied_by),
            ar_balance=F("ar_balance") + each(lambda open_by, unapplied_by: open_by - unapplied_by),
        )


class _BatchFieldChecks:
    """`_check_fields` for the documents of one batch, which share most of their values (one
    currency, the same tax and amounts on many lines): `Model.clean_fields` as it runs, except
    that each field's `clean` (conversion, choices, validators: functions of the value alone for
    the fields checked, relations being left out) runs once per distinct value, its outcome
    reused. Values are told apart by type and text, so that 1.0 and 1.000 (one and three decimal
    places) are each checked. A Decimal in a decimal field checked only for its digits (no
    choices, no validator but Django's DecimalValidator) is told apart by its shape alone — how
    many digits, and where the point is, which is all that conversion and that validator look
    at — and keeps its own value, so that a batch's computed amounts (every line's net, tax and
    gross differ) are not each checked again. Django's per-field checks were a fifth of a
    batch's Python time."""

    def __init__(self):
        # Per model (and fields left out): each field checked, with its outcomes by value.
        self._fields: dict[tuple, list[tuple[Field, bool, dict]]] = {}

    def check(self, instance, *, exclude=()) -> None:
        """Check a model instance's fields, leaving each as `clean` converts it."""
        # A new instance keeps every field's value in its __dict__, by attname.
        self.check_values(type(instance), vars(instance), exclude=exclude)

    def check_values(self, model, values: dict, *, exclude=()) -> None:
        """Check a row of `model` given as {attname: value} (a field left out has its default),
        leaving each value as `clean` converts it."""
        key = (model, tuple(exclude))
        if key not in self._fields:
            self._fields[key] = [
                (field, _checked_by_digits(field), {})
                for field in model._meta.fields
                if not (field.is_relation or field.name in exclude or field.generated)
            ]
        errors = {}
        for field, by_digits, outcomes in self._fields[key]:
            attname = field.attname
            raw = values[attname] if attname in values else field.get_default()
            kind = type(raw)
            if kind not in NEVER_EMPTY and (
                (field.blank and raw in field.empty_values) or isinstance(raw, DatabaseDefault)
            ):
                continue
            by_shape = by_digits and kind is Decimal
            if by_shape:
                _, digits, exponent = raw.as_tuple()
                seen = (len(digits), exponent, digits == (0,))
            else:
                seen = (kind, str(raw))
            if seen not in outcomes:
                try:
                    outcomes[seen] = (True, field.clean(raw, None))
                except ValidationError as error:
                    outcomes[seen] = (False, error.error_list)
            valid, outcome = outcomes[seen]
            if not valid:
                errors[field.name] = outcome
            elif not by_shape:
                values[attname] = outcome
        if errors:
            raise ValidationError(errors)


# Types no value of which is one of a field's empty values (None, "", [], (), {}).
NEVER_EMPTY = frozenset({Decimal, int, bool, date, datetime})


def _checked_by_digits(field: Field) -> bool:
    """Whether `field.clean` of a Decimal depends on its digits and exponent alone."""
    return (
        isinstance(field, DecimalField)
        and not field.choices
        and all(isinstance(validator, DecimalValidator) for validator in field.validators)
    )


def _receivable_moves() -> defaultdict[int, list[Decimal]]:
    return defaultdict(lambda: [ZERO, ZERO])


def _update_with_states(model, rows: list, fields: list[str], states: list, *, actor) -> None:
    """Write `rows` as they are now, and one history row per state in `states` (copies taken as
    the rows changed, in order; each row's last state is the row as written): a single service
    saves a document once per change, so its history has a row per change, which a batch keeps."""
    bulk.update(model, rows, fields, actor=actor, states=states)


@bulk.without_cyclic_gc
@transaction.atomic
def create_invoices(*, actor, drafts: Sequence[InvoiceDraft]) -> list[Invoice]:
    """`create_invoice` for many drafts in one transaction: each is priced and checked, in order,
    before anything is written, so one bad draft refuses them all."""
    invoices, lines = _priced_drafts(drafts, actor=actor, accounts=accounts_by_role())
    if not invoices:
        return []
    bulk.insert(Invoice, invoices, actor=actor)
    _insert_lines(invoices, lines, actor=actor)
    return invoices


def _priced_drafts(
    drafts: Sequence[InvoiceDraft], *, actor, accounts
) -> tuple[list[Invoice], list[list[SimpleNamespace]]]:
    """The invoices of a batch's drafts, unsaved, and the lines of each (`_line_fields`), priced
    and checked in order as `create_invoice` prices and checks one: the first bad draft raises."""
    products = list(
        {id(line.product): line.product for draft in drafts for line in draft.lines if line.product}.values()
    )
    prefetch_related_objects(products, "tax_rate", "revenue_account")
    checks = _BatchFieldChecks()
    invoices: list[Invoice] = []
    lines: list[list[SimpleNamespace]] = []
    for draft in drafts:
        if not draft.lines:
            raise ValidationError({"lines": "An invoice needs at least one line."})
        invoice = Invoice(
            customer=draft.customer,
            currency=draft.customer.currency,
            due_date=draft.due_date,
            memo=draft.memo,
            source=Source.MANUAL,
            created_by=actor,
        )
        built = [
            _line_fields(position, given, accounts=accounts) for position, given in enumerate(draft.lines, start=1)
        ]
        invoice.net_total, invoice.tax_total, invoice.gross_total = pricing.document_totals(built)
        checks.check(invoice, exclude=["number"])
        for line in built:
            checks.check_values(InvoiceLine, vars(line))
        invoices.append(invoice)
        lines.append(built)
    return invoices, lines


def _insert_lines(invoices: list[Invoice], lines: list[list[SimpleNamespace]], *, actor) -> None:
    """Insert the lines of saved invoices (`lines[n]` those of `invoices[n]`) with their history."""
    # The lines as plain values, not an instance each: the batch returns only its invoices.
    bulk.insert_values(
        InvoiceLine,
        INVOICE_LINE_FIELDS,
        [
            [
                invoice.pk,
                line.position,
                _pk(line.product),
                line.description,
                line.quantity,
                line.unit_price,
                line.discount_type,
                line.discount_value,
                _pk(line.tax_rate),
                line.revenue_account.pk,
                line.subtotal,
                line.discount,
                line.discount_net,
                line.net,
                line.tax,
                line.gross,
                line.unit_cost,
            ]
            for invoice, built in zip(invoices, lines, strict=True)
            for line in built
        ],
        actor=actor,
    )


# What create_invoices writes of each line, in order (InvoiceLine attnames).
INVOICE_LINE_FIELDS = (
    "invoice_id",
    "position",
    "product_id",
    "description",
    "quantity",
    "unit_price",
    "discount_type",
    "discount_value",
    "tax_rate_id",
    "revenue_account_id",
    "subtotal",
    "discount",
    "discount_net",
    "net",
    "tax",
    "gross",
    "unit_cost",
)


def _pk(row):
    return row.pk if row is not None else None


@bulk.without_cyclic_gc
@transaction.atomic
def issue_invoices(*, actor, invoices: Sequence[Invoice], issue_date: date | None = None) -> list[Invoice]:
    """`issue_invoice` for many drafts in one transaction: each is checked, in order, before
    anything is written; numbers are drawn per series in the order given, under one lock of the
    series row and in one update of it, and the entries are posted together."""
    if not invoices:
        return []
    customers = _lock_customers(invoice.customer_id for invoice in invoices)
    locked = {
        invoice.pk: invoice
        for invoice in Invoice.objects.select_for_update()
        .filter(pk__in=[invoice.pk for invoice in invoices])
        .order_by("pk")
    }
    for invoice in locked.values():
        if invoice.customer_id in customers:  # the rows just locked, rather than each read again in a join
            invoice.customer = customers[invoice.customer_id]
    lines_of = _lines_to_post(list(locked))

    def drafts_locked():
        for given in invoices:
            invoice = locked.get(given.pk)
            if invoice is None:
                raise Invoice.DoesNotExist(f"Invoice {given.pk} does not exist.")
            yield invoice

    issued = _fix_batch_issue_terms(drafts_locked(), issue_date=issue_date)
    _number_in_order(issued, actor=actor)
    now = timezone.now()
    moves = _post_issued(issued, [lines_of[invoice.pk] for invoice in issued], actor=actor, accounts=accounts_by_role())
    for invoice in issued:
        invoice.updated_at = now
    _update_with_states(
        Invoice,
        issued,
        [
            "status",
            "number",
            "issue_date",
            "due_date",
            "exchange_rate",
            "issue_entry",
            "base_gross",
            "open_amount",
            "open_base",
            "updated_at",
        ],
        issued,  # one change each: the history row is each invoice as written
        actor=actor,
    )
    _move_receivables_of(moves)
    return issued


def _fix_batch_issue_terms(invoices: Iterable[Invoice], *, issue_date: date | None) -> list[Invoice]:
    """`_fix_issue_terms` for each draft of a batch, in order, with the rates and the period's
    lock read once; each is marked issued as it passes, so that the same draft given twice is
    refused as issuing it twice is."""
    rate = cache(rate_on)  # per (currency, day), for this batch
    check_open = period_check()
    issued: list[Invoice] = []
    for invoice in invoices:
        _fix_issue_terms(invoice, issue_date=issue_date, rate=rate)
        check_open(invoice.issue_date)  # the single service's post_entry refuses it here
        invoice.status = Invoice.Status.ISSUED
        issued.append(invoice)
    return issued


def _number_in_order(invoices: list[Invoice], *, actor) -> None:
    """Draw the invoices' numbers per series, in the order given, under one lock of each series."""
    by_series: defaultdict[str, list[Invoice]] = defaultdict(list)
    for invoice in invoices:
        by_series[invoice.series].append(invoice)
    for series in sorted(by_series):  # several series are locked in one order
        numbered = by_series[series]
        for invoice, number in zip(numbered, _draw_numbers(series, len(numbered), actor=actor), strict=True):
            invoice.number = number


def _post_issued(invoices: list[Invoice], lines: list, *, actor, accounts) -> defaultdict[int, list[Decimal]]:
    """Post the issue entries of numbered, dated invoices (`lines[n]`: the lines of `invoices[n]`
    as the posting rule reads them) together, and set on each what issuing sets from its entry:
    the entry, the amount in the base currency, the open amounts. Returns the receivables moved."""
    pending = []
    for invoice, posted in zip(invoices, lines, strict=True):
        entry, invoice.base_gross = posting.invoice_issued_entry(invoice, posted, accounts=accounts)
        pending.append(entry)
    moves = _receivable_moves()
    for invoice, entry in zip(invoices, post_entries(entries=pending, actor=actor), strict=True):
        invoice.issue_entry = entry
        invoice.open_amount, invoice.open_base = invoice.gross_total, invoice.base_gross
        moves[invoice.customer_id][0] += invoice.open_amount
    return moves


@bulk.without_cyclic_gc
@transaction.atomic
def create_issued_invoices(*, actor, drafts: Sequence[InvoiceDraft], issue_date: date | None = None) -> list[Invoice]:
    """`create_invoices` then `issue_invoices`, in one pass and one transaction: every draft is
    priced and checked, and its terms, period and exchange rate checked, in order, before the first
    write, so one bad draft refuses them all; numbers are drawn per series in the order given, the
    entries posted by the same rule and the customers' balances moved. The rows are the ones the
    two would leave, but each invoice is written once, issued, with one history row ("+") rather
    than a draft's and then an issue's, and its entry is drawn up from the lines in hand rather
    than from the lines read back."""
    accounts = accounts_by_role()
    invoices, lines = _priced_drafts(drafts, actor=actor, accounts=accounts)
    if not invoices:
        return []
    customers = _lock_customers(invoice.customer_id for invoice in invoices)
    for invoice in invoices:
        invoice.customer = customers[invoice.customer_id]  # as issue_invoices reads them: locked
    _fix_batch_issue_terms(invoices, issue_date=issue_date)
    _number_in_order(invoices, actor=actor)
    # The entries name their invoices, and each invoice its entry: the invoices' keys are taken
    # first (after the numbers, the first write: see _reserve_keys), the entries posted with them,
    # and the invoices written after, already pointing to their entries.
    for invoice, pk in zip(invoices, _reserve_keys(Invoice, len(invoices)), strict=True):
        invoice.pk = pk
    tax_rates = {id(line.tax_rate): line.tax_rate for built in lines for line in built if line.tax_rate}
    prefetch_related_objects(list(tax_rates.values()), "liability_account")  # what the tax lines post to
    moves = _post_issued(invoices, lines, actor=actor, accounts=accounts)
    bulk.insert(Invoice, invoices, actor=actor)
    _insert_lines(invoices, lines, actor=actor)
    _move_receivables_of(moves)
    return invoices


def _reserve_keys(model, count: int) -> list[int]:
    """`count` new primary keys of `model`, in increasing order, taken from the table's own
    sequence so that no other insert is handed them. Called inside the transaction after its
    first write: on SQLite, where that write takes the one writer's lock, nobody else can insert
    before this transaction commits, and an explicit key above the table's counter moves it on."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [connection.ops.quote_name(table), model._meta.pk.column, count],
            )
            return sorted(row[0] for row in cursor.fetchall())
        if connection.vendor == "sqlite":
            # AUTOINCREMENT keeps the highest key ever handed out in sqlite_sequence (none before
            # the first insert); only the model's quoted table and column names go into the text.
            key, quoted = connection.ops.quote_name(model._meta.pk.column), connection.ops.quote_name(table)
            cursor.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "  # noqa: S608
                f"COALESCE((SELECT MAX({key}) FROM {quoted}), 0))",
                [table],
            )
            last = cursor.fetchone()[0]
            return list(range(last + 1, last + 1 + count))
    raise NotImplementedError(f"Keys cannot be reserved on {connection.vendor}.")


@dataclass(frozen=True, slots=True)
class _LineToPost:
    """What the invoice posting rule reads of a line (ledger.posting.invoice_issued_entry)."""

    net: Decimal
    discount_net: Decimal
    tax: Decimal
    quantity: Decimal
    unit_cost: Decimal | None
    revenue_account: Account
    tax_rate: TaxRate | None


def _lines_to_post(invoice_ids: list[int]) -> defaultdict[int, list[_LineToPost]]:
    """The lines of each invoice, in order, as the posting rule reads them: plain values, and one
    instance of each of the few tax rates and accounts a batch's lines share (not one per line)."""
    rows = list(
        InvoiceLine.objects.filter(invoice_id__in=invoice_ids)
        .order_by("position", "id")
        .values_list(
            "invoice_id", "net", "discount_net", "tax", "quantity", "unit_cost", "revenue_account_id", "tax_rate_id"
        )
    )
    accounts = Account.objects.in_bulk({row[6] for row in rows})
    tax_rates = TaxRate.objects.select_related("liability_account").in_bulk({row[7] for row in rows} - {None})
    lines_of: defaultdict[int, list[_LineToPost]] = defaultdict(list)
    for invoice_id, net, discount_net, tax, quantity, unit_cost, account_id, tax_rate_id in rows:
        lines_of[invoice_id].append(
            _LineToPost(net, discount_net, tax, quantity, unit_cost, accounts[account_id], tax_rates.get(tax_rate_id))
        )
    return lines_of


def _last_allocation_days(invoice_ids: list[int]) -> dict[int, date]:
    """The latest allocation day (payments and credit notes) of each invoice that has one."""
    days: dict[int, date] = {}
    for allocation_class in (PaymentAllocation, CreditNoteAllocation):
        for invoice_id, day in (
            allocation_class.objects.filter(invoice_id__in=invoice_ids)
            .order_by()
            .values("invoice_id")
            .annotate(day=Max("allocated_on"))
            .values_list("invoice_id", "day")
        ):
            days[invoice_id] = _latest_day(days.get(invoice_id), day)
    return days


@bulk.without_cyclic_gc
@transaction.atomic
def record_payments(*, actor, payments: Sequence[PaymentDraft], auto_apply: bool = True) -> list[Payment]:
    """`record_payment` of cleared payments, for many in one transaction and in the order given:
    a retried idempotency key answers with its payment (the same key for a different payment is
    refused), every new payment is checked before anything is written, then posted and, with
    `auto_apply`, applied as `auto_allocate` does — oldest due first, disputed invoices skipped —
    a later payment of a customer seeing what an earlier one settled."""
    if not payments:
        return []
    # The customers first: a concurrent request with one of these keys either committed before
    # (and is found below) or waits for this batch (and finds its payment).
    customers = _lock_customers(draft.customer.pk for draft in payments)
    keys = {draft.idempotency_key for draft in payments if draft.idempotency_key}
    by_key = {payment.idempotency_key: payment for payment in Payment.objects.filter(idempotency_key__in=keys)}
    rate = cache(rate_on)  # per (currency, day), for this batch
    check_open = period_check()
    checks = _BatchFieldChecks()
    answers: list[Payment] = []
    new: list[Payment] = []
    for draft in payments:
        customer = draft.customer
        amount = quantize(Decimal(draft.amount))
        currency = draft.currency or customer.currency
        request = {
            "customer_id": customer.pk,
            "amount": amount,
            "currency": currency,
            "received_on": draft.received_on,
            "method": draft.method,
        }
        existing = by_key.get(draft.idempotency_key) if draft.idempotency_key else None
        if existing is not None:
            if not _same_payment(existing, **request):
                raise IdempotencyConflict(
                    f"Idempotency key {draft.idempotency_key!r} was used for a different payment ({existing})."
                )
            answers.append(existing)
            continue
        if amount <= 0:
            raise ValidationError({"amount": f"A payment must be positive, not {amount}."})
        if currency != customer.currency:
            raise CurrencyMismatch(f"{customer} pays in {customer.currency}, not {currency}.")
        payment = Payment(
            customer=customers[customer.pk],
            amount=amount,
            currency=currency,
            received_on=draft.received_on,
            method=draft.method,
            reference=draft.reference,
            status=Payment.Status.PENDING,
            idempotency_key=draft.idempotency_key or None,
            created_by=actor,
        )
        checks.check(payment, exclude=["idempotency_key"])
        rate(currency, draft.received_on)  # clear_payment's checks, before anything is written
        check_open(draft.received_on)
        if draft.idempotency_key:
            by_key[draft.idempotency_key] = payment
        new.append(payment)
        answers.append(payment)
    if not new:
        return answers
    if any(payment.idempotency_key for payment in new):
        try:
            with transaction.atomic():
                bulk.insert(Payment, new, actor=actor)
        except IntegrityError:
            # Another customer's payment took one of the keys meanwhile (one of these customers'
            # would have waited for the lock above and been found).
            raise IdempotencyConflict(
                "An idempotency key of this batch was used meanwhile for a different payment; nothing was recorded."
            ) from None
    else:
        bulk.insert(Payment, new, actor=actor)
    _clear_and_apply(actor=actor, payments=new, auto_apply=auto_apply, rate=rate, check_open=check_open)
    return answers


OLDEST_DUE_FIRST = ("customer_id", "due_date", "issue_date", "id")


def _invoices_reached(payments: list[Payment]) -> list[int]:
    """Lock every open invoice of the payments' customers, as `auto_allocate` does, and return
    those the payments can reach: applied oldest due first, disputed ones skipped, a customer's
    payments use its invoices up in order, so an invoice is reached only while the open amounts
    before it add up to less than the customer pays in the batch. Only these are read in full
    (about half of the open invoices a batch locks)."""
    paid: defaultdict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    for payment in payments:
        paid[(payment.customer_id, payment.currency)] += payment.amount
    before: defaultdict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    reached = []
    for pk, customer_id, currency, disputed, open_amount in (
        Invoice.objects.select_for_update()
        .filter(customer_id__in=sorted({customer_id for customer_id, _ in paid}), status__in=Invoice.OPEN_STATUSES)
        .order_by(*OLDEST_DUE_FIRST)
        .values_list("pk", "customer_id", "currency", "disputed", "open_amount")
    ):
        of = (customer_id, currency)
        if disputed or of not in paid:
            continue
        if before[of] < paid[of]:
            reached.append(pk)
        before[of] += open_amount
    return reached


class _Changes:
    """The states rows go through in a batch, in order, for their history (`bulk.update`'s
    `states`): a row changed is listed as itself, and copied only when it is about to change
    again, so that the last state listed of each row is the row as written and only the states a
    later change overwrites are copies (most rows of a batch change once)."""

    def __init__(self):
        self.states: list = []
        self._listed: dict[int, int] = {}  # primary key → where the row itself is listed

    def before(self, row) -> None:
        """`row` is about to change: the state listed for it becomes a copy of its values as they
        stand (all a history row reads; a model instance's own copy costs ten times as much)."""
        at = self._listed.pop(row.pk, None)
        if at is not None:
            self.states[at] = SimpleNamespace(**vars(row), pk=row.pk)

    def after(self, row) -> None:
        """`row` has changed: its new state is listed."""
        self._listed[row.pk] = len(self.states)
        self.states.append(row)


def _clear_and_apply(*, actor, payments: list[Payment], auto_apply: bool, rate, check_open) -> None:
    """`clear_payment` and `auto_allocate` of freshly inserted pending payments, computed in
    memory in order, then written in bulk."""
    open_invoices: defaultdict[int, list[Invoice]] = defaultdict(list)
    if auto_apply:
        for invoice in Invoice.objects.filter(pk__in=_invoices_reached(payments)).order_by(*OLDEST_DUE_FIRST):
            open_invoices[invoice.customer_id].append(invoice)
    lock = locked_through()
    moves = _receivable_moves()
    payment_changes, invoice_changes = _Changes(), _Changes()
    allocations_of: list[list[PaymentAllocation]] = []
    settled: list[tuple[Invoice, date]] = []  # the invoice and the batch's day
    touched: dict[int, Invoice] = {}
    for payment in payments:
        payment.exchange_rate = rate(payment.currency, payment.received_on)
        payment.base_amount = to_base(payment.amount, payment.exchange_rate)
        payment.status = Payment.Status.CLEARED
        payment.unapplied_amount, payment.unapplied_base = payment.amount, payment.base_amount
        payment_changes.after(payment)
        moves[payment.customer_id][1] += payment.amount
        allocations: list[PaymentAllocation] = []
        allocations_of.append(allocations)
        for invoice in open_invoices[payment.customer_id] if auto_apply else ():
            if payment.unapplied_amount == ZERO:
                break
            if invoice.currency != payment.currency or invoice.status not in Invoice.OPEN_STATUSES:
                continue
            if invoice.disputed:
                continue  # a disputed invoice is settled by a person's decision, not automatically
            amount = min(invoice.open_amount, payment.unapplied_amount)
            if amount <= 0:
                raise AllocationExceedsBalance(f"An allocation must be positive, not {amount}.")
            day = max(invoice.issue_date, payment.received_on)
            allocated_on = day if lock is None or day > lock else lock + timedelta(days=1)
            check_open(allocated_on)
            allocation = PaymentAllocation(
                invoice=invoice,
                payment=payment,
                amount=amount,
                allocated_on=allocated_on,
                invoice_base=_portion(
                    amount, of_amount=invoice.open_amount, of_base=invoice.open_base, rate=invoice.exchange_rate
                ),
                credit_base=_portion(
                    amount,
                    of_amount=payment.unapplied_amount,
                    of_base=payment.unapplied_base,
                    rate=payment.exchange_rate,
                ),
                created_by=actor,
            )
            allocations.append(allocation)
            invoice_changes.before(invoice)
            invoice.open_amount -= amount
            invoice.open_base -= allocation.invoice_base
            _settle_status(invoice)
            invoice.updated_at = timezone.now()
            invoice_changes.after(invoice)
            touched[invoice.pk] = invoice
            if invoice.open_amount == ZERO:
                # Paid, so left alone by the rest of the batch: its last state is itself.
                settled.append((invoice, allocated_on))
            payment_changes.before(payment)
            payment.unapplied_amount -= amount
            payment.unapplied_base -= allocation.credit_base
            if payment.unapplied_amount == ZERO:
                payment.used_up_on = max(allocation.allocated_on for allocation in allocations)
            payment_changes.after(payment)
            moves[payment.customer_id][0] -= amount
            moves[payment.customer_id][1] -= amount
    # An invoice settles on its latest allocation day, counting those made before this batch.
    earlier = _last_allocation_days([invoice.pk for invoice, _ in settled]) if settled else {}
    for invoice, day in settled:
        invoice.settled_on = _latest_day(earlier.get(invoice.pk), day)

    allocations = [allocation for allocations in allocations_of for allocation in allocations]
    if allocations:
        bulk.insert(PaymentAllocation, allocations, actor=actor)
    # The entries in the order the single services post them: each receipt, then its FX.
    accounts = accounts_by_role()
    pending, owners = [], []
    for payment, allocations_of_payment in zip(payments, allocations_of, strict=True):
        pending.append(posting.payment_received_entry(payment, accounts=accounts))
        owners.append(payment)
        for allocation in allocations_of_payment:
            fx = posting.allocation_settled_entry(allocation, document=payment, accounts=accounts)
            if fx is not None:
                pending.append(fx)
                owners.append(allocation)
    for owner, entry in zip(owners, post_entries(entries=pending, actor=actor), strict=True):
        if isinstance(owner, Payment):
            owner.entry = entry
        else:
            owner.fx_entry = entry
    with_fx = [allocation for allocation in allocations if allocation.fx_entry_id is not None]
    if with_fx:
        _update_with_states(PaymentAllocation, with_fx, ["fx_entry"], with_fx, actor=actor)
    entry_of = {payment.pk: payment.entry_id for payment in payments}
    for state in payment_changes.states:  # every state after clearing shows the receipt's entry
        state.entry_id = entry_of[state.pk]
    _update_with_states(
        Payment,
        payments,
        ["exchange_rate", "base_amount", "status", "entry", "unapplied_amount", "unapplied_base", "used_up_on"],
        payment_changes.states,
        actor=actor,
    )
    _update_with_states(
        Invoice,
        list(touched.values()),
        ["open_amount", "open_base", "status", "settled_on", "updated_at"],
        invoice_changes.states,
        actor=actor,
    )
    _move_receivables_of(moves)
