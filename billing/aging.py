"""The aging report page's reads: one row per customer as receivables stood on a day, the
drill-down to a customer's invoices open that day, and the chart's figures.

The figures come from billing.selectors.aging_statement (base currency, rebuilt from dated
events), so the report's totals are the same figure `manage.py ledger_check --as-of DAY` checks
against the ledger. Who reaches which customer is crm.access's decision; this module only narrows
further (by owner rep and currency). The database sums, sorts and pages: the page reads the totals
grouped by owner and one page of rows, two queries whatever the number of customers, and an
export reads every row in order from a server-side cursor. These reads go to the reports
database (config.databases.reports_database(): the read replica when one is configured).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import QuerySet

from billing.selectors import (
    AGING_COLUMNS,
    BUCKET_LABELS,
    BUCKETS,
    AgingStatement,
    aging_statement,
    bucket_for,
    fetched,
    invoices_open_as_of,
    money,
    reads_kept_balances,
    report_cursor,
    report_transaction,
)
from config.databases import reports_database
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


# --- Customer rows, summed and sorted in the database ---------------------------------------------

# The customer's columns read with each row of the aging statement, in CustomerAging's order.
_CUSTOMER_COLUMNS = (
    "c.id, c.account_number, c.display_name, c.owner_id, u.first_name, u.last_name, u.username, c.currency"
)
_OPEN_TOTAL = " + ".join(f"a.bucket_{bucket}" for bucket in BUCKETS)
_TOTAL = f"({_OPEN_TOTAL} - a.unapplied)"
# Each sort's ORDER BY: ties by name (case-insensitive) then id, as the page always listed them.
_BY_NAME = "LOWER(c.display_name), c.id"
_ORDER_BY = {
    "-total": f"{_TOTAL} DESC, {_BY_NAME}",
    "-over_90": f"a.bucket_over_90 DESC, {_TOTAL} DESC, {_BY_NAME}",
    "name": _BY_NAME,
}


def _joined(statement: AgingStatement) -> str:
    """The aging statement's rows with their customer and its owner (one join each, by key)."""
    user_table = connection.ops.quote_name(get_user_model()._meta.db_table)
    return (
        f"FROM ({statement.sql}) a "
        f"JOIN {connection.ops.quote_name(Customer._meta.db_table)} c ON c.id = a.customer_id "
        f"LEFT JOIN {user_table} u ON u.id = c.owner_id"
    )


def _customer_aging(row: tuple) -> CustomerAging:
    customer_id, account_number, name, owner_id, first_name, last_name, username, currency, *amounts = row
    *buckets, unapplied = (money(amount) for amount in amounts)
    return CustomerAging(
        customer_id=customer_id,
        account_number=account_number,
        name=name,
        owner_id=owner_id,
        owner_name=_person_name(first_name, last_name, username) if owner_id else "",
        currency=currency,
        buckets=dict(zip(BUCKETS, buckets, strict=True)),
        unapplied=unapplied,
    )


def customer_rows(
    *,
    customers: QuerySet[Customer],
    as_of: date,
    sort: str = DEFAULT_SORT,
    limit: int | None = None,
    offset: int = 0,
    statement: AgingStatement | None = None,
) -> Iterator[CustomerAging]:
    """A row for each of `customers` that owed something or held credit on `as_of`, in `sort`'s
    order (or the `limit` rows from `offset`): one query, its rows read from a server-side cursor
    in chunks, so that every customer's row never sits in memory at once."""
    using = reports_database()
    statement = statement or aging_statement(as_of=as_of, customers=customers, using=using)
    amounts = ", ".join(f"a.{column}" for column in AGING_COLUMNS)
    sql = f"SELECT {_CUSTOMER_COLUMNS}, {amounts} {_joined(statement)} ORDER BY {_ORDER_BY[sort]}"
    params = list(statement.params)
    if limit is not None:
        sql += " LIMIT %s OFFSET %s"
        params += [limit, offset]
    with report_cursor(using=using, server_side=True) as cursor:
        cursor.execute(sql, params)
        for row in fetched(cursor):
            yield _customer_aging(row)


def aging_rows(*, customers: QuerySet[Customer], as_of: date, sort: str = DEFAULT_SORT) -> list[CustomerAging]:
    """Every row of customer_rows, as a list: for a selection known to be small."""
    return list(customer_rows(customers=customers, as_of=as_of, sort=sort))


@dataclass(frozen=True)
class OwnerBook:
    """The open invoices of one owner rep's customers (or of several, for "Other reps")."""

    label: str
    buckets: dict[str, Decimal]

    @property
    def bucket_amounts(self) -> list[Decimal]:
        return [self.buckets[bucket] for bucket in BUCKETS]


