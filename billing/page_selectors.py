"""Reads for the customer page (its account summary's figures, the billing panel, the customer's
paged invoice list) and the write-off desk, in a fixed number of queries.

The panel shows the customer's oldest-due open invoices and the most recent others, payments and
credit notes with what they were applied to and what was refunded, and the write-offs awaiting
approval: seven queries whatever the number of documents, and the tables bounded, so a customer
with thousands of invoices renders as many rows as one with thirty. The customer page's
query-count tests hold it to that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Exists, ExpressionWrapper, F, Prefetch, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing import metrics
from billing.models import CreditNote, CreditNoteAllocation, Invoice, Payment, PaymentAllocation, Refund, WriteOff
from billing.selectors import MONEY_FIELD, events_dated_after, with_balances
from crm import access
from crm.models import Customer
from ledger.money import ZERO, quantize

# The panel is a summary. Its table shows the oldest-due open invoices (what AR chases first) and a
# few recent others; every invoice is on the customer's paged invoice list (customer_invoice_page).
# Those who apply credit or issue credit notes are offered more open invoices in those forms (and
# may open an action under any of them), up to a generous cap.
OPEN_INVOICE_ROWS = 20
OPEN_INVOICE_LIMIT = 100
RECENT_INVOICE_LIMIT = 5
INVOICES_PER_PAGE = 50
RECENT_PAYMENT_LIMIT = 5
PAYMENT_LIMIT = 50
RECENT_CREDIT_NOTE_LIMIT = 5
CREDIT_NOTE_LIMIT = 50
# The write-off desk: every request awaiting a decision, and the latest decisions below them.
RECENT_DECISION_LIMIT = 20


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
    # The write-off request awaiting a Finance Admin's decision, if there is one.
    pending_write_off: WriteOff | None = None

    @property
    def is_open(self) -> bool:
        return self.invoice.status in Invoice.OPEN_STATUSES

    @property
    def is_draft(self) -> bool:
        return self.invoice.status == Invoice.Status.DRAFT

    @property
    def voidable(self) -> bool:
        """Open with nothing applied yet (billing.services.void_invoice's rule)."""
        return self.is_open and self.invoice.open_amount == self.invoice.gross_total

    @property
    def write_off_requestable(self) -> bool:
        return self.is_open and self.pending_write_off is None


@dataclass(frozen=True)
class CreditRow:
    """A payment's or a credit note's row: what it was applied to and refunded, and the
    customer's open invoices its credit may still be applied to."""

    allocatable: list[Invoice] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)

    @property
    def credit(self) -> Payment | CreditNote:
        raise NotImplementedError

    @property
    def suggested_amount(self) -> Decimal | None:
        """What allocating to the first (oldest due) allocatable invoice would apply."""
        if not self.allocatable:
            return None
        return min(self.allocatable[0].open_amount, self.credit.unapplied_amount)

    @property
    def refundable(self) -> bool:
        return self.credit.unapplied_amount > 0


@dataclass(frozen=True)
class PaymentRow(CreditRow):
    payment: Payment | None = None

    @property
    def credit(self) -> Payment:
        return self.payment

    @property
    def refundable(self) -> bool:
        return self.payment.status == Payment.Status.CLEARED and self.payment.unapplied_amount > 0


@dataclass(frozen=True)
class CreditNoteRow(CreditRow):
    credit_note: CreditNote | None = None

    @property
    def credit(self) -> CreditNote:
        return self.credit_note


