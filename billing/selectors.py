"""Reads of receivables: customer balances, aging as of any date, open position for ledger_check.

Two kinds of reads, on purpose:
- *current* figures (balance, overdue, unapplied credit) come from the balances kept exact on
  each document by billing.services, for pages that show today;
- *as of a date* figures are rebuilt from dated events (issue, allocation, write-off, void,
  receipt, failure, refund), so that an aging for last June says what was true last June.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, NullIf, Round

from billing.models import CreditNote, CreditNoteAllocation, Invoice, Payment, PaymentAllocation, Refund, WriteOff
from crm.models import Customer
from ledger.money import ZERO, quantize

MONEY_FIELD = DecimalField(max_digits=18, decimal_places=2)
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
    notes = CreditNote.objects.filter(
        (Q(unapplied_amount=0) & Q(used_up_on__isnull=True)) | (Q(unapplied_amount__gt=0) & Q(used_up_on__isnull=False))
    )
    return invoices.count() + payments.count() + notes.count()


# --- As of a date ------------------------------------------------------------------------------


def invoices_open_as_of(as_of: date, customers: QuerySet | None = None) -> QuerySet:
    """Invoices issued on or before `as_of` and not voided by then, annotated with what was still
    open on them that day: `open_base_then` (base) and `open_amount_then` (invoice currency).

    The differences are rounded to the cent in SQL: SQLite computes them in floating point, and a
    fully settled invoice must come out at exactly zero there too."""
    invoices = (
        Invoice.objects.filter(issue_date__lte=as_of)
        .exclude(voided_on__lte=as_of)
        # Settled by then (and so ever since): nothing to read.
        .exclude(settled_on__lte=as_of)
    )
    if customers is not None:
        invoices = invoices.filter(customer__in=customers)
    paid = PaymentAllocation.objects.filter(invoice=OuterRef("pk"), allocated_on__lte=as_of)
    credited = CreditNoteAllocation.objects.filter(invoice=OuterRef("pk"), allocated_on__lte=as_of)
    written_off = WriteOff.objects.filter(
        invoice=OuterRef("pk"), status=WriteOff.Status.APPROVED, written_off_on__lte=as_of
    )
    return invoices.annotate(
        open_base_then=Round(
            ExpressionWrapper(
                F("base_gross")
                - _sum_subquery(paid, "invoice_base", "invoice")
                - _sum_subquery(credited, "invoice_base", "invoice")
                - _sum_subquery(written_off, "base_amount", "invoice"),
                output_field=MONEY_FIELD,
            ),
            2,
        ),
        open_amount_then=Round(
            ExpressionWrapper(
                F("gross_total")
                - _sum_subquery(paid, "amount", "invoice")
                - _sum_subquery(credited, "amount", "invoice")
                - _sum_subquery(written_off, "amount", "invoice"),
                output_field=MONEY_FIELD,
            ),
            2,
        ),
    ).filter(~Q(open_amount_then=0))


def _unapplied_then(as_of: date, customers: QuerySet | None) -> dict[int, Decimal]:
    """Each customer's unapplied credit (base currency) at the end of `as_of`."""
    payments = (
        Payment.objects.filter(entry__isnull=False, received_on__lte=as_of)
        .exclude(failed_on__lte=as_of)
        .exclude(used_up_on__lte=as_of)
    )
    notes = CreditNote.objects.filter(issue_date__lte=as_of).exclude(used_up_on__lte=as_of)
    if customers is not None:
        payments, notes = payments.filter(customer__in=customers), notes.filter(customer__in=customers)
    used_by_payment_allocs = PaymentAllocation.objects.filter(payment=OuterRef("pk"), allocated_on__lte=as_of)
    used_by_note_allocs = CreditNoteAllocation.objects.filter(credit_note=OuterRef("pk"), allocated_on__lte=as_of)
    payment_refunds = Refund.objects.filter(payment=OuterRef("pk"), refunded_on__lte=as_of)
    note_refunds = Refund.objects.filter(credit_note=OuterRef("pk"), refunded_on__lte=as_of)
    totals: dict[int, Decimal] = defaultdict(lambda: ZERO)
    rows = payments.annotate(
        left=F("base_amount")
        - _sum_subquery(used_by_payment_allocs, "credit_base", "payment")
        - _sum_subquery(payment_refunds, "carrying_base", "payment")
    ).values_list("customer_id", "left")
    for customer_id, left in rows:
        totals[customer_id] += quantize(left)
    rows = notes.annotate(
        left=F("base_gross")
        - _sum_subquery(used_by_note_allocs, "credit_base", "credit_note")
        - _sum_subquery(note_refunds, "carrying_base", "credit_note")
    ).values_list("customer_id", "left")
    for customer_id, left in rows:
        totals[customer_id] += quantize(left)
    return {customer_id: total for customer_id, total in totals.items() if total}


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


def aging(*, as_of: date, customers: QuerySet | None = None) -> AgingReport:
    """Receivables by days past due on `as_of` (base currency), as they stood that day."""
    rows: dict[int, AgingRow] = {}
    open_then = invoices_open_as_of(as_of, customers).values_list("customer_id", "due_date", "open_base_then")
    for customer_id, due_date, open_base in open_then:
        row = rows.setdefault(customer_id, AgingRow(customer_id))
        row.buckets[bucket_for((as_of - due_date).days)] += quantize(open_base)
    for customer_id, unapplied in _unapplied_then(as_of, customers).items():
        rows.setdefault(customer_id, AgingRow(customer_id)).unapplied = unapplied
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
