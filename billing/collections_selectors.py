"""Reads for collecting: promises in force, the AR worklist and the customer's Collections panel.

A *live* promise is an open one whose date has not passed (`promised_on ≥ as_of`): it keeps its
invoices out of dunning and low on the worklist. An open promise whose date has passed is waiting
for the nightly settlement (billing.collections.settle_due_promises) and protects nothing.

Every read here takes a bounded number of queries, whatever the number of rows: the worklist
pages in the database (ranked there), and what a row shows beyond the invoice (its live promise,
last letter, last contact) is annotated as one id per row, then fetched in one query per kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    Count,
    DateField,
    DecimalField,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.functions import Lag

from billing.models import DunningLetter, Invoice, PromiseInvoice, PromiseToPay
from crm.models import Activity, Customer
from crm.roles import Role
from ledger.money import ZERO

# --- Promises ----------------------------------------------------------------------------------


def live_promises(as_of: date) -> QuerySet[PromiseToPay]:
    """Open promises whose date has not passed on `as_of`."""
    return PromiseToPay.objects.filter(status=PromiseToPay.Status.OPEN, promised_on__gte=as_of)


def invoices_under_live_promise(as_of: date) -> QuerySet[Invoice]:
    """Invoices covered by a live promise on `as_of` (dunning leaves them alone until it is due)."""
    promised = PromiseInvoice.objects.filter(promise__in=live_promises(as_of)).values("invoice_id")
    return Invoice.objects.filter(pk__in=promised)


# --- The worklist ------------------------------------------------------------------------------

WORKLIST_TABS = ("chase", "disputed")
SCORE_FIELD = DecimalField(max_digits=24, decimal_places=2)
# Contact a person made with the customer (letters and promise bookkeeping are the system's).
CONTACT_KINDS = (Activity.Kind.CALL, Activity.Kind.EMAIL, Activity.Kind.MEETING)


class DaysFrom(Func):
    """Whole days from the date expression to `day` (positive when the expression is earlier).

    Date arithmetic is the one thing SQLite and PostgreSQL spell differently: PostgreSQL
    subtracts dates to an integer; SQLite goes through Julian day numbers."""

    output_field = IntegerField()
    arg_joiner = " - "
    template = "(%(expressions)s)"

    def __init__(self, expression, *, day: date):
        super().__init__(Value(day, output_field=DateField()), expression)

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="CAST(julianday(%(expressions)s) AS INTEGER)",
            arg_joiner=") - julianday(",
            **extra,
        )


@dataclass(frozen=True)
class WorklistFilters:
    tab: str = "chase"  # "chase": not disputed; "disputed": the disputed ones, apart
    collector: str = ""  # "" anyone, "me", "unassigned"
    currency: str = ""
    min_open_base: Decimal | None = None  # base currency


@dataclass(frozen=True)
class WorklistRow:
    invoice: Invoice  # with customer and customer.collector
    days_overdue: int
    score: Decimal  # open (base) × days overdue: what the ranking sorts by
    customer_broke_promise: bool  # the customer's latest promise was broken
    live_promise: PromiseToPay | None
    last_letter: DunningLetter | None  # the highest level sent for the invoice
    last_contact: Activity | None  # the customer's latest call, e-mail or meeting

    @property
    def customer(self) -> Customer:
        return self.invoice.customer

    @property
    def under_promise(self) -> bool:
        return self.live_promise is not None


def overdue_invoices(*, today: date) -> QuerySet[Invoice]:
    """Issued invoices with something still open, past their due date on `today`."""
    return Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES, open_amount__gt=0, due_date__lt=today)


def _filtered(invoices: QuerySet[Invoice], *, user, filters: WorklistFilters) -> QuerySet[Invoice]:
    if filters.collector == "me":
        invoices = invoices.filter(customer__collector=user)
    elif filters.collector == "unassigned":
        invoices = invoices.filter(customer__collector__isnull=True)
    if filters.currency:
        invoices = invoices.filter(currency=filters.currency)
    if filters.min_open_base is not None:
        invoices = invoices.filter(open_base__gte=filters.min_open_base)
    return invoices


def worklist_tab_counts(*, user, filters: WorklistFilters, today: date) -> dict[str, int]:
    """How many invoices each tab holds under the other filters: one query."""
    counts = _filtered(overdue_invoices(today=today), user=user, filters=filters).aggregate(
        chase=Count("pk", filter=Q(disputed=False)), disputed=Count("pk", filter=Q(disputed=True))
    )
    return counts


def worklist_invoices(*, user, filters: WorklistFilters, today: date) -> QuerySet[Invoice]:
    """The worklist's invoices in rank order, annotated for `worklist_rows`.

    To chase: invoices under a live promise go last (they are being paid); before them, the
    customers whose latest promise was broken; within each group, open amount (base currency) ×
    days overdue, largest first. The disputed tab ranks by amount × days only: those invoices
    wait for a decision, not a call."""
    invoices = _filtered(overdue_invoices(today=today), user=user, filters=filters)
    invoices = invoices.filter(disputed=filters.tab == "disputed")
    latest_promise = (
        PromiseToPay.objects.filter(customer=OuterRef("customer_id"))
        .exclude(status=PromiseToPay.Status.CANCELLED)
        .order_by("-id")
        .values("status")[:1]
    )
    live_promise = (
        PromiseInvoice.objects.filter(invoice=OuterRef("pk"), promise__in=live_promises(today))
        .order_by("promise__promised_on", "promise_id")
        .values("promise_id")[:1]
    )
    last_letter = (
        DunningLetter.objects.filter(invoice=OuterRef("pk"), status=DunningLetter.Status.SENT)
        .order_by("-level__level", "-sent_at")
        .values("pk")[:1]
    )
    last_contact = (
        Activity.objects.filter(customer=OuterRef("customer_id"), kind__in=CONTACT_KINDS)
        .order_by("-occurred_at", "-id")
        .values("pk")[:1]
    )
    invoices = invoices.annotate(
        days_overdue=DaysFrom(F("due_date"), day=today),
        latest_promise_status=Subquery(latest_promise),
        live_promise_id=Subquery(live_promise),
        last_letter_id=Subquery(last_letter),
        last_contact_id=Subquery(last_contact),
    ).annotate(
        score=ExpressionWrapper(F("open_base") * F("days_overdue"), output_field=SCORE_FIELD),
        broke_promise=Case(When(latest_promise_status=PromiseToPay.Status.BROKEN, then=Value(1)), default=Value(0)),
        under_promise=Case(When(live_promise_id__isnull=False, then=Value(1)), default=Value(0)),
    )
    if filters.tab == "disputed":
        ordering = [F("score").desc(), "due_date", "pk"]
    else:
        ordering = ["under_promise", F("broke_promise").desc(), F("score").desc(), "due_date", "pk"]
    return invoices.select_related("customer__collector").order_by(*ordering)


def worklist_rows(invoices: list[Invoice]) -> list[WorklistRow]:
    """Rows for one page of `worklist_invoices`: three queries (promises, letters, contacts)."""
    promises = PromiseToPay.objects.in_bulk({i.live_promise_id for i in invoices if i.live_promise_id})
    letters = DunningLetter.objects.select_related("level").in_bulk(
        {i.last_letter_id for i in invoices if i.last_letter_id}
    )
    contacts = Activity.objects.select_related("actor").in_bulk(
        {i.last_contact_id for i in invoices if i.last_contact_id}
    )
    return [
        WorklistRow(
            invoice=invoice,
            days_overdue=invoice.days_overdue,
            score=invoice.score,
            customer_broke_promise=bool(invoice.broke_promise),
            live_promise=promises.get(invoice.live_promise_id),
            last_letter=letters.get(invoice.last_letter_id),
            last_contact=contacts.get(invoice.last_contact_id),
        )
        for invoice in invoices
    ]


def worklist_currencies(*, today: date) -> list[str]:
    return list(overdue_invoices(today=today).order_by("currency").values_list("currency", flat=True).distinct())


COLLECTOR_ROLES = (Role.ACCOUNTS_RECEIVABLE.value, Role.FINANCE_ADMIN.value)


def collectors() -> QuerySet:
    """The people a customer may be given to for collecting: active accounts receivable staff
    (and Finance Admins, who may work the desk too; crm.services.assign_collector allows both)."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=COLLECTOR_ROLES)
        .order_by("first_name", "last_name", "username")
        .distinct()
    )


