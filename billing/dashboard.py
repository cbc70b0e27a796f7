"""The receivables dashboard: what is owed, how late it is, how fast it comes in, and when the
open invoices are expected to turn into cash. Base currency throughout.

Two kinds of figures, as in billing.selectors:
- the KPIs, the aging and the trend are *as of a date*, rebuilt from dated events, so a dashboard
  for last June says what was true last June;
- the cash forecast always looks ahead from *today*, from the balances kept on each document, the
  open promises and each customer's payment history as they stand now (a forecast made "as of"
  a past day would mix today's disputes and promises with that day's balances).

The forecast itself is a pure function (`build_forecast`: rows in, weekly buckets out) so that its
rules are tested without a database; `cash_forecast` fetches its rows in a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db.models import OuterRef, Q, Sum

from billing import metrics
from billing.models import Invoice, Payment, PaymentAllocation, PromiseInvoice, PromiseToPay
from billing.selectors import (
    BUCKET_LABELS,
    BUCKETS,
    MONEY_FIELD,
    AgingRow,
    OpenPosition,
    _sum_subquery,
    _totals,
    aging,
    invoices_open_as_of,
    open_position,
)
from ledger.money import ZERO, quantize

FORECAST_WEEKS = 8
TREND_MONTHS = 6
ONE_DAY = timedelta(days=1)


def _percent(part: Decimal, whole: Decimal) -> Decimal | None:
    """`part` as a percentage of `whole`, one decimal; None when there is no whole."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole) * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# --- KPIs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpis:
    as_of: date
    position: OpenPosition  # open invoices and unapplied credit, from whole-table sums
    aging: AgingRow  # the same open invoices by days past due
    dso: metrics.Dso
    collected: Decimal  # payments received from `collected_from` to `as_of`
    collected_from: date

    @property
    def total_ar(self) -> Decimal:
        """What customers owed at the end of `as_of`: open invoices less unapplied credit."""
        return self.position.net

    @property
    def open_invoices(self) -> Decimal:
        return self.aging.open_total

    @property
    def overdue(self) -> Decimal:
        return sum((self.aging.buckets[bucket] for bucket in BUCKETS if bucket != "current"), ZERO)

    @property
    def overdue_percent(self) -> Decimal | None:
        """Overdue invoices as a share of all open invoices (before unapplied credit)."""
        return _percent(self.overdue, self.open_invoices)

    @property
    def dso_sales_from(self) -> date:
        """The first day of the sales DSO counts (the period ends on `as_of`)."""
        return self.as_of - timedelta(days=self.dso.period_days - 1)


def collected(*, start: date, end: date) -> Decimal:
    """Payments received from `start` to `end` (base currency): posted ones only (a pending
    payment has no entry yet), less those that had failed — bounced — by `end`."""
    received = Payment.objects.filter(entry__isnull=False, received_on__gte=start, received_on__lte=end).exclude(
        failed_on__lte=end
    )
    [total] = _totals(received, "base_amount")
    return total


def kpis(*, as_of: date) -> Kpis:
    month_start = as_of.replace(day=1)
    return Kpis(
        as_of=as_of,
        position=open_position(as_of=as_of),
        aging=aging(as_of=as_of).totals(),
        dso=metrics.dso(as_of=as_of),
        collected=collected(start=month_start, end=as_of),
        collected_from=month_start,
    )


# --- Trend: DSO and overdue share at each month-end -------------------------------------------


@dataclass(frozen=True)
class TrendPoint:
    month_end: date
    dso: metrics.Dso
    open_invoices: Decimal
    overdue: Decimal

    @property
    def overdue_percent(self) -> Decimal | None:
        return _percent(self.overdue, self.open_invoices)


def month_ends(as_of: date, count: int = TREND_MONTHS) -> list[date]:
    """The last `count` month-ends on or before `as_of`, oldest first (`as_of` itself counts
    when it is the last day of its month)."""
    end = as_of if (as_of + ONE_DAY).month != as_of.month else as_of.replace(day=1) - ONE_DAY
    ends = []
    for _ in range(count):
        ends.append(end)
        end = end.replace(day=1) - ONE_DAY
    return ends[::-1]


