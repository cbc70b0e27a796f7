"""Reads for the billing panel on the customer page, in a fixed number of queries.

The panel shows today's position (billing.selectors.with_balances), the customer's open invoices
and the most recent others, and payments with what they were applied to. Five queries whatever
the number of documents; the customer page's query-count test holds it to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import Case, F, Prefetch, Q, Value, When

from billing.models import Invoice, Payment, PaymentAllocation, Refund
from billing.selectors import with_balances
from crm.models import Customer
from ledger.money import ZERO, quantize

# The panel is a summary; full AR pages come later. Open invoices are what AR works from, so all of
# them are shown up to a generous cap; settled ones only as recent context.
OPEN_INVOICE_LIMIT = 100
RECENT_INVOICE_LIMIT = 5
RECENT_PAYMENT_LIMIT = 5
PAYMENT_LIMIT = 50


@dataclass(frozen=True)
class Balances:
    """Today's figures in the customer's currency."""

    currency: str
    balance: Decimal
    overdue: Decimal
    unapplied_credit: Decimal
    credit_limit: Decimal | None

    @property
    def credit_used(self) -> Decimal | None:
        """The balance as a percentage of the credit limit (None without a limit).

        Computed here rather than read from with_balances' `credit_used`, because SQLite divides
        two whole-number decimals as integers (500 / 1000 = 0).
        """
        if not self.credit_limit:
            return None
        return quantize(max(self.balance, ZERO) * 100 / self.credit_limit)

    @property
    def credit_bar_percent(self) -> int:
        """Width of the credit-use bar: 0–100."""
        used = self.credit_used
        return 0 if used is None else int(min(used, Decimal(100)))

    @property
    def credit_level(self) -> str:
        """How close to the limit, as a Bootstrap colour: success, warning (≥ 75%) or danger (≥ 100%)."""
        used = self.credit_used
        if used is None or used < 75:
            return "success"
        return "warning" if used < 100 else "danger"


@dataclass(frozen=True)
class InvoiceRow:
    invoice: Invoice
    days_overdue: int | None

    @property
    def is_open(self) -> bool:
        return self.invoice.status in Invoice.OPEN_STATUSES


@dataclass(frozen=True)
class PaymentRow:
    payment: Payment
    # The customer's open invoices this payment's credit may still be applied to.
    allocatable: list[Invoice] = field(default_factory=list)

    @property
    def suggested_amount(self) -> Decimal | None:
        """What allocating to the first (oldest due) allocatable invoice would apply."""
        if not self.allocatable:
            return None
        return min(self.allocatable[0].open_amount, self.payment.unapplied_amount)


@dataclass(frozen=True)
class CustomerBilling:
    customer: Customer
    balances: Balances
    invoices: list[InvoiceRow]  # the open ones first
    more_open_invoices: bool
    payments: list[PaymentRow]

    @property
    def open_invoices(self) -> list[InvoiceRow]:
        return [row for row in self.invoices if row.is_open]

    @property
    def recent_invoices(self) -> list[InvoiceRow]:
        return [row for row in self.invoices if not row.is_open]


def customer_balances(*, customer: Customer, today: date) -> Balances:
    """One query: with_balances on a one-row queryset."""
    row = (
        with_balances(Customer.objects.filter(pk=customer.pk), today=today)
        .values("currency", "balance", "overdue", "unapplied_credit", "credit_limit")
        .get()
    )
    return Balances(**row)


def _days_overdue(invoice: Invoice, today: date) -> int | None:
    if invoice.status not in Invoice.OPEN_STATUSES or invoice.due_date is None or invoice.due_date >= today:
        return None
    return (today - invoice.due_date).days


def customer_invoice_rows(*, customer: Customer, today: date) -> tuple[list[InvoiceRow], bool]:
    """Open invoices, oldest due first, then the most recent others (drafts first), in one query.
    The flag says there are more open invoices than shown."""
    invoices = Invoice.objects.filter(customer=customer)
    is_open = Q(status__in=Invoice.OPEN_STATUSES)
    recent_others = (invoices.exclude(is_open).order_by(F("issue_date").desc(nulls_first=True), "-id").values("pk"))[
        :RECENT_INVOICE_LIMIT
    ]

    def when_open(value, *, otherwise=None):
        return Case(When(is_open, then=value), default=otherwise)

    fetched = list(
        invoices.filter(is_open | Q(pk__in=recent_others)).order_by(
            when_open(Value(0), otherwise=Value(1)),
            # open: as auto-allocation takes them (billing.services._oldest_due_first)
            when_open(F("due_date")).asc(),
            when_open(F("issue_date")).asc(),
            when_open(F("id")).asc(),
            # the others: newest first, drafts (no issue date yet) before them
            when_open(None, otherwise=F("issue_date")).desc(nulls_first=True),
            "-id",
        )[: OPEN_INVOICE_LIMIT + 1 + RECENT_INVOICE_LIMIT]
    )
    open_invoices = [invoice for invoice in fetched if invoice.status in Invoice.OPEN_STATUSES]
    others = [invoice for invoice in fetched if invoice.status not in Invoice.OPEN_STATUSES]
    rows = [InvoiceRow(invoice, _days_overdue(invoice, today)) for invoice in open_invoices[:OPEN_INVOICE_LIMIT]]
    rows += [InvoiceRow(invoice, None) for invoice in others]
    return rows, len(open_invoices) > OPEN_INVOICE_LIMIT


def customer_payments(*, customer: Customer) -> list[Payment]:
    """Payments with unapplied credit and the most recent others, newest first, with their
    allocations (and the invoices) and refunds: three queries."""
    recent = Payment.objects.filter(customer=customer).order_by("-received_on", "-id").values("pk")
    return list(
        Payment.objects.filter(customer=customer)
        .filter(Q(unapplied_amount__gt=0) | Q(pk__in=recent[:RECENT_PAYMENT_LIMIT]))
        .order_by("-received_on", "-id")
        .prefetch_related(
            Prefetch("allocations", queryset=PaymentAllocation.objects.select_related("invoice")),
            Prefetch("refunds", queryset=Refund.objects.order_by("refunded_on", "id")),
        )[:PAYMENT_LIMIT]
    )


def customer_billing(*, customer: Customer, today: date) -> CustomerBilling:
    """Everything the billing panel shows, in five queries (three when there are no payments)."""
    invoices, more_open = customer_invoice_rows(customer=customer, today=today)
    open_invoices = [row.invoice for row in invoices if row.is_open]
    payments = [
        PaymentRow(
            payment,
            allocatable=[invoice for invoice in open_invoices if invoice.currency == payment.currency]
            if payment.status == Payment.Status.CLEARED and payment.unapplied_amount > 0
            else [],
        )
        for payment in customer_payments(customer=customer)
    ]
    return CustomerBilling(
        customer=customer,
        balances=customer_balances(customer=customer, today=today),
        invoices=invoices,
        more_open_invoices=more_open,
        payments=payments,
    )


def allocatable_invoices(*, payment: Payment):
    """The invoices a payment's credit may be applied to: the customer's open ones in its currency."""
    return Invoice.objects.filter(
        customer_id=payment.customer_id, currency=payment.currency, status__in=Invoice.OPEN_STATUSES
    ).order_by("due_date", "issue_date", "id")