# --- The customer's Collections panel ----------------------------------------------------------

PROMISE_LIMIT = 20
LETTER_LIMIT = 20
DISPUTE_EVENT_LIMIT = 40
OPEN_INVOICE_LIMIT = 100


@dataclass(frozen=True)
class PromiseLine:
    invoice: Invoice
    open_when_promised: Decimal


@dataclass(frozen=True)
class PromiseRow:
    promise: PromiseToPay
    lines: list[PromiseLine]

    @property
    def is_live(self) -> bool:
        return self.promise.status == PromiseToPay.Status.OPEN


@dataclass(frozen=True)
class DisputeEpisode:
    """One dispute of an invoice, read from the invoice's history."""

    invoice_id: int
    number: str
    reason: str
    opened_at: datetime
    opened_by: str
    resolved_at: datetime | None = None
    resolved_by: str = ""
    resolution: str = ""  # the change reason the resolving service wrote (shortened)


@dataclass(frozen=True)
class PromiseRecord:
    """How the customer keeps their word: settled promises, and the share of promised money paid."""

    kept: int
    broken: int
    promised: Decimal
    paid: Decimal

    @property
    def settled(self) -> int:
        return self.kept + self.broken

    @property
    def kept_ratio(self) -> Decimal | None:
        if not self.promised:
            return None
        return min(Decimal(1), self.paid / self.promised)

    @property
    def kept_percent(self) -> int | None:
        ratio = self.kept_ratio
        return None if ratio is None else int((ratio * 100).to_integral_value())


