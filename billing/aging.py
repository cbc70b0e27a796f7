"""The aging report page's reads: one row per customer as receivables stood on a day, the
drill-down to a customer's invoices open that day, and the chart's figures.

The figures come from billing.selectors.aging (base currency, rebuilt from dated events), so the
report's totals are the same figure `manage.py ledger_check --as-of DAY` checks against the
ledger. Who reaches which customer is crm.access's decision; this module only narrows further
(by owner rep and currency). The number of queries does not depend on the number of customers:
the aging walks invoices in a fixed number of queries, and the customers' names and owners come
in one more.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import QuerySet

from billing.selectors import BUCKET_LABELS, BUCKETS, aging, bucket_for, invoices_open_as_of
from crm import access
from crm.models import Customer
from ledger.money import ZERO, base_currency, quantize

# The report's owner filter value for customers nobody owns.
NO_OWNER = "none"
# How the customer rows may be ordered: the page's column headers and the exports use these.
SORTS = {
    "-total": "Largest total",
    "-over_90": "Largest 90+",
    "name": "Customer A–Z",
}
DEFAULT_SORT = "-total"
# Reps beyond this many are summed into one "Other reps" bar, so the chart stays readable.
CHART_MAX_BARS = 12


def may_see_aging(user) -> bool:
    """The aging page is for people who work across all customers (Accounts Receivable, Finance
    Admins) and read invoices; a rep's own figures are on their customer pages."""
    return access.sees_all_customers(user) and user.has_perm("billing.view_invoice")


@dataclass(frozen=True)
class AgingFilters:
    as_of: date
    owner: str = ""  # "" for any, NO_OWNER, or an owner's pk
    currency: str = ""  # the customer's invoicing currency, "" for any
    sort: str = DEFAULT_SORT

    def as_params(self) -> dict[str, str]:
        """The filters as strings, for a query string or a background job's params."""
        return {"as_of": self.as_of.isoformat(), "owner": self.owner, "currency": self.currency, "sort": self.sort}

    @classmethod
    def from_params(cls, params: dict) -> AgingFilters:
        return cls(
            as_of=date.fromisoformat(params["as_of"]),
            owner=params.get("owner", ""),
            currency=params.get("currency", ""),
            sort=params.get("sort") or DEFAULT_SORT,
        )


def customers_in_report(*, user, filters: AgingFilters) -> QuerySet[Customer]:
    """The customers `user` may see, narrowed by the report's owner and currency filters."""
    customers = access.visible_customers(user)
    if filters.owner == NO_OWNER:
        customers = customers.filter(owner__isnull=True)
    elif filters.owner:
        customers = customers.filter(owner_id=int(filters.owner))
    if filters.currency:
        customers = customers.filter(currency=filters.currency)
    return customers


def report_currencies(*, user) -> list[str]:
    """The currencies the customers `user` may see are invoiced in, for the currency filter."""
    return list(access.visible_customers(user).order_by("currency").values_list("currency", flat=True).distinct())


def _person_name(first_name: str, last_name: str, username: str) -> str:
    return f"{first_name} {last_name}".strip() or username


@dataclass(frozen=True)
class CustomerAging:
    """One customer's receivables on the report's day, in the base currency."""

    customer_id: int
    account_number: str
    name: str
    owner_id: int | None
    owner_name: str
    currency: str
    buckets: dict[str, Decimal]
    unapplied: Decimal

    @property
    def bucket_amounts(self) -> list[Decimal]:
        return [self.buckets[bucket] for bucket in BUCKETS]

    @property
    def labelled_buckets(self) -> list[tuple[str, Decimal]]:
        return [(BUCKET_LABELS[bucket], self.buckets[bucket]) for bucket in BUCKETS]

    @property
    def open_total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)

    @property
    def total(self) -> Decimal:
        """What the customer owed that day: open invoices less unapplied credit."""
        return self.open_total - self.unapplied