@dataclass(frozen=True)
class CustomerBilling:
    customer: Customer
    today: date
    invoices: list[InvoiceRow]  # the open ones first
    more_open_invoices: bool
    payments: list[PaymentRow]
    credit_notes: list[CreditNoteRow] = field(default_factory=list)
    pending_write_offs: list[WriteOff] = field(default_factory=list)

    @cached_property
    def balances(self) -> Balances:
        """Read when asked (one query): the panel shows the balance only in the notice after a
        money change; the page's figures are the account summary's."""
        return customer_balances(customer=self.customer, today=self.today)

    @property
    def open_invoices(self) -> list[InvoiceRow]:
        return [row for row in self.invoices if row.is_open]

    def open_invoice_rows(self, *, also: int | None = None) -> list[InvoiceRow]:
        """The table's open invoices: the OPEN_INVOICE_ROWS oldest due, and the one numbered
        `also` (an action opened under it) wherever it comes."""
        rows = self.open_invoices
        return [row for number, row in enumerate(rows) if number < OPEN_INVOICE_ROWS or row.invoice.pk == also]

    @property
    def more_open_invoices_than_shown(self) -> bool:
        return self.more_open_invoices or len(self.open_invoices) > OPEN_INVOICE_ROWS

    @property
    def recent_invoices(self) -> list[InvoiceRow]:
        return [row for row in self.invoices if not row.is_open]

    @property
    def creditable_invoices(self) -> list[Invoice]:
        """The shown invoices a credit note may name: issued ones, open first (not drafts or void)."""
        return [
            row.invoice
            for row in self.invoices
            if row.invoice.status not in (Invoice.Status.DRAFT, Invoice.Status.VOID)
        ]


BALANCE_FIELDS = ("currency", "balance", "overdue", "unapplied_credit", "credit_limit")


def customer_balances(*, customer: Customer, today: date) -> Balances:
    """One query: with_balances on a one-row queryset."""
    row = with_balances(Customer.objects.filter(pk=customer.pk), today=today).values(*BALANCE_FIELDS).get()
    return Balances(**row)


@dataclass(frozen=True)
class CustomerFigures:
    """The account summary's figures: today's balances, DSO and average days late."""

    balances: Balances
    dso: metrics.Dso
    average_days_late: Decimal | None


def customer_figures(*, customer: Customer, today: date) -> CustomerFigures:
    """Balances, DSO and average days late as billing.selectors.with_balances and billing.metrics
    define them, for one customer, in one query: the customer's row joined to its invoices, each
    figure a filtered sum over them, and the probes for events dated after `today` alongside.

    The customer page once asked these in eleven round trips, and its invoice sums as five
    subqueries that each walked the invoices of a customer with thousands of them; one pass reads
    them once. When something is dated after `today` (a past day, or a payment entered for
    tomorrow) DSO's receivables are rebuilt from the dated events by billing.metrics.dso, as the
    balances kept on the invoices are not that day's."""
    is_open = Q(invoices__status__in=Invoice.OPEN_STATUSES)
    # billing.metrics.average_days_late: paid invoices settled in the window, weighted by amount.
    settled = Q(
        invoices__status=Invoice.Status.PAID,
        invoices__due_date__isnull=False,
        invoices__settled_on__lte=today,
        invoices__settled_on__gt=today - timedelta(days=metrics.DAYS_LATE_WINDOW_DAYS),
    )
    days_late = ExpressionWrapper(
        F("invoices__base_gross") * metrics.DaysBetween(F("invoices__settled_on"), F("invoices__due_date")),
        output_field=MONEY_FIELD,
    )
    later = {f"dated_after_{number}": Exists(events) for number, events in enumerate(events_dated_after(today))}
    row = (
        Customer.objects.filter(pk=customer.pk)
        .annotate(
            # billing.selectors.with_balances
            balance=F("ar_balance"),
            unapplied_credit=F("ar_unapplied"),
            overdue=_summed("invoices__open_amount", is_open & Q(invoices__due_date__lt=today)),
            # billing.metrics.dso, read_kept: the open balances kept on the invoices issued by `today`
            receivables=_summed("invoices__open_base", is_open & Q(invoices__issue_date__lte=today)),
            # billing.metrics.dso: credit sales over the period, less what was voided by `today`
            credit_sales=_summed(
                "invoices__base_gross",
                Q(
                    invoices__issue_date__gt=today - timedelta(days=metrics.DSO_PERIOD_DAYS),
                    invoices__issue_date__lte=today,
                )
                & ~Q(invoices__voided_on__lte=today),
            ),
            late_weighted=_summed(days_late, settled),
            late_amount=_summed("invoices__base_gross", settled),
            **later,
        )
        .values(*BALANCE_FIELDS, "receivables", "credit_sales", "late_weighted", "late_amount", *later)
        .get()
    )
    balances = Balances(**{name: row[name] for name in BALANCE_FIELDS})
    if today >= timezone.localdate() and not any(row[name] for name in later):
        dso = metrics.Dso(
            as_of=today,
            period_days=metrics.DSO_PERIOD_DAYS,
            receivables=quantize(row["receivables"]),
            credit_sales=quantize(row["credit_sales"]),
        )
    else:
        dso = metrics.dso(as_of=today, customers=Customer.objects.filter(pk=customer.pk))
    # As billing.metrics.average_days_late_by_customer divides them: both sums are whole cents.
    weighted, amount = quantize(row["late_weighted"]), quantize(row["late_amount"])
    return CustomerFigures(
        balances=balances,
        dso=dso,
        average_days_late=(weighted / amount).quantize(Decimal("0.1")) if amount else None,
    )