@dataclass
class CustomerCollections:
    customer: Customer
    collector: object | None  # a user
    promises: list[PromiseRow]
    open_invoices: list[Invoice]  # issued and still open, oldest due first
    disputed_invoices: list[Invoice]  # disputed now, whatever their status
    resolved_disputes: list[DisputeEpisode]
    letters: list[DunningLetter]
    record: PromiseRecord = field(default_factory=lambda: PromiseRecord(0, 0, ZERO, ZERO))

    @property
    def open_promises(self) -> list[PromiseRow]:
        return [row for row in self.promises if row.is_live]

    @property
    def settled_promises(self) -> list[PromiseRow]:
        return [row for row in self.promises if not row.is_live]

    @property
    def promised_invoice_ids(self) -> set[int]:
        """Invoices under an open promise: a new promise on them is refused until it is settled."""
        return {line.invoice.pk for row in self.open_promises for line in row.lines}

    @property
    def undisputed_open_invoices(self) -> list[Invoice]:
        return [invoice for invoice in self.open_invoices if not invoice.disputed]


def customer_promises(*, customer: Customer, limit: int = PROMISE_LIMIT) -> list[PromiseRow]:
    """The customer's latest promises (open ones first) with their invoices: one query."""
    latest = (
        PromiseToPay.objects.filter(customer=customer)
        .order_by(Case(When(status=PromiseToPay.Status.OPEN, then=Value(0)), default=Value(1)), "-promised_on", "-id")
        .values("pk")[:limit]
    )
    lines = (
        PromiseInvoice.objects.filter(promise__in=Subquery(latest))
        .select_related("promise", "invoice")
        .order_by("invoice__due_date", "invoice_id")
    )
    rows: dict[int, PromiseRow] = {}
    for line in lines:
        row = rows.setdefault(line.promise_id, PromiseRow(line.promise, []))
        row.lines.append(PromiseLine(line.invoice, line.open_when_promised))
    open_first = {PromiseToPay.Status.OPEN: 0}
    return sorted(
        rows.values(),
        key=lambda row: (open_first.get(row.promise.status, 1), -row.promise.promised_on.toordinal(), -row.promise.pk),
    )


def promise_record(promises: list[PromiseRow]) -> PromiseRecord:
    settled = [row.promise for row in promises if row.promise.status in ("kept", "broken")]
    return PromiseRecord(
        kept=sum(1 for promise in settled if promise.status == PromiseToPay.Status.KEPT),
        broken=sum(1 for promise in settled if promise.status == PromiseToPay.Status.BROKEN),
        promised=sum((promise.amount for promise in settled), ZERO),
        paid=sum((min(promise.paid_amount, promise.amount) for promise in settled), ZERO),
    )