def _open_and_overdue(as_of: date) -> tuple[Decimal, Decimal]:
    """Open invoices and the overdue part of them at the end of `as_of`, in one query."""
    sums = invoices_open_as_of(as_of).aggregate(
        open=Sum("open_base_then", output_field=MONEY_FIELD),
        overdue=Sum("open_base_then", filter=Q(due_date__lt=as_of), output_field=MONEY_FIELD),
    )
    return quantize(sums["open"] or ZERO), quantize(sums["overdue"] or ZERO)


def trend(*, as_of: date, months: int = TREND_MONTHS) -> list[TrendPoint]:
    """Three queries a month: DSO's receivables and sales, and the overdue share."""
    points = []
    for month_end in month_ends(as_of, months):
        open_total, overdue = _open_and_overdue(month_end)
        points.append(
            TrendPoint(month_end=month_end, dso=metrics.dso(as_of=month_end), open_invoices=open_total, overdue=overdue)
        )
    return points


# --- Cash forecast: the pure part ---------------------------------------------------------------


@dataclass(frozen=True)
class ForecastInvoice:
    """An open invoice as the forecast sees it."""

    invoice_id: int
    customer_id: int
    due_date: date
    open_amount: Decimal  # invoice currency
    open_base: Decimal  # base currency, at the invoice's carrying value
    disputed: bool = False


@dataclass(frozen=True)
class ForecastPromise:
    """An open promise to pay `amount` (the invoices' currency) on `invoice_ids` by `promised_on`;
    `paid_since_made` is what has been applied to those invoices since the promise was made."""

    promise_id: int
    promised_on: date
    amount: Decimal
    invoice_ids: tuple[int, ...]
    paid_since_made: Decimal = ZERO

    @property
    def still_to_come(self) -> Decimal:
        return max(ZERO, self.amount - self.paid_since_made)


@dataclass
class ForecastWeek:
    number: int  # 1 is the week that contains today
    starts_on: date  # a Monday
    ends_on: date  # the Sunday after
    promised: Decimal = ZERO
    expected: Decimal = ZERO  # due date shifted by the customer's usual lateness
    overdue: Decimal = ZERO  # already later than usual: chased now, expected soon (week 1 only)
    cumulative: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.promised + self.expected + self.overdue


@dataclass
class CashForecast:
    today: date
    weeks: list[ForecastWeek]
    default_days_late: Decimal  # used for customers without a payment history
    later_promised: Decimal = ZERO
    later_expected: Decimal = ZERO
    disputed: Decimal = ZERO  # at risk: left out of the expected cash
    disputed_invoices: int = 0
    # Open invoice id → (date, base amount, series) parts, to explain a figure or test a rule.
    parts: dict[int, list[tuple[date, Decimal, str]]] = field(default_factory=dict)

    @property
    def later(self) -> Decimal:
        return self.later_promised + self.later_expected

    @property
    def promised_within(self) -> Decimal:
        return sum((week.promised for week in self.weeks), ZERO)

    @property
    def expected_within(self) -> Decimal:
        return sum((week.expected for week in self.weeks), ZERO)

    @property
    def overdue_within(self) -> Decimal:
        return sum((week.overdue for week in self.weeks), ZERO)

    @property
    def within_horizon(self) -> Decimal:
        return self.weeks[-1].cumulative if self.weeks else ZERO

    @property
    def total_expected(self) -> Decimal:
        return self.within_horizon + self.later