def _summed(expression, condition: Q) -> Coalesce:
    return Coalesce(Sum(expression, filter=condition), Value(ZERO), output_field=MONEY_FIELD)


def _days_overdue(invoice: Invoice, today: date) -> int | None:
    if invoice.status not in Invoice.OPEN_STATUSES or invoice.due_date is None or invoice.due_date >= today:
        return None
    return (today - invoice.due_date).days


def customer_invoice_rows(
    *, customer: Customer, today: date, open_limit: int | None = None
) -> tuple[list[InvoiceRow], bool]:
    """Up to `open_limit` open invoices, oldest due first (as auto-allocation takes them:
    billing.services._oldest_due_first), then the most recent others, drafts first: one query
    (UNION ALL of the two, each reading only the rows it returns; two queries on a database that
    cannot limit the parts of a UNION, i.e. SQLite). The flag says there are more open invoices."""
    open_limit = OPEN_INVOICE_ROWS if open_limit is None else open_limit
    invoices = Invoice.objects.filter(customer=customer)
    oldest_due = invoices.filter(status__in=Invoice.OPEN_STATUSES).order_by("due_date", "issue_date", "id")[
        : open_limit + 1
    ]
    recent = invoices.exclude(status__in=Invoice.OPEN_STATUSES).order_by(F("issue_date").desc(nulls_first=True), "-id")[
        :RECENT_INVOICE_LIMIT
    ]
    if connections[invoices.db].features.supports_slicing_ordering_in_compound:
        both = list(oldest_due.union(recent, all=True))
        # A UNION's rows come in no promised order: each part is put back in its own.
        open_invoices = sorted(
            (invoice for invoice in both if invoice.status in Invoice.OPEN_STATUSES), key=_oldest_due_first
        )
        others = sorted((invoice for invoice in both if invoice.status not in Invoice.OPEN_STATUSES), key=_newest_first)
    else:
        open_invoices, others = list(oldest_due), list(recent)
    rows = [InvoiceRow(invoice, _days_overdue(invoice, today)) for invoice in open_invoices[:open_limit]]
    rows += [InvoiceRow(invoice, None) for invoice in others]
    return rows, len(open_invoices) > open_limit


def _oldest_due_first(invoice: Invoice) -> tuple:
    """ORDER BY due_date, issue_date, id (PostgreSQL puts NULLs last)."""
    due, issued = invoice.due_date, invoice.issue_date
    return (due is None, due or date.min, issued is None, issued or date.min, invoice.pk)


def _newest_first(invoice: Invoice) -> tuple:
    """ORDER BY issue_date DESC NULLS FIRST, id DESC."""
    issued = invoice.issue_date
    return (issued is not None, -issued.toordinal() if issued else 0, -invoice.pk)


INVOICE_LIST_FILTERS = ("open", "all")


def customer_invoice_page(*, customer: Customer, today: date, show: str = "open", page: str | int | None = 1):
    """One page of the customer's invoices (INVOICES_PER_PAGE rows, two queries: a count and the
    rows): the open ones oldest due first, as the panel's table starts them, or all of them newest
    first. Rows carry days overdue like the panel's."""
    invoices = Invoice.objects.filter(customer=customer)
    if show == "open":
        invoices = invoices.filter(status__in=Invoice.OPEN_STATUSES).order_by("due_date", "issue_date", "id")
    else:
        invoices = invoices.order_by(F("issue_date").desc(nulls_first=True), "-id")
    result = Paginator(invoices, INVOICES_PER_PAGE).get_page(page)
    result.object_list = [InvoiceRow(invoice, _days_overdue(invoice, today)) for invoice in result.object_list]
    return result