@dataclass(frozen=True)
class AgingTotals:
    customers: int
    buckets: dict[str, Decimal]
    unapplied: Decimal

    @property
    def bucket_amounts(self) -> list[Decimal]:
        return [self.buckets[bucket] for bucket in BUCKETS]

    @property
    def open_total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)

    @property
    def total(self) -> Decimal:
        return self.open_total - self.unapplied

    @property
    def bucket_summary(self) -> list[dict]:
        """Each bucket's label, amount and share of the open invoices (0–100), for the summary."""
        open_total = self.open_total
        return [
            {
                "key": bucket,
                "label": BUCKET_LABELS[bucket],
                "amount": self.buckets[bucket],
                "percent": (self.buckets[bucket] * 100 / open_total) if open_total > 0 else None,
            }
            for bucket in BUCKETS
        ]


def aging_rows(*, customers: QuerySet[Customer], as_of: date) -> list[CustomerAging]:
    """A row for each of `customers` that owed something or held credit on `as_of` (unsorted):
    the aging's queries, plus one for the customers' names and owners."""
    report = aging(as_of=as_of, customers=customers)
    if not report.rows:
        return []
    details = customers.order_by().values_list(
        "pk",
        "account_number",
        "display_name",
        "currency",
        "owner_id",
        "owner__first_name",
        "owner__last_name",
        "owner__username",
    )
    rows = []
    for pk, account_number, name, currency, owner_id, first_name, last_name, username in details:
        aged = report.rows.get(pk)
        if aged is None:
            continue
        rows.append(
            CustomerAging(
                customer_id=pk,
                account_number=account_number,
                name=name,
                owner_id=owner_id,
                owner_name=_person_name(first_name, last_name, username) if owner_id else "",
                currency=currency,
                buckets=dict(aged.buckets),
                unapplied=aged.unapplied,
            )
        )
    return rows


def sort_rows(rows: list[CustomerAging], sort: str) -> list[CustomerAging]:
    by_name = sorted(rows, key=lambda row: (row.name.casefold(), row.customer_id))
    if sort == "-total":
        return sorted(by_name, key=lambda row: row.total, reverse=True)
    if sort == "-over_90":
        return sorted(by_name, key=lambda row: (row.buckets["over_90"], row.total), reverse=True)
    return by_name


def totals_of(rows: list[CustomerAging]) -> AgingTotals:
    buckets = dict.fromkeys(BUCKETS, ZERO)
    unapplied = ZERO
    for row in rows:
        for bucket in BUCKETS:
            buckets[bucket] += row.buckets[bucket]
        unapplied += row.unapplied
    return AgingTotals(customers=len(rows), buckets=buckets, unapplied=unapplied)


@dataclass(frozen=True)
class OwnerBook:
    """The open invoices of one owner rep's customers (or of several, for "Other reps")."""

    label: str
    buckets: dict[str, Decimal]

    @property
    def bucket_amounts(self) -> list[Decimal]:
        return [self.buckets[bucket] for bucket in BUCKETS]


def books_by_owner(rows: list[CustomerAging]) -> list[OwnerBook]:
    """Each owner rep's open invoices by bucket, the largest book first; beyond CHART_MAX_BARS
    reps, the smallest are summed into one "Other reps" book."""
    books: dict[int | None, OwnerBook] = {}
    for row in rows:
        book = books.setdefault(row.owner_id, OwnerBook(row.owner_name or "No owner", dict.fromkeys(BUCKETS, ZERO)))
        for bucket in BUCKETS:
            book.buckets[bucket] += row.buckets[bucket]
    ordered = sorted(books.values(), key=lambda book: (-sum(book.buckets.values(), ZERO), book.label))
    if len(ordered) > CHART_MAX_BARS:
        shown, rest = ordered[: CHART_MAX_BARS - 1], ordered[CHART_MAX_BARS - 1 :]
        others = OwnerBook(f"Other reps ({len(rest)})", dict.fromkeys(BUCKETS, ZERO))
        for book in rest:
            for bucket in BUCKETS:
                others.buckets[bucket] += book.buckets[bucket]
        ordered = [*shown, others]
    return ordered