def dispute_episodes(*, customer: Customer, limit: int = DISPUTE_EVENT_LIMIT) -> list[DisputeEpisode]:
    """Each dispute of the customer's invoices, newest first, from the invoices' history: the
    history rows where the flag changed (found with a window function, in one query)."""
    history = Invoice.history.filter(customer_id=customer.pk)
    # Only an invoice that was ever disputed has a flip: the window then reads those invoices'
    # history rows alone, not every row of a customer with thousands of invoices.
    history = history.filter(id__in=history.filter(disputed=True).values("id"))
    flips = (
        history.annotate(
            was_disputed=Window(
                Lag("disputed", default=Value(False)),
                partition_by=[F("id")],
                order_by=[F("history_date").asc(), F("history_id").asc()],
            )
        )
        .exclude(disputed=F("was_disputed"))
        .order_by("id", "history_date", "history_id")
    )
    episodes: list[DisputeEpisode] = []
    open_episode: dict[int, DisputeEpisode] = {}
    rows = flips.values(
        "id",
        "number",
        "disputed",
        "dispute_reason",
        "history_date",
        "history_change_reason",
        "history_user__username",
        "history_user__first_name",
        "history_user__last_name",
    )
    for row in rows:
        who = _person(row)
        if row["disputed"]:
            open_episode[row["id"]] = DisputeEpisode(
                invoice_id=row["id"],
                number=row["number"] or "",
                reason=row["dispute_reason"],
                opened_at=row["history_date"],
                opened_by=who,
            )
            continue
        opened = open_episode.pop(row["id"], None)
        if opened is None:
            continue
        episodes.append(
            DisputeEpisode(
                invoice_id=opened.invoice_id,
                number=opened.number,
                reason=opened.reason,
                opened_at=opened.opened_at,
                opened_by=opened.opened_by,
                resolved_at=row["history_date"],
                resolved_by=who,
                resolution=_resolution_from(row["history_change_reason"]),
            )
        )
    episodes.sort(key=lambda episode: episode.resolved_at, reverse=True)
    return episodes[:limit]


RESOLVED_PREFIX = "Dispute resolved: "


def _person(row: dict) -> str:
    full_name = f"{row['history_user__first_name'] or ''} {row['history_user__last_name'] or ''}".strip()
    return full_name or row["history_user__username"] or "someone"


def _resolution_from(change_reason: str | None) -> str:
    if change_reason and change_reason.startswith(RESOLVED_PREFIX):
        return change_reason[len(RESOLVED_PREFIX) :]
    return ""


def customer_collections(*, customer: Customer, with_open_invoices: bool = True) -> CustomerCollections:
    """Everything the Collections panel shows, in four queries (five with a collector the customer
    was not read with). `with_open_invoices` reads the open invoices the promise and dispute forms
    offer; without it (someone who cannot use those forms) only the disputed ones are read."""
    promises = customer_promises(customer=customer)
    shown = Q(disputed=True)
    if with_open_invoices:
        shown |= Q(status__in=Invoice.OPEN_STATUSES)
    invoices = list(
        Invoice.objects.filter(customer=customer)
        .filter(shown)
        .order_by("due_date", "issue_date", "id")[:OPEN_INVOICE_LIMIT]
    )
    letters = list(DunningLetter.objects.filter(customer=customer).select_related("level", "invoice")[:LETTER_LIMIT])
    collector = None
    if customer.collector_id:
        # The customer page reads the collector with the customer (crm.selectors.customer_detail).
        collector = customer.collector
    return CustomerCollections(
        customer=customer,
        collector=collector,
        promises=promises,
        open_invoices=[invoice for invoice in invoices if invoice.status in Invoice.OPEN_STATUSES],
        disputed_invoices=[invoice for invoice in invoices if invoice.disputed],
        resolved_disputes=dispute_episodes(customer=customer),
        letters=letters,
        record=promise_record(promises),
    )