@dataclass(frozen=True)
class AgingSummary:
    totals: AgingTotals
    books: list[OwnerBook]  # every owner's book, the largest first


def aging_summary(*, statement: AgingStatement) -> AgingSummary:
    """The totals over every row of the aging statement and each owner rep's book: one query
    grouping the rows by owner (a few dozen rows come back, whatever the number of customers)."""
    sums = ", ".join(f"SUM(a.{column})" for column in AGING_COLUMNS)
    sql = (
        f"SELECT c.owner_id, MAX(u.first_name), MAX(u.last_name), MAX(u.username), COUNT(*), {sums} "
        f"{_joined(statement)} GROUP BY c.owner_id"
    )
    customers, buckets, unapplied, books = 0, dict.fromkeys(BUCKETS, ZERO), ZERO, []
    with report_cursor(using=reports_database()) as cursor:
        cursor.execute(sql, statement.params)
        for owner_id, first_name, last_name, username, count, *amounts in cursor.fetchall():
            *owed, credit = (money(amount) for amount in amounts)
            book = OwnerBook(
                _person_name(first_name, last_name, username) if owner_id else "No owner",
                dict(zip(BUCKETS, owed, strict=True)),
            )
            books.append(book)
            customers, unapplied = customers + count, unapplied + credit
            for bucket in BUCKETS:
                buckets[bucket] += book.buckets[bucket]
    books.sort(key=lambda book: (-sum(book.buckets.values(), ZERO), book.label))
    return AgingSummary(AgingTotals(customers=customers, buckets=buckets, unapplied=unapplied), books)


def chart_books(books: list[OwnerBook]) -> list[OwnerBook]:
    """The owners' books for the chart, the largest first; beyond CHART_MAX_BARS reps, the
    smallest are summed into one "Other reps" book."""
    if len(books) <= CHART_MAX_BARS:
        return books
    shown, rest = books[: CHART_MAX_BARS - 1], books[CHART_MAX_BARS - 1 :]
    others = OwnerBook(f"Other reps ({len(rest)})", dict.fromkeys(BUCKETS, ZERO))
    for book in rest:
        for bucket in BUCKETS:
            others.buckets[bucket] += book.buckets[bucket]
    return [*shown, others]


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


class RankedRows(Sequence):
    """The report's rows in order, of which a Paginator reads the count (known from the summary)
    and one page: slicing runs customer_rows with LIMIT/OFFSET, so a page costs one query however
    many customers the report has."""

    def __init__(self, *, count: int, customers: QuerySet[Customer], filters: AgingFilters, statement: AgingStatement):
        self.count_ = count
        self.customers, self.filters, self.statement = customers, filters, statement

    def __len__(self) -> int:
        return self.count_

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("The report's rows are read a page (a slice) at a time.")
        start, stop, _ = index.indices(self.count_)
        if stop <= start:
            return []
        return list(
            customer_rows(
                customers=self.customers,
                as_of=self.filters.as_of,
                sort=self.filters.sort,
                limit=stop - start,
                offset=start,
                statement=self.statement,
            )
        )


@dataclass(frozen=True)
class AgingPage:
    as_of: date
    currency: str
    page: Page  # of CustomerAging
    totals: AgingTotals
    books: list[OwnerBook]
    chart: dict

    @property
    def rows(self) -> list[CustomerAging]:
        """The rows on this page (the totals and the chart cover every page)."""
        return list(self.page.object_list)


def aging_page(*, user, filters: AgingFilters, page_number=1, per_page: int = 100) -> AgingPage:
    """Everything the aging page shows, for the customers `user` reaches and the filters: the
    totals and the owners' books over every customer, and one page of rows in the chosen order.
    Two reads of the aging statement (summary, page), whatever the number of customers."""
    customers = customers_in_report(user=user, filters=filters)
    statement = aging_statement(as_of=filters.as_of, customers=customers, using=reports_database())
    summary = aging_summary(statement=statement)
    ranked = RankedRows(count=summary.totals.customers, customers=customers, filters=filters, statement=statement)
    currency, books = base_currency(), chart_books(summary.books)
    return AgingPage(
        as_of=filters.as_of,
        currency=currency,
        page=Paginator(ranked, per_page).get_page(page_number),
        totals=summary.totals,
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
    using = reports_database()
    invoices = (
        invoices_open_as_of(as_of, customers, kept=reads_kept_balances(as_of, using=using))
        .using(using)
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
    with report_transaction(using=using):
        yield from (_invoice_then(row, as_of) for row in invoices.iterator(chunk_size=2000))


def _invoice_then(row: tuple, as_of: date) -> InvoiceThen:
    pk, customer_id, account, name, number, issued, due, currency, open_amount, open_base = row
    return InvoiceThen(
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