def chart_data(books: list[OwnerBook], *, currency: str) -> dict:
    """The stacked bar chart's data: a bar per owner rep, stacked by bucket.

    Per rep because the table already ranks customers (sort by total or by 90+): what AR cannot
    read from it at a glance is whose portfolio is ageing badly, which is who to talk to about a
    customer's terms or a hold. Unapplied credit is left out: a bar shows what is owed and how old
    it is. Amounts are floats here because the chart only draws them; the page shows the exact
    figures as text."""
    return {
        "currency": currency,
        "labels": [book.label for book in books],
        "datasets": [
            {"key": bucket, "label": BUCKET_LABELS[bucket], "data": [float(book.buckets[bucket]) for book in books]}
            for bucket in BUCKETS
        ],
    }


@dataclass(frozen=True)
class AgingPage:
    as_of: date
    currency: str
    rows: list[CustomerAging]
    totals: AgingTotals
    books: list[OwnerBook]
    chart: dict


def aging_page(*, user, filters: AgingFilters) -> AgingPage:
    """Everything the aging page shows, for the customers `user` reaches and the filters."""
    rows = sort_rows(
        aging_rows(customers=customers_in_report(user=user, filters=filters), as_of=filters.as_of), filters.sort
    )
    currency, books = base_currency(), books_by_owner(rows)
    return AgingPage(
        as_of=filters.as_of,
        currency=currency,
        rows=rows,
        totals=totals_of(rows),
        books=books,
        chart=chart_data(books, currency=currency),
    )


# --- Invoices open on the day ------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceThen:
    """An invoice as it stood on the report's day."""

    invoice_id: int
    customer_id: int
    account_number: str
    customer_name: str
    number: str
    issue_date: date
    due_date: date
    days_overdue: int
    currency: str
    open_amount: Decimal  # invoice currency
    open_base: Decimal  # base currency

    @property
    def bucket(self) -> str:
        return bucket_for(self.days_overdue)

    @property
    def bucket_label(self) -> str:
        return BUCKET_LABELS[self.bucket]


def invoices_then(*, customers: QuerySet[Customer], as_of: date) -> Iterator[InvoiceThen]:
    """The invoices of `customers` open on `as_of`, by customer name then due date, in one query
    read in chunks (an export of every open invoice does not hold them all in memory)."""
    invoices = (
        invoices_open_as_of(as_of, customers)
        .order_by("customer__display_name", "customer_id", "due_date", "pk")
        .values_list(
            "pk",
            "customer_id",
            "customer__account_number",
            "customer__display_name",
            "number",
            "issue_date",
            "due_date",
            "currency",
            "open_amount_then",
            "open_base_then",
        )
    )
    for pk, customer_id, account, name, number, issued, due, currency, open_amount, open_base in invoices.iterator(
        chunk_size=2000
    ):
        yield InvoiceThen(
            invoice_id=pk,
            customer_id=customer_id,
            account_number=account,
            customer_name=name,
            number=number,
            issue_date=issued,
            due_date=due,
            days_overdue=max(0, (as_of - due).days),
            currency=currency,
            open_amount=quantize(open_amount),
            open_base=quantize(open_base),
        )


@dataclass(frozen=True)
class CustomerDrilldown:
    customer: Customer
    as_of: date
    currency: str
    row: CustomerAging | None  # None: nothing was open and no credit was held that day
    invoices: list[InvoiceThen]


def customer_drilldown(*, customer: Customer, as_of: date) -> CustomerDrilldown:
    """One customer's row of the report and the invoices behind it, as they stood on `as_of`.
    The caller has checked (through crm.access) that the user reaches `customer`."""
    customers = Customer.objects.filter(pk=customer.pk)
    rows = aging_rows(customers=customers, as_of=as_of)
    return CustomerDrilldown(
        customer=customer,
        as_of=as_of,
        currency=base_currency(),
        row=rows[0] if rows else None,
        invoices=list(invoices_then(customers=customers, as_of=as_of)),
    )
