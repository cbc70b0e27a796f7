"""Reads of receivables: customer balances, aging as of any date, open position for ledger_check.

Two kinds of reads, on purpose:
- *current* figures (balance, overdue, unapplied credit) come from the balances kept exact on
  each document by billing.services, for pages that show today;
- *as of a date* figures are rebuilt from dated events (issue, allocation, write-off, void,
  receipt, failure, refund), so that an aging for last June says what was true last June.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import (
    Case,
    CharField,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, NullIf, Round
from django.utils import timezone

from billing.models import CreditNote, CreditNoteAllocation, Invoice, Payment, PaymentAllocation, Refund, WriteOff
from crm.models import Customer
from ledger.money import CENT, ZERO, quantize

MONEY_FIELD = DecimalField(max_digits=18, decimal_places=2)
# Memory for one report read's sorts and hashes (PostgreSQL's default, 4MB, spills the aging's
# per-customer sums of a large book to disk): a few report reads at once fit easily.
REPORT_WORK_MEM = "64MB"
BUCKETS = ("current", "1_30", "31_60", "61_90", "over_90")
BUCKET_LABELS = {"current": "Current", "1_30": "1–30", "31_60": "31–60", "61_90": "61–90", "over_90": "90+"}


def _totals(queryset: QuerySet, *field_names: str) -> list[Decimal]:
    """The sums of money fields over a queryset, in one query, to the cent (on SQLite a sum
    comes back through a float)."""
    sums = queryset.aggregate(
        **{name: Coalesce(Sum(name), Value(ZERO), output_field=MONEY_FIELD) for name in field_names}
    )
    return [quantize(sums[name]) for name in field_names]


def _sum_subquery(queryset: QuerySet, field_name: str, group_by: str) -> Coalesce:
    summed = queryset.order_by().values(group_by).annotate(total=Sum(field_name)).values("total")
    return Coalesce(Subquery(summed, output_field=MONEY_FIELD), Value(ZERO), output_field=MONEY_FIELD)


# --- Today's balances, as customer annotations --------------------------------------------------


def with_balances(customers: QuerySet, *, today: date) -> QuerySet:
    """Annotate customers with `balance`, `open_total`, `unapplied_credit` (customer currency, the
    figures stored on the customer by billing.services), `overdue` (a subquery over the
    customer's open invoices, through the partial index on them) and `credit_used` (balance /
    credit limit, or None without a limit): one query."""
    overdue_invoices = Invoice.objects.filter(
        customer=OuterRef("pk"), status__in=Invoice.OPEN_STATUSES, due_date__lt=today
    )
    return customers.annotate(
        open_total=F("ar_open"),
        unapplied_credit=F("ar_unapplied"),
        balance=F("ar_balance"),
        overdue=_sum_subquery(overdue_invoices, "open_amount", "customer"),
        credit_used=ExpressionWrapper(
            F("ar_balance") / NullIf(F("credit_limit"), Value(ZERO)),
            output_field=DecimalField(max_digits=20, decimal_places=4),
        ),
    )


def receivables_out_of_step() -> list[tuple[int, Decimal, Decimal, Decimal, Decimal]]:
    """Customers whose stored receivables differ from their documents:
    (customer id, stored open, open on its invoices, stored unapplied, unapplied on its credits).
    Three whole-table sums and one pass over the customers with anything stored."""
    open_invoices = Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES)
    actual_open = dict(
        open_invoices.values("customer").annotate(total=Sum("open_amount")).values_list("customer", "total")
    )
    actual_unapplied: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for model in (Payment, CreditNote):
        rows = model.objects.filter(unapplied_amount__gt=0).values("customer").annotate(total=Sum("unapplied_amount"))
        for customer_id, total in rows.values_list("customer", "total"):
            actual_unapplied[customer_id] += quantize(total)
    stored = Customer.objects.exclude(ar_open=0, ar_unapplied=0, ar_balance=0).values_list(
        "pk", "ar_open", "ar_unapplied", "ar_balance"
    )
    out_of_step = []
    seen = set()
    for customer_id, ar_open, ar_unapplied, ar_balance in stored.iterator(chunk_size=5000):
        seen.add(customer_id)
        should_open = quantize(actual_open.get(customer_id) or ZERO)
        should_unapplied = actual_unapplied.get(customer_id, ZERO)
        ar_open, ar_unapplied = quantize(ar_open), quantize(ar_unapplied)
        if (ar_open, ar_unapplied, quantize(ar_balance)) != (should_open, should_unapplied, ar_open - ar_unapplied):
            out_of_step.append((customer_id, ar_open, should_open, ar_unapplied, should_unapplied))
    for customer_id in {*actual_open, *actual_unapplied} - seen:
        should_open, should_unapplied = (
            quantize(actual_open.get(customer_id) or ZERO),
            actual_unapplied.get(customer_id, ZERO),
        )
        if should_open or should_unapplied:
            out_of_step.append((customer_id, ZERO, should_open, ZERO, should_unapplied))
    return out_of_step


def settlement_days_out_of_step() -> int:
    """How many documents' settlement day disagrees with their balance: a settled invoice or a
    used-up credit without one, or an open one with one (the aging would skip it wrongly)."""
    closed = Q(status__in=[Invoice.Status.PAID, Invoice.Status.WRITTEN_OFF])
    invoices = Invoice.objects.filter((closed & Q(settled_on__isnull=True)) | (~closed & Q(settled_on__isnull=False)))
    payments = Payment.objects.exclude(status=Payment.Status.FAILED).filter(
        (Q(unapplied_amount=0) & ~Q(status=Payment.Status.PENDING) & Q(used_up_on__isnull=True))
        | (Q(unapplied_amount__gt=0) & Q(used_up_on__isnull=False))
    )
    # (A credit note that prices to nothing has nothing to use up.)
    notes = CreditNote.objects.filter(
        (Q(unapplied_amount=0) & Q(gross_total__gt=0) & Q(used_up_on__isnull=True))
        | (Q(unapplied_amount__gt=0) & Q(used_up_on__isnull=False))
    )
    return invoices.count() + payments.count() + notes.count()


# --- As of a date ------------------------------------------------------------------------------
#
# The aging is summed in the database: one statement groups, per customer, each bucket's open
# invoices and the unapplied credit, so 1M invoices never cross into Python. The buckets are
# ranges of due dates worked out here (as_of − 30/60/90 days), which reads the same on SQLite and
# PostgreSQL (no date arithmetic in SQL).
#
# Two ways to the amounts, the same figures:
# - as of a past day, from the dated events: base amount less allocations, credits and write-offs
#   dated up to that day, for the documents not settled (or used up) by then;
# - as of today or later with nothing dated after that day, from the balances kept on each
#   document by billing.services (exact then: no later event has moved them).


def _for_customers(queryset: QuerySet, customers: QuerySet | None) -> QuerySet:
    """`queryset` narrowed to the documents of `customers`; every customer (an unfiltered
    queryset, as for Accounts Receivable) narrows nothing, and saves the database a semi-join."""
    if customers is None or (
        customers.model is Customer and not customers.query.where and not customers.query.is_sliced
    ):
        return queryset
    return queryset.filter(customer__in=customers)


def events_dated_after(as_of: date) -> tuple[QuerySet, ...]:
    """The events that move an open balance dated after `as_of`, one queryset per kind (each an
    index probe on the large tables; write-offs and refunds are few). The customer page asks all
    of them in its one figures query (billing.page_selectors.customer_figures)."""
    return (
        PaymentAllocation.objects.filter(allocated_on__gt=as_of),
        CreditNoteAllocation.objects.filter(allocated_on__gt=as_of),
        WriteOff.objects.filter(status=WriteOff.Status.APPROVED, written_off_on__gt=as_of),
        Refund.objects.filter(refunded_on__gt=as_of),
        Payment.objects.filter(failed_on__gt=as_of),
        Invoice.objects.filter(voided_on__gt=as_of),
    )


def _dated_after(as_of: date, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether any event that moves an open balance is dated after `as_of`: if none is, the
    balances kept on the documents are those of `as_of`. One query (an EXISTS per kind): a round
    trip each would cost a report more than the probes do."""
    probes, params = [], []
    for events in events_dated_after(as_of):
        sql, probe_params = events.order_by().values("pk")[:1].query.get_compiler(using=using).as_sql()
        probes.append(f"EXISTS ({sql})")
        params.extend(probe_params)
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {' OR '.join(probes)}", params)
        return bool(cursor.fetchone()[0])