def customer_payments(*, customer: Customer) -> list[Payment]:
    """Payments with unapplied credit and the most recent others, newest first, with their
    allocations (and the invoices): two queries. Refunds come with the credit notes' (refunds_of)."""
    payments = Payment.objects.filter(customer=customer)
    recent = payments.order_by("-received_on", "-id").values("pk")[:RECENT_PAYMENT_LIMIT]
    # A UNION of the two sets of ids, not an OR: PostgreSQL then reads the few payments with credit
    # left from their partial index instead of walking every payment of the customer to test each.
    shown = (
        payments.filter(unapplied_amount__gt=0)
        .order_by()
        .values("pk")
        .union(payments.filter(pk__in=recent).order_by().values("pk"))
    )
    return list(
        payments.filter(pk__in=shown)
        .order_by("-received_on", "-id")
        .prefetch_related(Prefetch("allocations", queryset=PaymentAllocation.objects.select_related("invoice")))[
            :PAYMENT_LIMIT
        ]
    )


def customer_credit_notes(*, customer: Customer) -> list[CreditNote]:
    """Credit notes with unapplied credit and the most recent others, newest first, with the
    invoice each corrects and their allocations (and the invoices): two queries."""
    recent = CreditNote.objects.filter(customer=customer).order_by("-issue_date", "-id").values("pk")
    return list(
        CreditNote.objects.filter(customer=customer)
        .filter(Q(unapplied_amount__gt=0) | Q(pk__in=recent[:RECENT_CREDIT_NOTE_LIMIT]))
        .select_related("invoice")
        .order_by("-issue_date", "-id")
        .prefetch_related(Prefetch("allocations", queryset=CreditNoteAllocation.objects.select_related("invoice")))[
            :CREDIT_NOTE_LIMIT
        ]
    )


def refunds_of(*, payments: list[Payment], credit_notes: list[CreditNote]) -> dict[tuple[str, int], list[Refund]]:
    """The refunds out of these payments and credit notes, oldest first, keyed ("payment", pk) or
    ("credit_note", pk): one query (none when there is neither)."""
    if not payments and not credit_notes:
        return {}
    grouped: dict[tuple[str, int], list[Refund]] = {}
    refunds = Refund.objects.filter(
        Q(payment__in=[payment.pk for payment in payments])
        | Q(credit_note__in=[credit_note.pk for credit_note in credit_notes])
    ).order_by("refunded_on", "id")
    for refund in refunds:
        key = ("payment", refund.payment_id) if refund.payment_id else ("credit_note", refund.credit_note_id)
        grouped.setdefault(key, []).append(refund)
    return grouped


def customer_pending_write_offs(*, customer: Customer) -> list[WriteOff]:
    """The customer's write-off requests awaiting a decision, oldest first: one query."""
    return list(
        WriteOff.objects.filter(invoice__customer=customer, status=WriteOff.Status.REQUESTED)
        .select_related("invoice", "requested_by")
        .order_by("requested_at", "id")
    )


def _allocatable(credit: Payment | CreditNote, open_invoices: list[Invoice]) -> list[Invoice]:
    usable = credit.unapplied_amount > 0 and getattr(credit, "status", Payment.Status.CLEARED) == Payment.Status.CLEARED
    return [invoice for invoice in open_invoices if invoice.currency == credit.currency] if usable else []