def _whole_days(days: Decimal) -> int:
    return int(Decimal(days).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _split(amount: Decimal, capacities: list[tuple[int, Decimal]]) -> dict[int, Decimal]:
    """`amount` split over invoices in proportion to what is open on each (cents half up, the last
    invoice takes the rounding difference), never more than an invoice's open amount."""
    room = sum((capacity for _, capacity in capacities), ZERO)
    if amount <= 0 or room <= 0:
        return {}
    if amount >= room:
        return dict(capacities)
    shares, given = {}, ZERO
    for index, (invoice_id, capacity) in enumerate(capacities):
        last = index == len(capacities) - 1
        share = min(max(amount - given if last else quantize(amount * capacity / room), ZERO), capacity)
        shares[invoice_id] = share
        given += share
    return shares


def _in_base(amount: Decimal, invoice: ForecastInvoice) -> Decimal:
    """Part of an invoice's open amount at the invoice's carrying value in base currency."""
    if amount == invoice.open_amount:
        return invoice.open_base
    return quantize(invoice.open_base * amount / invoice.open_amount)


def build_forecast(
    *,
    invoices: Iterable[ForecastInvoice],
    promises: Iterable[ForecastPromise],
    days_late: dict[int, Decimal],
    default_days_late: Decimal,
    today: date,
    weeks: int = FORECAST_WEEKS,
) -> CashForecast:
    """When the open invoices are expected to be paid, in weekly buckets (Monday to Sunday, the
    first being this week) and a "later" bucket beyond them. The rules:

    1. A disputed invoice is left out of the expected cash and counted as at risk.
    2. An open promise's amount still to come is split over its undisputed open invoices in
       proportion to what is open on each, and expected on the promised date (today if that has
       passed and the daily job has not yet judged it). Promises are applied in date order and
       never claim more than is open.
    3. What no promise covers is expected on the due date shifted by the customer's average days
       late (`days_late`, whole days, half up), or by `default_days_late` without a history.
    4. If that day has passed, the customer is already later than usual: the amount goes to week 1
       as "overdue, expected soon", apart from the history-based figures. Spreading it over the
       weeks would invent a schedule nobody has; putting it in week 1 says what collections does
       with it — chase it now — and keeping it a separate series shows how much of the near-term
       cash rests on it.
    """
    first_monday = today - timedelta(days=today.weekday())
    forecast = CashForecast(
        today=today,
        default_days_late=default_days_late,
        weeks=[
            ForecastWeek(
                number=number + 1,
                starts_on=first_monday + timedelta(weeks=number),
                ends_on=first_monday + timedelta(weeks=number, days=6),
            )
            for number in range(weeks)
        ],
    )
    open_invoices = {invoice.invoice_id: invoice for invoice in invoices}

    def add(invoice_id: int, day: date, amount: Decimal, series: str) -> None:
        if not amount:
            return
        forecast.parts.setdefault(invoice_id, []).append((day, amount, series))
        index = (day - first_monday).days // 7
        if index >= weeks:
            if series == "promised":
                forecast.later_promised += amount
            else:
                forecast.later_expected += amount
            return
        week = forecast.weeks[index]
        setattr(week, series, getattr(week, series) + amount)

    # Rule 2: promises first, each taking its share of what is still open.
    room = {
        invoice.invoice_id: invoice.open_amount
        for invoice in open_invoices.values()
        if not invoice.disputed and invoice.open_amount > 0
    }
    promised_base: dict[int, Decimal] = {}
    for promise in sorted(promises, key=lambda promise: (promise.promised_on, promise.promise_id)):
        capacities = [(invoice_id, room[invoice_id]) for invoice_id in promise.invoice_ids if room.get(invoice_id)]
        for invoice_id, share in _split(promise.still_to_come, capacities).items():
            invoice = open_invoices[invoice_id]
            room[invoice_id] -= share
            base = invoice.open_base if not room[invoice_id] else _in_base(share, invoice)
            base = min(base, invoice.open_base - promised_base.get(invoice_id, ZERO))
            promised_base[invoice_id] = promised_base.get(invoice_id, ZERO) + base
            add(invoice_id, max(promise.promised_on, today), base, "promised")

    for invoice in open_invoices.values():
        if invoice.disputed:  # rule 1
            forecast.disputed += invoice.open_base
            forecast.disputed_invoices += 1
            continue
        rest = invoice.open_base - promised_base.get(invoice.invoice_id, ZERO)
        if rest <= 0:
            continue
        shift = days_late.get(invoice.customer_id, default_days_late)  # rule 3
        expected_on = invoice.due_date + timedelta(days=_whole_days(shift))
        if expected_on < today:  # rule 4
            add(invoice.invoice_id, today, rest, "overdue")
        else:
            add(invoice.invoice_id, expected_on, rest, "expected")

    running = ZERO
    for week in forecast.weeks:
        running += week.total
        week.cumulative = running
    return forecast


# --- Cash forecast: the rows ------------------------------------------------------------------


def forecast_rows() -> tuple[list[ForecastInvoice], list[ForecastPromise]]:
    """Open invoices and open promises as they stand now: two queries."""
    invoices = [
        ForecastInvoice(
            invoice_id=pk,
            customer_id=customer_id,
            due_date=due_date,
            open_amount=quantize(open_amount),
            open_base=quantize(open_base),
            disputed=disputed,
        )
        for pk, customer_id, due_date, open_amount, open_base, disputed in Invoice.objects.filter(
            status__in=Invoice.OPEN_STATUSES, open_amount__gt=0
        ).values_list("pk", "customer_id", "due_date", "open_amount", "open_base", "disputed")
    ]
    # What has been applied to each promised invoice since its promise was made (as the daily job
    # that settles promises counts it), so a part-paid promise only counts what is still to come.
    paid_since = PaymentAllocation.objects.filter(
        invoice=OuterRef("invoice_id"), allocated_on__gte=OuterRef("promise__made_on")
    )
    rows = (
        PromiseInvoice.objects.filter(promise__status=PromiseToPay.Status.OPEN)
        .annotate(paid_since=_sum_subquery(paid_since, "amount", "invoice"))
        .order_by("promise_id", "invoice_id")
        .values_list("promise_id", "promise__promised_on", "promise__amount", "invoice_id", "paid_since")
    )
    grouped: dict[int, dict] = {}
    for promise_id, promised_on, amount, invoice_id, paid in rows:
        promise = grouped.setdefault(
            promise_id, {"promised_on": promised_on, "amount": quantize(amount), "invoice_ids": [], "paid": ZERO}
        )
        promise["invoice_ids"].append(invoice_id)
        promise["paid"] += quantize(paid)
    promises = [
        ForecastPromise(
            promise_id=promise_id,
            promised_on=promise["promised_on"],
            amount=promise["amount"],
            invoice_ids=tuple(promise["invoice_ids"]),
            paid_since_made=promise["paid"],
        )
        for promise_id, promise in grouped.items()
    ]
    return invoices, promises


def cash_forecast(*, today: date, weeks: int = FORECAST_WEEKS) -> CashForecast:
    """The next `weeks` weeks of expected cash from today's open invoices: four queries (open
    invoices, open promises, each customer's days late, the company-wide days late)."""
    invoices, promises = forecast_rows()
    overall = metrics.average_days_late_overall(as_of=today)
    return build_forecast(
        invoices=invoices,
        promises=promises,
        days_late=metrics.average_days_late_by_customer(as_of=today),
        default_days_late=overall if overall is not None else ZERO,
        today=today,
        weeks=weeks,
    )


# --- The whole page -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    as_of: date
    today: date
    currency: str
    kpis: Kpis
    trend: list[TrendPoint]
    forecast: CashForecast

    @property
    def aging_buckets(self) -> list[tuple[str, str, Decimal, Decimal | None]]:
        """(key, label, amount, percent of open invoices) for each aging bucket, youngest first."""
        buckets, open_total = self.kpis.aging.buckets, self.kpis.open_invoices
        return [
            (bucket, BUCKET_LABELS[bucket], buckets[bucket], _percent(buckets[bucket], open_total))
            for bucket in BUCKETS
        ]

    def chart_data(self) -> dict:
        """What the charts draw (numbers as floats: they only position pixels; every figure the
        page states comes from the Decimals above)."""
        forecast = self.forecast
        return {
            "currency": self.currency,
            "aging": {
                "labels": [label for _, label, _, _ in self.aging_buckets],
                "values": [float(amount) for _, _, amount, _ in self.aging_buckets],
            },
            "forecast": {
                "labels": [week.starts_on.isoformat() for week in forecast.weeks],
                "promised": [float(week.promised) for week in forecast.weeks],
                "expected": [float(week.expected) for week in forecast.weeks],
                "overdue": [float(week.overdue) for week in forecast.weeks],
                "cumulative": [float(week.cumulative) for week in forecast.weeks],
            },
            "trend": {
                "labels": [point.month_end.isoformat() for point in self.trend],
                "dso": [float(point.dso.days) if point.dso.days is not None else None for point in self.trend],
                "overdue_percent": [
                    float(point.overdue_percent) if point.overdue_percent is not None else None for point in self.trend
                ],
            },
        }


def dashboard(*, as_of: date, today: date) -> Dashboard:
    """Everything the dashboard page shows, in a number of queries that does not depend on the
    number of customers, invoices or promises."""
    return Dashboard(
        as_of=as_of,
        today=today,
        currency=settings.CONCORD_BASE_CURRENCY,
        kpis=kpis(as_of=as_of),
        trend=trend(as_of=as_of),
        forecast=cash_forecast(today=today),
    )