def reads_kept_balances(as_of: date, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether an aging as of `as_of` may read the balances kept on the documents (today or later,
    nothing dated after it) rather than rebuild them from dated events."""
    return as_of >= timezone.localdate() and not _dated_after(as_of, using=using)


def _unsettled_invoices(as_of: date) -> QuerySet:
    """Invoices issued on or before `as_of`, neither voided nor settled by then: the only ones
    with anything open that day (written as ORs, not exclusions, so indexes can serve them)."""
    return Invoice.objects.filter(
        Q(settled_on__isnull=True) | Q(settled_on__gt=as_of),
        Q(voided_on__isnull=True) | Q(voided_on__gt=as_of),
        issue_date__lte=as_of,
    )


def _rounded(expression) -> Round:
    """Rounded to the cent in SQL: SQLite computes differences in floating point, and a fully
    settled document must come out at exactly zero there too."""
    return Round(ExpressionWrapper(expression, output_field=MONEY_FIELD), 2, output_field=MONEY_FIELD)


def _open_base_then(as_of: date) -> Case:
    """What was open on an invoice at the end of `as_of` (base): its base amount less what was
    applied and written off by then. An invoice whose kept balance is still its whole base amount
    never had anything applied or written off (each allocation and write-off takes a non-negative
    part of it), so its sums are not looked up: most invoices open on a past day are such, and a
    CASE evaluates the look-ups only for the others."""
    paid = PaymentAllocation.objects.filter(invoice=OuterRef("pk"), allocated_on__lte=as_of)
    credited = CreditNoteAllocation.objects.filter(invoice=OuterRef("pk"), allocated_on__lte=as_of)
    written_off = WriteOff.objects.filter(
        invoice=OuterRef("pk"), status=WriteOff.Status.APPROVED, written_off_on__lte=as_of
    )
    return Case(
        When(open_base=F("base_gross"), then=F("base_gross")),
        default=_rounded(
            F("base_gross")
            - _sum_subquery(paid, "invoice_base", "invoice")
            - _sum_subquery(credited, "invoice_base", "invoice")
            - _sum_subquery(written_off, "base_amount", "invoice")
        ),
        output_field=MONEY_FIELD,
    )


def invoices_open_as_of(as_of: date, customers: QuerySet | None = None, *, kept: bool = False) -> QuerySet:
    """Invoices issued on or before `as_of` and not voided by then, annotated with what was still
    open on them that day: `open_base_then` (base) and `open_amount_then` (invoice currency).
    `kept`: the caller knows (reads_kept_balances) that the balances kept on them are that day's."""
    if kept:
        open_invoices = Invoice.objects.filter(
            settled_on__isnull=True, status__in=Invoice.OPEN_STATUSES, issue_date__lte=as_of
        ).exclude(open_amount=0)
        return _for_customers(open_invoices, customers).annotate(
            open_base_then=F("open_base"), open_amount_then=F("open_amount")
        )
    paid = PaymentAllocation.objects.filter(invoice=OuterRef("pk"), allocated_on__lte=as_of)
    credited = CreditNoteAllocation.objects.filter(invoice=OuterRef("pk"), allocated_on__lte=as_of)
    written_off = WriteOff.objects.filter(
        invoice=OuterRef("pk"), status=WriteOff.Status.APPROVED, written_off_on__lte=as_of
    )
    return (
        _for_customers(_unsettled_invoices(as_of), customers)
        .annotate(
            open_base_then=_open_base_then(as_of),
            # As in _open_base_then: an invoice still open for its whole amount had nothing applied.
            open_amount_then=Case(
                When(open_amount=F("gross_total"), then=F("gross_total")),
                default=_rounded(
                    F("gross_total")
                    - _sum_subquery(paid, "amount", "invoice")
                    - _sum_subquery(credited, "amount", "invoice")
                    - _sum_subquery(written_off, "amount", "invoice")
                ),
                output_field=MONEY_FIELD,
            ),
        )
        .filter(~Q(open_amount_then=0))
    )


def bucket_ranges(as_of: date) -> dict[str, Q]:
    """Each bucket as a range of due dates: days overdue = as_of − due date (see bucket_for)."""
    day_30, day_60, day_90 = (as_of - timedelta(days=days) for days in (30, 60, 90))
    return {
        "current": Q(due_date__gte=as_of),
        "1_30": Q(due_date__lt=as_of, due_date__gte=day_30),
        "31_60": Q(due_date__lt=day_30, due_date__gte=day_60),
        "61_90": Q(due_date__lt=day_60, due_date__gte=day_90),
        "over_90": Q(due_date__lt=day_90),
    }


# The per-customer columns of the aging statement, in order: the buckets, then unapplied credit.
AGING_COLUMNS = (*(f"bucket_{bucket}" for bucket in BUCKETS), "unapplied")
UNAPPLIED = "unapplied"


def _amounts(queryset: QuerySet, customers: QuerySet | None, *, bucket, amount) -> QuerySet:
    """One row per document: its customer, where its amount goes (a bucket, or UNAPPLIED) and the
    amount (base currency). Each document's amount is worked out once, in that row."""
    return (
        _for_customers(queryset, customers)
        .order_by()
        .values("customer_id", aging_bucket=bucket, aging_amount=ExpressionWrapper(amount, output_field=MONEY_FIELD))
    )


def _invoice_amounts(queryset: QuerySet, customers: QuerySet | None, *, as_of: date, amount) -> QuerySet:
    bucket = Case(
        *(When(due, then=Value(bucket)) for bucket, due in bucket_ranges(as_of).items()), output_field=CharField()
    )
    return _amounts(queryset, customers, bucket=bucket, amount=amount)


def _credit_amounts(queryset: QuerySet, customers: QuerySet | None, *, amount) -> QuerySet:
    return _amounts(queryset, customers, bucket=Value(UNAPPLIED, output_field=CharField()), amount=amount)


def _invoices_open(as_of: date, customers: QuerySet | None, *, kept: bool) -> list[QuerySet]:
    """The invoices open on `as_of` with their bucket. Invoices not settled yet and those settled
    after `as_of` are read apart, each through its own index (an OR of the two could not be read
    from the indexes alone)."""
    unsettled = Invoice.objects.filter(settled_on__isnull=True, issue_date__lte=as_of)
    if kept:
        open_invoices = unsettled.filter(status__in=Invoice.OPEN_STATUSES)
        return [_invoice_amounts(open_invoices, customers, as_of=as_of, amount=F("open_base"))]
    not_voided = Q(voided_on__isnull=True) | Q(voided_on__gt=as_of)
    settled_later = Invoice.objects.filter(settled_on__gt=as_of, issue_date__lte=as_of)
    return [
        _invoice_amounts(invoices.filter(not_voided), customers, as_of=as_of, amount=_open_base_then(as_of))
        for invoices in (unsettled, settled_later)
    ]


def _payments_unused(as_of: date, customers: QuerySet | None, *, kept: bool) -> list[QuerySet]:
    """Payments' credit not yet applied or refunded on `as_of`: those not used up yet, and those
    used up after `as_of` (apart, as for the invoices)."""
    received = Q(Q(failed_on__isnull=True) | Q(failed_on__gt=as_of), entry__isnull=False, received_on__lte=as_of)
    unused = Payment.objects.filter(received, used_up_on__isnull=True)
    if kept:
        return [_credit_amounts(unused.filter(unapplied_base__gt=0), customers, amount=F("unapplied_base"))]
    allocated = PaymentAllocation.objects.filter(payment=OuterRef("pk"), allocated_on__lte=as_of)
    refunded = Refund.objects.filter(payment=OuterRef("pk"), refunded_on__lte=as_of)
    left = _rounded(
        F("base_amount")
        - _sum_subquery(allocated, "credit_base", "payment")
        - _sum_subquery(refunded, "carrying_base", "payment")
    )
    used_up_later = Payment.objects.filter(received, used_up_on__gt=as_of)
    return [_credit_amounts(payments, customers, amount=left) for payments in (unused, used_up_later)]


def _credit_notes_unused(as_of: date, customers: QuerySet | None, *, kept: bool) -> list[QuerySet]:
    """Credit notes' credit not yet applied or refunded on `as_of` (a few thousand: one read)."""
    notes = CreditNote.objects.filter(issue_date__lte=as_of)
    if kept:
        return [_credit_amounts(notes.filter(unapplied_base__gt=0), customers, amount=F("unapplied_base"))]
    allocated = CreditNoteAllocation.objects.filter(credit_note=OuterRef("pk"), allocated_on__lte=as_of)
    refunded = Refund.objects.filter(credit_note=OuterRef("pk"), refunded_on__lte=as_of)
    left = _rounded(
        F("base_gross")
        - _sum_subquery(allocated, "credit_base", "credit_note")
        - _sum_subquery(refunded, "carrying_base", "credit_note")
    )
    unused = notes.filter(Q(used_up_on__isnull=True) | Q(used_up_on__gt=as_of))
    return [_credit_amounts(unused, customers, amount=left)]


@dataclass(frozen=True)
class AgingStatement:
    """The aging as one SQL statement with its parameters: a row per customer that owed something
    or held credit that day — `customer_id`, then AGING_COLUMNS (base currency). Callers wrap it
    (join the customers, sort, page, group by owner) rather than load every row."""

    sql: str
    params: tuple


def aging_statement(
    *, as_of: date, customers: QuerySet | None = None, kept: bool | None = None, using: str = DEFAULT_DB_ALIAS
) -> AgingStatement:
    """The documents with anything open on `as_of` (invoices with their bucket, payments and
    credit notes with credit left), each read compiled by the ORM, stacked with UNION ALL and
    summed per customer in one pass. `kept`: read the balances kept on the documents (default:
    reads_kept_balances(as_of), which costs a few index probes)."""
    if kept is None:
        kept = reads_kept_balances(as_of, using=using)
    parts, params = [], []
    for reads in (_invoices_open, _payments_unused, _credit_notes_unused):
        for queryset in reads(as_of, customers, kept=kept):
            sql, part_params = queryset.query.get_compiler(using=using).as_sql()
            parts.append(sql)
            params.extend(part_params)
    # Each column sums only its own documents (FILTER: one addition per document, not one per
    # column), rounded to the cent once more: on SQLite the sums of the documents' amounts are floats.
    summed = ", ".join(
        f"ROUND(COALESCE(SUM(parts.aging_amount) FILTER (WHERE parts.aging_bucket = %s), 0), 2) AS {column}"
        for column in AGING_COLUMNS
    )
    sql = (
        f"SELECT parts.customer_id, {summed} FROM ({' UNION ALL '.join(parts)}) parts "  # noqa: S608 — compiled by the ORM
        # A customer whose documents all come to zero that day has no row.
        "GROUP BY parts.customer_id HAVING COUNT(*) FILTER (WHERE parts.aging_amount <> 0) > 0"
    )
    return AgingStatement(sql=sql, params=(*[*BUCKETS, UNAPPLIED], *params))


@contextmanager
def report_cursor(*, using: str = DEFAULT_DB_ALIAS, server_side: bool = False) -> Iterator:
    """A cursor for the aging statement (and the reads wrapped around it), in a transaction of its
    own. On PostgreSQL, a server-side cursor when `server_side` (rows come in chunks, whatever their
    number), and no JIT compilation: the statement's correlated sums make the planner's cost
    estimate large enough to compile it, which takes longer than running it (seconds, for nothing)."""
    connection = connections[using]
    with report_transaction(using=using):
        cursor = connection.chunked_cursor() if server_side else connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()


@contextmanager
def report_transaction(*, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """A transaction for a long report read, without JIT compilation on PostgreSQL (see
    report_cursor) and with REPORT_WORK_MEM for its sorts and hashes; a queryset's iterator() in
    it reads through a server-side cursor."""
    connection = connections[using]
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # For this transaction only (or, inside a caller's transaction, until its end):
                # set_config(…, true) is SET LOCAL, both in one round trip.
                cursor.execute(
                    "SELECT set_config('jit', 'off', true), set_config('work_mem', %s, true)", [REPORT_WORK_MEM]
                )
        yield


def fetched(cursor, *, chunk_size: int = 2000) -> Iterator[tuple]:
    """The cursor's rows, `chunk_size` at a time from the database."""
    while rows := cursor.fetchmany(chunk_size):
        yield from rows


def money(value) -> Decimal:
    """A sum read back from raw SQL, to the cent (SQLite hands a float back, PostgreSQL a Decimal)."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value.quantize(CENT, rounding=ROUND_HALF_UP)
    return quantize(Decimal(str(value)))


def bucket_for(days_overdue: int) -> str:
    if days_overdue <= 0:
        return "current"
    if days_overdue <= 30:
        return "1_30"
    if days_overdue <= 60:
        return "31_60"
    if days_overdue <= 90:
        return "61_90"
    return "over_90"


@dataclass
class AgingRow:
    customer_id: int
    buckets: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(BUCKETS, ZERO))
    unapplied: Decimal = ZERO

    @property
    def open_total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)

    @property
    def total(self) -> Decimal:
        """What the customer owed that day: open invoices less unapplied credit."""
        return self.open_total - self.unapplied


@dataclass
class AgingReport:
    as_of: date
    rows: dict[int, AgingRow]

    def totals(self) -> AgingRow:
        combined = AgingRow(customer_id=0)
        for row in self.rows.values():
            for bucket in BUCKETS:
                combined.buckets[bucket] += row.buckets[bucket]
            combined.unapplied += row.unapplied
        return combined

    @property
    def total(self) -> Decimal:
        return self.totals().total


def aging(
    *, as_of: date, customers: QuerySet | None = None, kept: bool | None = None, using: str = DEFAULT_DB_ALIAS
) -> AgingReport:
    """Receivables by days past due on `as_of` (base currency), as they stood that day: the
    aging statement's rows, one query (after reads_kept_balances's probes; `kept` as there).
    `using`: the database to read (the report pages pass config.databases.reports_database();
    ledger_check compares with the primary's ledger, so it reads the primary, the default)."""
    statement = aging_statement(as_of=as_of, customers=customers, kept=kept, using=using)
    rows: dict[int, AgingRow] = {}
    # PostgreSQL hands back Decimals already to the cent (ROUND(…, 2)), taken as they are (a
    # large book has tens of thousands of rows); SQLite floats.
    postgres = connections[using].vendor == "postgresql"
    with report_cursor(using=using) as cursor:
        cursor.execute(statement.sql, statement.params)
        for customer_id, *amounts in cursor.fetchall():
            *buckets, unapplied = amounts if postgres else map(money, amounts)
            rows[customer_id] = AgingRow(customer_id, dict(zip(BUCKETS, buckets, strict=True)), unapplied)
    return AgingReport(as_of=as_of, rows=rows)


@dataclass(frozen=True)
class OpenPosition:
    """Receivables at the end of a day, summed document by document (base currency)."""

    open_invoices: Decimal
    unapplied_credit: Decimal

    @property
    def net(self) -> Decimal:
        return self.open_invoices - self.unapplied_credit


def open_position(*, as_of: date) -> OpenPosition:
    """Totals computed from whole-table sums, independently of the aging's per-invoice walk."""
    [issued] = _totals(Invoice.objects.filter(issue_date__lte=as_of).exclude(voided_on__lte=as_of), "base_gross")
    received_then = Payment.objects.filter(entry__isnull=False, received_on__lte=as_of).exclude(failed_on__lte=as_of)
    [received] = _totals(received_then, "base_amount")
    [credited] = _totals(CreditNote.objects.filter(issue_date__lte=as_of), "base_gross")
    payments_applied = PaymentAllocation.objects.filter(allocated_on__lte=as_of)
    paid_on_invoices, paid_from_credit = _totals(payments_applied, "invoice_base", "credit_base")
    notes_applied = CreditNoteAllocation.objects.filter(allocated_on__lte=as_of)
    credited_on_invoices, credited_from_credit = _totals(notes_applied, "invoice_base", "credit_base")
    [written_off] = _totals(WriteOff.objects.filter(status="approved", written_off_on__lte=as_of), "base_amount")
    [refunded] = _totals(Refund.objects.filter(refunded_on__lte=as_of), "carrying_base")
    open_invoices = issued - paid_on_invoices - credited_on_invoices - written_off
    unapplied = received + credited - paid_from_credit - credited_from_credit - refunded
    return OpenPosition(open_invoices=open_invoices, unapplied_credit=unapplied)


def stored_open_position() -> OpenPosition:
    """Today's position from the balances kept on each document (what the pages show)."""
    [open_invoices] = _totals(Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES), "open_base")
    [on_payments] = _totals(Payment.objects.all(), "unapplied_base")
    [on_credit_notes] = _totals(CreditNote.objects.all(), "unapplied_base")
    unapplied = on_payments + on_credit_notes
    return OpenPosition(open_invoices=open_invoices, unapplied_credit=unapplied)