def customer_billing(*, customer: Customer, today: date, with_choices: bool = False) -> CustomerBilling:
    """Everything the billing panel shows, in seven queries (fewer when there is nothing to show;
    eight on SQLite): invoices (open ones and recent others, one query), payments and their
    allocations, credit notes and their allocations, the refunds of both, and pending write-offs;
    the balances when asked for.
    `with_choices` (someone who applies credit, issues credit notes or voids) reads up to
    OPEN_INVOICE_LIMIT open invoices to offer in those forms, not only the table's rows."""
    invoices, more_open = customer_invoice_rows(
        customer=customer, today=today, open_limit=OPEN_INVOICE_LIMIT if with_choices else OPEN_INVOICE_ROWS
    )
    pending = customer_pending_write_offs(customer=customer)
    pending_by_invoice = {write_off.invoice_id: write_off for write_off in pending}
    invoices = [
        InvoiceRow(row.invoice, row.days_overdue, pending_write_off=pending_by_invoice.get(row.invoice.pk))
        for row in invoices
    ]
    open_invoices = [row.invoice for row in invoices if row.is_open]
    payments = customer_payments(customer=customer)
    credit_notes = customer_credit_notes(customer=customer)
    refunds = refunds_of(payments=payments, credit_notes=credit_notes)
    return CustomerBilling(
        customer=customer,
        today=today,
        invoices=invoices,
        more_open_invoices=more_open,
        payments=[
            PaymentRow(
                payment=payment,
                allocatable=_allocatable(payment, open_invoices),
                refunds=refunds.get(("payment", payment.pk), []),
            )
            for payment in payments
        ],
        credit_notes=[
            CreditNoteRow(
                credit_note=credit_note,
                allocatable=_allocatable(credit_note, open_invoices),
                refunds=refunds.get(("credit_note", credit_note.pk), []),
            )
            for credit_note in credit_notes
        ],
        pending_write_offs=pending,
    )


def allocatable_invoices(*, payment: Payment | None = None, credit: Payment | CreditNote | None = None):
    """The invoices a payment's or credit note's credit may be applied to: the customer's open ones
    in its currency."""
    credit = credit or payment
    return Invoice.objects.filter(
        customer_id=credit.customer_id, currency=credit.currency, status__in=Invoice.OPEN_STATUSES
    ).order_by("due_date", "issue_date", "id")


def creditable_invoices(*, customer: Customer):
    """The invoices a credit note may name: the customer's issued ones (not drafts, not void)."""
    return Invoice.objects.filter(customer=customer).exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID])


# --- The write-off desk ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    write_off: WriteOff
    # Why it was rejected, as the person deciding (or the void that closed it) said.
    rejection_reason: str = ""


@dataclass(frozen=True)
class WriteOffDesk:
    pending: list[WriteOff]
    decisions: list[Decision]


def _desk_write_offs(user):
    return WriteOff.objects.filter(invoice__customer__in=access.visible_customers(user)).select_related(
        "invoice__customer", "requested_by", "decided_by"
    )


def write_off_desk(*, user, mine: bool = False) -> WriteOffDesk:
    """Requests awaiting a decision (oldest first) and the latest decisions, for the customers
    `user` sees; `mine` keeps only what `user` asked for. Three queries."""
    write_offs = _desk_write_offs(user)
    if mine:
        write_offs = write_offs.filter(requested_by=user)
    pending = list(write_offs.filter(status=WriteOff.Status.REQUESTED).order_by("requested_at", "id"))
    decided = list(
        write_offs.exclude(status=WriteOff.Status.REQUESTED).order_by(F("decided_at").desc(nulls_last=True), "-id")[
            :RECENT_DECISION_LIMIT
        ]
    )
    return WriteOffDesk(pending=pending, decisions=_with_rejection_reasons(decided))


def _with_rejection_reasons(decided: list[WriteOff]) -> list[Decision]:
    """The reason each rejection was given travels as the change reason of the history row that
    recorded it (the write-off has no field for it): one query for all of them."""
    rejected = [write_off.pk for write_off in decided if write_off.status == WriteOff.Status.REJECTED]
    reasons: dict[int, str] = {}
    if rejected:
        rows = (
            WriteOff.history.filter(id__in=rejected, status=WriteOff.Status.REJECTED)
            .exclude(history_change_reason=None)
            .order_by("history_date", "history_id")
            .values_list("id", "history_change_reason")
        )
        reasons = dict(rows)  # the latest row of each wins
    return [Decision(write_off, reasons.get(write_off.pk, "")) for write_off in decided]


def desk_write_off(*, user, write_off_pk) -> WriteOff | None:
    """One write-off of a customer `user` sees (None otherwise), ready for the desk."""
    return _desk_write_offs(user).filter(pk=write_off_pk).first()
