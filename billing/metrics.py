"""Collection metrics shared by the customer page, the dashboard and the cash forecast.

- **DSO** (days sales outstanding), the countback-free "simple" method: receivables open at the
  end of the period ÷ credit sales over the period × days in the period. Base currency, so a
  company-wide figure and a customer's are comparable. The period is the 90 days up to `as_of`.
- **Average days late**: over invoices fully settled in the last 365 days, the amount-weighted
  mean of (day the last payment or credit was applied − due date). Negative means early.

Both read dated events only (billing.selectors.invoices_open_as_of), so they are reproducible for
any past date; as of today with nothing dated later, DSO reads the open balances kept on the
invoices instead, which are then the same figures (billing.selectors.reads_kept_balances).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import ExpressionWrapper, F, Func, IntegerField, QuerySet, Sum

from billing.models import Invoice
from billing.selectors import MONEY_FIELD, _totals, invoices_open_as_of, reads_kept_balances
from ledger.money import ZERO, quantize

DSO_PERIOD_DAYS = 90
DAYS_LATE_WINDOW_DAYS = 365
DSO_FORMULA = "DSO = receivables open at the day's end ÷ credit sales of the last {days} days × {days}"


@dataclass(frozen=True)
class Dso:
    as_of: date
    period_days: int
    receivables: Decimal  # base currency, open invoices at the end of as_of
    credit_sales: Decimal  # base currency, invoices issued in the period (net of nothing)

    @property
    def days(self) -> Decimal | None:
        """None when nothing was sold in the period (DSO is undefined, not zero or infinite)."""
        if not self.credit_sales:
            return None
        return (self.receivables / self.credit_sales * self.period_days).quantize(Decimal("0.1"))

    @property
    def formula(self) -> str:
        return DSO_FORMULA.format(days=self.period_days)


def dso(
    *, as_of: date, customers: QuerySet | None = None, period_days: int = DSO_PERIOD_DAYS, read_kept: bool = False
) -> Dso:
    """DSO on `as_of` for all customers, or for those in `customers` (a Customer queryset): two
    sums. With `read_kept` (the customer page, whose customer may have thousands of open invoices),
    first the probes of billing.selectors.reads_kept_balances (up to six)."""
    if read_kept and reads_kept_balances(as_of):
        # Nothing is dated after `as_of` (today): the open balances kept on the invoices are that
        # day's, read straight from the invoices instead of rebuilt from every allocation.
        open_then = Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES, issue_date__lte=as_of)
        if customers is not None:
            open_then = open_then.filter(customer__in=customers)
        receivables = open_then.aggregate(total=Sum("open_base", output_field=MONEY_FIELD))["total"] or ZERO
    else:
        open_then = invoices_open_as_of(as_of, customers)
        receivables = open_then.aggregate(total=Sum("open_base_then", output_field=MONEY_FIELD))["total"] or ZERO
    sales = Invoice.objects.filter(issue_date__gt=as_of - timedelta(days=period_days), issue_date__lte=as_of).exclude(
        voided_on__lte=as_of
    )
    if customers is not None:
        sales = sales.filter(customer__in=customers)
    [credit_sales] = _totals(sales, "base_gross")
    return Dso(as_of=as_of, period_days=period_days, receivables=quantize(receivables), credit_sales=credit_sales)


def _settled_invoices(*, as_of: date, window_days: int) -> QuerySet:
    """Paid invoices whose stored `settled_on` (the last day credit was applied to them) falls in
    the window ending on `as_of`."""
    return Invoice.objects.filter(
        status=Invoice.Status.PAID,
        due_date__isnull=False,
        settled_on__lte=as_of,
        settled_on__gt=as_of - timedelta(days=window_days),
    )


class DaysBetween(Func):
    """Whole days from the second date expression to the first (PostgreSQL subtracts dates to an
    integer; SQLite goes through Julian day numbers)."""

    output_field = IntegerField()
    arg_joiner = " - "
    template = "(%(expressions)s)"

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler, connection, template="CAST(julianday(%(expressions)s) AS INTEGER)", arg_joiner=") - julianday("
        )


def average_days_late_by_customer(
    *, as_of: date, customer_ids: list[int] | None = None, window_days: int = DAYS_LATE_WINDOW_DAYS
) -> dict[int, Decimal]:
    """Customer id → amount-weighted average days late (one decimal) over recently settled
    invoices; customers with no settled invoice in the window are absent. Summed in SQL (one row
    per customer), so a customer with thousands of settled invoices costs one small read."""
    settled = _settled_invoices(as_of=as_of, window_days=window_days)
    if customer_ids is not None:
        settled = settled.filter(customer_id__in=customer_ids)
    days_late = DaysBetween(F("settled_on"), F("due_date"))
    rows = (
        settled.order_by()
        .values("customer_id")
        .annotate(
            weighted=Sum(ExpressionWrapper(F("base_gross") * days_late, output_field=MONEY_FIELD)),
            amount=Sum("base_gross", output_field=MONEY_FIELD),
        )
        .values_list("customer_id", "weighted", "amount")
    )
    # Both sums are whole cents (amounts × whole days): quantized, they are exact on SQLite too.
    return {
        customer_id: (quantize(weighted) / quantize(amount)).quantize(Decimal("0.1"))
        for customer_id, weighted, amount in rows
        if amount
    }


def average_days_late(*, as_of: date, customer_id: int) -> Decimal | None:
    return average_days_late_by_customer(as_of=as_of, customer_ids=[customer_id]).get(customer_id)


def average_days_late_overall(*, as_of: date, window_days: int = DAYS_LATE_WINDOW_DAYS) -> Decimal | None:
    """The company-wide amount-weighted average days late over every customer's recently settled
    invoices (one decimal), the stand-in for a customer without a history of its own; None when
    nothing was settled in the window. Weighted by amount, not a mean of customers' averages, so
    a customer with one small invoice does not count as much as one with a hundred."""
    sums = _settled_invoices(as_of=as_of, window_days=window_days).aggregate(
        weighted=Sum(
            ExpressionWrapper(F("base_gross") * DaysBetween(F("settled_on"), F("due_date")), output_field=MONEY_FIELD)
        ),
        amount=Sum("base_gross", output_field=MONEY_FIELD),
    )
    if not sums["amount"]:
        return None
    return (quantize(sums["weighted"]) / quantize(sums["amount"])).quantize(Decimal("0.1"))
