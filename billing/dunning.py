"""Dunning: the reminder letters sent for overdue invoices, one per invoice and level, at most once.

The rule (docs/collections.md tells it for people):
- An invoice is dunned while it is open (issued or partially paid) with something still open on it,
  past its due date, not disputed, and not under a live promise to pay
  (billing.collections_selectors.invoices_under_live_promise).
- It gets the letter of the highest *active* level whose `days_overdue` it has reached, unless that
  level or a higher one was already sent for it: levels never go back down, and an invoice that
  skipped levels (e.g. it was disputed for a while) gets only the highest it has reached, never two
  letters in one run.
- The letter asks for what is open *now*, so after a partial payment the next level asks for the
  rest; an invoice paid in full drops out.
- It goes to the customer's primary contact's e-mail, else to the first contact with one. Without any
  the letter is recorded as failed ("no e-mail address") and shown on the dunning page; a failed
  letter is sent again by the next run (its row becomes "sent"), or at once with "Retry".
- A customer gets ONE e-mail per level in a run, listing all its invoices due for that level; each
  invoice still has its own DunningLetter row (what it asked for, its outcome).

A run is built for 100k overdue invoices: the decision is one SQL query (`due_letters`), and the
customers are worked through in chunks of about LETTERS_PER_CHUNK letters, each chunk in one
transaction that (1) decides again for its customers with what is committed now, (2) claims the
letters — new rows inserted with ON CONFLICT DO NOTHING, failed rows re-taken with SELECT … FOR
UPDATE — and reads back which rows are this run's (`run_id`), (3) sends one e-mail per customer and
level over the run's one mail connection, then (4) records failures, the history rows, the timeline
activities and the customers' activity counters in bulk. The unique (invoice, level) row is what a
second run, or a run racing this one, finds: a racing insert waits for this chunk's commit and then
conflicts, so nothing is sent twice. Should sending fail, the chunk's letters for that e-mail are
kept as failed with the error, and the timeline says so.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import Case, Exists, F, IntegerField, Max, OuterRef, Prefetch, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.template import Context, Template, TemplateSyntaxError
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import get_format

from billing import documents, statement_links
from billing.collections_selectors import DaysFrom, invoices_under_live_promise
from billing.models import DunningLetter, DunningLevel, Invoice
from config.audit import system_actor
from crm.models import Activity, Contact, Customer
from jobs import services as jobs

logger = logging.getLogger(__name__)

SENT = DunningLetter.Status.SENT
FAILED = DunningLetter.Status.FAILED
NO_EMAIL = "no e-mail address"
NO_EMAIL_HINT = "add an e-mail address to one of the customer's contacts"
# A chunk (one transaction, one progress report to the job) holds whole customers and about this
# many letters: small enough that a racing run or a payment waits for about a second at most (at
# 100k letters a chunk takes 0.5-1 s on a busy 2-core machine), large enough that each chunk's
# fixed cost (its deciding query scans the overdue index) stays a small part of the run.
LETTERS_PER_CHUNK = 2000
# A run attaches the statement PDF (WeasyPrint, 0.2–0.4 s each) only while it has at most this many
# customers to send one to, i.e. a few seconds of rendering; a larger run links to the statement
# instead (docs/collections.md, "The statement: attached or linked").
STATEMENT_PDFS_PER_RUN = 25
# Rows written by one INSERT (or UPDATE) statement.
INSERT_BATCH = 1000
DAILY_TASK = "billing.tasks.send_daily_dunning"
MANUAL_TASK = "billing.tasks.run_dunning"
JOB_KIND = "dunning_run"


# --- Deciding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str


def recipient_for(contacts: list[Contact]) -> Recipient:
    """The primary contact if it has an e-mail, else the first contact that has one (contacts in
    their model order: primary first, then by name). Without any, no address — but still the name
    of the person the letter would greet."""
    for contact in contacts:
        if contact.email:
            return Recipient(contact.email, contact.name)
    return Recipient("", contacts[0].name if contacts else "")


def active_levels() -> list[DunningLevel]:
    return list(DunningLevel.objects.filter(is_active=True).order_by("level"))


def choose_level(
    *, days_overdue: int, levels: list[DunningLevel], letters: list[DunningLetter]
) -> tuple[DunningLevel | None, DunningLetter | None]:
    """The level an invoice `days_overdue` days late is due for, given its letters so far, and its
    failed letter at that level to send again (None when it is a first attempt); (None, None) when
    nothing is due: no active level reached yet, or that level or a higher one already sent.
    (One invoice at a time, for explaining; `due_letters` is the same rule in SQL.)"""
    reached = [level for level in levels if level.days_overdue <= days_overdue]
    if not reached:
        return None, None
    target = max(reached, key=lambda level: level.level)
    highest_sent = max((letter.level.level for letter in letters if letter.status == SENT), default=0)
    if highest_sent >= target.level:
        return None, None
    failed = next((letter for letter in letters if letter.level_id == target.pk), None)
    return target, failed


def dunnable_invoices(as_of: date) -> QuerySet[Invoice]:
    """Open, overdue, undisputed invoices with something open and no live promise on `as_of`."""
    return Invoice.objects.filter(
        status__in=Invoice.OPEN_STATUSES, open_amount__gt=0, due_date__lt=as_of, disputed=False
    ).exclude(pk__in=invoices_under_live_promise(as_of).values("pk"))


def due_letters(
    *,
    as_of: date,
    levels: list[DunningLevel],
    customers: QuerySet[Customer] | None = None,
    customer_ids: Iterable[int] | None = None,
    invoice_ids: Iterable[int] | None = None,
) -> QuerySet[Invoice]:
    """The dunnable invoices due a letter on `as_of`, annotated with `due_level` (the number of the
    highest active level reached), `days_overdue` and `failed_letter_id` (the failed row of that
    level, to send again). Invoices whose due level, or a higher one, was sent are left out: levels
    never go back down. One query, whatever the number of invoices; `levels` are the active ones."""
    if not levels:
        return Invoice.objects.none()
    earliest = min(level.days_overdue for level in levels)
    # The highest level reached: the levels by number, highest first, the first one reached wins.
    due_level = Case(
        *[
            When(due_date__lte=as_of - timedelta(days=level.days_overdue), then=Value(level.level))
            for level in sorted(levels, key=lambda level: -level.level)
        ],
        output_field=IntegerField(),
    )
    invoices = dunnable_invoices(as_of).filter(due_date__lte=as_of - timedelta(days=earliest))
    if customers is not None:
        invoices = invoices.filter(customer__in=customers)
    if customer_ids is not None:
        invoices = invoices.filter(customer_id__in=list(customer_ids))
    if invoice_ids is not None:
        invoices = invoices.filter(pk__in=list(invoice_ids))
    # The highest level sent, looked up for each invoice through the (invoice, level) index. Not
    # written as NOT EXISTS: PostgreSQL would plan that as an anti-join from the letters' statistics,
    # which a run makes stale a thousand rows at a time; believing the table nearly empty, it then
    # scans every sent letter for every invoice (seconds per chunk at 100k letters, growing).
    highest_sent = (
        DunningLetter.objects.filter(invoice=OuterRef("pk"), status=SENT)
        .order_by()
        .values("invoice")
        .annotate(highest=Max("level__level"))
        .values("highest")
    )
    failed_at_level = DunningLetter.objects.filter(
        invoice=OuterRef("pk"), status=FAILED, level__level=OuterRef("due_level")
    ).values("pk")[:1]
    return (
        invoices.annotate(due_level=due_level, days_overdue=DaysFrom(F("due_date"), day=as_of))
        .alias(highest_sent=Coalesce(Subquery(highest_sent, output_field=IntegerField()), Value(0)))
        .filter(highest_sent__lt=F("due_level"))
        .annotate(failed_letter_id=Subquery(failed_at_level))
    )


@dataclass(frozen=True)
class PlannedLetter:
    """A letter the next run would send (or send again, when `retry_of` is set)."""

    invoice: Invoice
    level: DunningLevel
    days_overdue: int
    recipient: Recipient
    retry_of: DunningLetter | None = None

    @property
    def customer(self) -> Customer:
        return self.invoice.customer

    @property
    def open_amount(self) -> Decimal:
        """What the letter asks for: what is open on the invoice now."""
        return self.invoice.open_amount

    @property
    def currency(self) -> str:
        return self.invoice.currency

    @property
    def has_recipient(self) -> bool:
        return bool(self.recipient.email)


def plan(
    *, as_of: date, customers: QuerySet[Customer] | None = None, invoice_ids: list[int] | None = None
) -> list[PlannedLetter]:
    """The letters a run on `as_of` would send, by level, then customer, then due date. Four
    queries whatever the number of invoices: the levels, the due invoices with their customers,
    the customers' contacts, and the failed letters to send again."""
    levels = active_levels()
    if not levels:
        return []
    by_number = {level.level: level for level in levels}
    invoices = list(
        due_letters(as_of=as_of, levels=levels, customers=customers, invoice_ids=invoice_ids)
        .select_related("customer")
        .prefetch_related(
            Prefetch("customer__contacts", queryset=Contact.objects.order_by("-is_primary", "name", "id"))
        )
        .order_by("due_date", "id")
    )
    failed_ids = [invoice.failed_letter_id for invoice in invoices if invoice.failed_letter_id]
    failed = DunningLetter.objects.in_bulk(failed_ids) if failed_ids else {}
    planned = [
        PlannedLetter(
            invoice,
            by_number[invoice.due_level],
            invoice.days_overdue,
            recipient_for(list(invoice.customer.contacts.all())),
            failed.get(invoice.failed_letter_id),
        )
        for invoice in invoices
    ]
    planned.sort(key=lambda letter: (letter.level.level, letter.customer.display_name.lower(), letter.invoice.due_date))
    return planned


def _is_under_live_promise(invoice: Invoice, as_of: date) -> bool:
    return invoices_under_live_promise(as_of).filter(pk=invoice.pk).exists()


def why_nothing_is_due(invoice: Invoice, *, as_of: date) -> str:
    """In words, why a run on `as_of` sends no letter for `invoice` ("" when one is due)."""
    if invoice.status not in Invoice.OPEN_STATUSES or invoice.open_amount <= 0:
        return f"invoice {invoice} is {invoice.get_status_display().lower()}"
    if invoice.disputed:
        return f"invoice {invoice} is disputed"
    if _is_under_live_promise(invoice, as_of):
        return f"invoice {invoice} is under a promise to pay"
    days_overdue = (as_of - invoice.due_date).days if invoice.due_date else 0
    levels = active_levels()
    if not levels:
        return "no dunning level is active"
    if days_overdue < min(level.days_overdue for level in levels):
        return f"invoice {invoice} is {max(days_overdue, 0)} days overdue, not yet at the first level"
    letters = list(DunningLetter.objects.filter(invoice=invoice).select_related("level"))
    if choose_level(days_overdue=days_overdue, levels=levels, letters=letters)[0] is None:
        return f"invoice {invoice} already had the letter of the level it has reached, or a later one"
    return ""


# --- Writing the letter ------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedLetter:
    subject: str
    body: str
    error: str = ""


def _invoice_values(invoice: Invoice, days_overdue: int) -> dict:
    return {
        "number": invoice.number,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "currency": invoice.currency,
        "gross_total": invoice.gross_total,
        "open_amount": invoice.open_amount,
        "days_overdue": days_overdue,
    }


def _context(*, customer: dict, invoices: list[dict], level: DunningLevel, contact_name: str, statement_url: str):
    """What a level's subject and body may use (docs/collections.md lists it): plain values, not
    model instances, so that a template edited in the admin can reach nothing else. `invoice` (and
    `open_amount`, `currency`, `days_overdue`) is the most overdue of the e-mail's `invoices`."""
    first = invoices[0]
    totals: dict[str, Decimal] = {}
    for item in invoices:
        totals[item["currency"]] = totals.get(item["currency"], Decimal(0)) + item["open_amount"]
    return {
        "customer": customer,
        "invoice": {key: value for key, value in first.items() if key != "days_overdue"},
        "invoices": invoices,
        "invoice_count": len(invoices),
        "totals": [{"currency": currency, "open_amount": amount} for currency, amount in sorted(totals.items())],
        "open_amount": first["open_amount"],
        "currency": first["currency"],
        "days_overdue": first["days_overdue"],
        "contact_name": contact_name,
        "company_name": settings.CONCORD_COMPANY_NAME,
        "level": {"level": level.level, "name": level.name, "days_overdue": level.days_overdue},
        "statement_url": statement_url,
    }


def _customer_values(customer: Customer) -> dict:
    return {
        "display_name": customer.display_name,
        "legal_name": customer.legal_name or customer.display_name,
        "account_number": customer.account_number,
    }


def letter_context(*, invoice: Invoice, level: DunningLevel, days_overdue: int, contact_name: str) -> dict:
    """The template context of a letter about `invoice` alone (the level editor's sample)."""
    return _context(
        customer=_customer_values(invoice.customer),
        invoices=[_invoice_values(invoice, days_overdue)],
        level=level,
        contact_name=contact_name,
        statement_url="",
    )


def _localization_shows() -> bool:
    """Whether localizing the letter's values could print them differently from their plain text.
    It cannot in the default settings (English, no thousands separator, Django's date formats): a
    template then renders without localization, the same text at two thirds of the time — a third
    was spent looking up the same three formats for every amount (seconds over a run)."""
    if settings.USE_THOUSAND_SEPARATOR or get_format("DECIMAL_SEPARATOR") != ".":
        return True
    return any(
        get_format(name) != getattr(settings, name) for name in ("DATE_FORMAT", "DATETIME_FORMAT", "TIME_FORMAT")
    )


class _LevelTemplates:
    """A level's subject and body, compiled once per run (a template that does not compile fails
    every letter of the level with the reason)."""

    def __init__(self, level: DunningLevel):
        self.level = level
        self.error = ""
        self.use_l10n = None if _localization_shows() else False
        self.mentions_invoices = "invoices" in level.body
        self.mentions_statement_url = "statement_url" in level.body
        try:
            self.subject, self.body = Template(level.subject), Template(level.body)
        except (TemplateSyntaxError, ValueError, TypeError) as error:
            self.error = f"level {level.level}'s template does not render: {error}"[:300]

    def render(self, context: dict) -> RenderedLetter:
        """Plain text, nothing escaped. For an e-mail about several invoices whose template names
        only one, the list is added below the text, so that none goes unmentioned; likewise the
        statement's link when it is not attached and the template does not say where it is."""
        if self.error:
            return RenderedLetter("", "", self.error)
        try:
            subject = self.subject.render(Context(context, autoescape=False, use_l10n=self.use_l10n))
            body = self.body.render(Context(context, autoescape=False, use_l10n=self.use_l10n)).strip()
        except (TemplateSyntaxError, ValueError, TypeError, AttributeError) as error:
            return RenderedLetter("", "", f"level {self.level.level}'s template does not render: {error}"[:300])
        if context["invoice_count"] > 1 and not self.mentions_invoices:
            lines = [
                f"  {item['number']}, due {item['due_date']:%d %b %Y}: {item['open_amount']} {item['currency']} open"
                for item in context["invoices"]
            ]
            body += "\n\nThis letter is about these invoices:\n" + "\n".join(lines)
        if context["statement_url"] and not self.mentions_statement_url:
            body += f"\n\nYour statement: {context['statement_url']}"
        subject = " ".join(subject.split())[: DunningLetter._meta.get_field("subject").max_length]
        return RenderedLetter(subject, body)


def render_letter(*, invoice: Invoice, level: DunningLevel, days_overdue: int, contact_name: str) -> RenderedLetter:
    """The level's subject and body rendered for this invoice alone (plain text, nothing escaped). A
    template that does not render gives an empty letter and the error, so the run can record it."""
    context = letter_context(invoice=invoice, level=level, days_overdue=days_overdue, contact_name=contact_name)
    return _LevelTemplates(level).render(context)


def preview(planned: PlannedLetter) -> RenderedLetter:
    return render_letter(
        invoice=planned.invoice,
        level=planned.level,
        days_overdue=planned.days_overdue,
        contact_name=planned.recipient.name,
    )


def _numbers(numbers: list[str]) -> str:
    return ", ".join(numbers)


def _activity_text(*, level: DunningLevel, email) -> str:
    letters = email.letters
    first = letters[0]
    if len(letters) == 1:
        about = (
            f"{level.name} (level {level.level}) for {first.open_amount:,.2f} {first.currency} open, "
            f"{first.days_overdue} days overdue"
        )
    else:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for letter in letters:
            totals[letter.currency] += letter.open_amount
        amounts = " and ".join(f"{amount:,.2f} {currency}" for currency, amount in sorted(totals.items()))
        about = f"{level.name} (level {level.level}) for {len(letters)} invoices ({email.numbers}), {amounts} open"
    if email.status == SENT:
        return f"{about}: e-mailed to {email.recipient}. Subject: “{email.subject}”."
    hint = f"; {NO_EMAIL_HINT}" if email.error == NO_EMAIL else ""
    return f"{about}: not sent — {email.error}. The next dunning run tries again{hint}."


class _Statements:
    """Each customer's statement PDF, rendered once per run."""

    def __init__(self, as_of: date):
        self.as_of = as_of
        self._pdfs: dict[int, bytes] = {}
        self.render_seconds: list[float] = []

    def for_customer(self, customer: Customer) -> bytes:
        if customer.pk not in self._pdfs:
            started = time.perf_counter()
            self._pdfs[customer.pk] = documents.render_statement_pdf(customer, self.as_of)
            self.render_seconds.append(time.perf_counter() - started)
        return self._pdfs[customer.pk]

    def rendered(self, customer_id: int) -> bytes:
        """The PDF `for_customer` rendered before the chunk's transaction."""
        return self._pdfs[customer_id]


# --- Running -----------------------------------------------------------------------------------


@dataclass
class RunSummary:
    as_of: date
    planned: int = 0
    outcomes: Counter = field(default_factory=Counter)
    emails: int = 0
    customers: set = field(default_factory=set)
    seconds: float = 0.0
    statement_seconds: list[float] = field(default_factory=list)
    statements_linked: bool = False

    @property
    def sent(self) -> int:
        return self.outcomes["sent"]

    @property
    def failed(self) -> int:
        return self.outcomes["failed"]

    @property
    def skipped(self) -> int:
        return self.outcomes["skipped"]

    @property
    def message(self) -> str:
        if not self.planned:
            return f"No letters were due on {self.as_of:%d %b %Y}."
        parts = [f"{self.sent} letter{'s' if self.sent != 1 else ''} sent"]
        if self.failed:
            parts.append(f"{self.failed} failed (see the dunning page)")
        if self.skipped:
            parts.append(f"{self.skipped} no longer due")
        return ", ".join(parts) + "."


@dataclass(frozen=True)
class _Customer:
    """What a run needs of a customer (read as plain values: a run meets tens of thousands)."""

    pk: int
    display_name: str
    legal_name: str
    account_number: str

    def __str__(self) -> str:
        return self.display_name

    def values(self) -> dict:
        return {
            "display_name": self.display_name,
            "legal_name": self.legal_name or self.display_name,
            "account_number": self.account_number,
        }


@dataclass
class _Letter:
    """One invoice's letter in an e-mail: its row (`pk` once claimed) and what it asks for."""

    invoice_id: int
    invoice_number: str
    open_amount: Decimal
    currency: str
    days_overdue: int
    retry_of: int | None  # the failed row of the same level, sent again
    pk: int | None = None


@dataclass
class _Email:
    """One e-mail of a run: a customer's letters of one level, and what it says."""

    customer: _Customer
    level: DunningLevel
    letters: list[_Letter]
    recipient: str
    subject: str
    body: str
    error: str

    @property
    def status(self) -> str:
        return FAILED if self.error else SENT

    @property
    def retried(self) -> bool:
        """Every letter in it had failed before (the timeline was told then)."""
        return all(letter.retry_of for letter in self.letters)

    @property
    def numbers(self) -> str:
        return _numbers([letter.invoice_number for letter in self.letters])


def _rows_cte(name: str, columns: list[tuple[str, str]], rows: list[tuple]) -> tuple[str, list]:
    """`WITH name (columns) AS (…)` holding `rows` (tuples in the order of `columns`, each named with
    its PostgreSQL type), and its parameters. PostgreSQL gets the rows as one JSON array: one
    parameter instead of a dozen per row, which psycopg would splice into the statement in Python
    (seconds over a run), and half the time of typed arrays on both sides, measured; SQLite a
    VALUES list."""
    names = ", ".join(column for column, _ in columns)
    if connection.vendor == "postgresql":
        fields = ", ".join(f"(item->>{index})::{sql_type}" for index, (_, sql_type) in enumerate(columns))
        data = json.dumps(rows, default=str)  # Decimal as its exact text
        source = f"SELECT {fields} FROM json_array_elements(%s::json) AS item"  # noqa: S608 - names from the code
        return f"WITH {name} ({names}) AS ({source})", [data]
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    values = ", ".join([row] * len(rows))
    return f"WITH {name} ({names}) AS (VALUES {values})", [value for row in rows for value in row]


def _batches(items: list) -> Iterable[list]:
    """`items` in one statement's worth: all at once on PostgreSQL (one JSON parameter), else
    INSERT_BATCH rows (SQLite caps a statement's parameters)."""
    size = len(items) if connection.vendor == "postgresql" else INSERT_BATCH
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


def _ids_in(column: str, ids: list[int]) -> tuple[str, list]:
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::bigint[])", [ids]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _without_jit() -> None:
    """Plan the rest of the transaction without PostgreSQL's JIT compilation. The letters' statistics
    go stale during a run, which inflates the due-letters query's estimated cost past the JIT
    thresholds: compiling it then took longer (0.8 s at 110k invoices) than running it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def _history_copy(model, *, where: str, params: list, history_type: str, actor, at) -> tuple[str, list]:
    """SQL (and params) copying `model`'s rows matching `where` into its simple-history table as
    they are now, by `actor` — one statement for thousands of rows, as `bulk_history_create` would
    write them one object at a time."""
    history = model.history.model
    own = {field.column for field in model._meta.concrete_fields}
    columns = [field.column for field in history._meta.concrete_fields if field.column in own]
    extra = ["history_date", "history_change_reason", "history_type", "history_user_id"]
    sql = (
        f"INSERT INTO {history._meta.db_table} ({', '.join(columns + extra)}) "  # noqa: S608 - names from the models
        f"SELECT {', '.join(columns)}, %s, NULL, %s, %s FROM {model._meta.db_table} WHERE {where}"
    )
    return sql, [at, history_type, actor.pk, *params]


# What a letter's row says, in the order of `_Run._row`, with the PostgreSQL type of each value.
LETTER_COLUMNS = [
    ("status", "text"),
    ("recipient", "text"),
    ("subject", "text"),
    ("body", "text"),
    ("open_amount", "numeric"),
    ("currency", "text"),
    ("days_overdue", "integer"),
    ("error", "text"),
]
DUE_FIELDS = (
    "pk",
    "customer_id",
    "number",
    "issue_date",
    "due_date",
    "currency",
    "gross_total",
    "open_amount",
    "due_level",
    "days_overdue",
    "failed_letter_id",
)


class _Run:
    """One run's fixed parts: the levels, their compiled templates, the actor, the mail connection,
    and whether statements are attached or linked."""

    def __init__(
        self,
        *,
        as_of: date,
        actor,
        job_id: int | None,
        levels: list[DunningLevel],
        statement_customers: set[int],
    ):
        self.as_of, self.actor, self.job_id = as_of, actor, job_id
        self.statement_customers = statement_customers
        self.link_statements = len(statement_customers) > STATEMENT_PDFS_PER_RUN
        self.statement_link = statement_links.link_maker(as_of)
        self.run_id = uuid.uuid4()
        self.levels = {level.level: level for level in levels}
        self.templates = {level.level: _LevelTemplates(level) for level in levels}
        self.statements = _Statements(as_of)
        self.connection = get_connection()

    def chunk(self, customer_ids: list[int], summary: RunSummary, customers: QuerySet[Customer] | None) -> int:
        """Decide, claim, send and record the letters of `customer_ids` in one transaction; returns
        the number of letters claimed (the rest were no longer due)."""
        if not self.link_statements:
            # Rendered before the transaction, so that its locks are held only briefly.
            wanted = self.statement_customers.intersection(customer_ids)
            for customer in Customer.objects.filter(pk__in=wanted).order_by("pk"):
                self.statements.for_customer(customer)
        with transaction.atomic():
            _without_jit()
            emails = self._claim(customer_ids, customers)
            self._send(emails)
            self._record(emails)
        for email in emails:
            summary.outcomes[email.status] += len(email.letters)
            summary.emails += email.status == SENT
            summary.customers.add(email.customer.pk)
        return sum(len(email.letters) for email in emails)

    def _claim(self, customer_ids: list[int], customers: QuerySet[Customer] | None) -> list[_Email]:
        # The customers are locked first, in id order as every billing write locks them: a payment
        # or a racing run waits for this chunk, and the decision below sees what they committed.
        locked = {
            row[0]: _Customer(*row)
            for row in Customer.objects.select_for_update()
            .filter(pk__in=customer_ids)
            .order_by("pk")
            .values_list("pk", "display_name", "legal_name", "account_number")
        }
        due = list(
            due_letters(
                as_of=self.as_of, levels=list(self.levels.values()), customers=customers, customer_ids=customer_ids
            )
            .order_by("customer_id", "due_level", "due_date", "pk")
            .values_list(*DUE_FIELDS, named=True)
        )
        if not due:
            return []
        recipients = _recipients({row.customer_id for row in due})
        groups: dict[tuple[int, int], list] = defaultdict(list)
        for row in due:
            groups[(row.customer_id, row.due_level)].append(row)

        emails = []
        for (customer_id, number), rows in groups.items():
            customer, level = locked[customer_id], self.levels[number]
            recipient = recipients.get(customer_id, Recipient("", ""))
            linked = self.link_statements and level.attach_statement
            context = _context(
                customer=customer.values(),
                invoices=[_row_values(row) for row in rows],
                level=level,
                contact_name=recipient.name,
                statement_url=self.statement_link(customer_id) if linked else "",
            )
            rendered = self.templates[number].render(context)
            letters = [
                _Letter(row.pk, row.number, row.open_amount, row.currency, row.days_overdue, row.failed_letter_id)
                for row in rows
            ]
            error = rendered.error or ("" if recipient.email else NO_EMAIL)
            emails.append(_Email(customer, level, letters, recipient.email, rendered.subject, rendered.body, error))
        claimed = self._insert_new(emails) | self._retake_failed(emails)
        for email in emails:
            for letter in email.letters:
                letter.pk = claimed.get(letter.invoice_id)
            email.letters = [letter for letter in email.letters if letter.pk is not None]
        return [email for email in emails if email.letters]

    def _row(self, email: _Email, letter: _Letter) -> tuple:
        return (
            email.status,
            email.recipient,
            email.subject,
            email.body,
            letter.open_amount,
            letter.currency,
            letter.days_overdue,
            email.error,
        )

    def _run_values(self) -> list:
        """The job, the time and the run's id, as the database takes them (the same on every row)."""
        fields = DunningLetter._meta
        return [
            self.job_id,
            fields.get_field("sent_at").get_db_prep_value(timezone.now(), connection),
            fields.get_field("run_id").get_db_prep_value(self.run_id, connection),
        ]

    def _insert_new(self, emails: list[_Email]) -> dict[int, int]:
        """Insert the new letters' rows with ON CONFLICT DO NOTHING on (invoice, level): a row a
        racing run wrote is left alone (and not returned). Invoice id → row id of those inserted."""
        new = [
            (letter.invoice_id, email.customer.pk, email.level.pk, *self._row(email, letter))
            for email in emails
            for letter in email.letters
            if not letter.retry_of
        ]
        columns = [("invoice_id", "bigint"), ("customer_id", "bigint"), ("level_id", "bigint"), *LETTER_COLUMNS]
        names = ", ".join(column for column, _ in columns)
        inserted: dict[int, int] = {}
        for batch in _batches(new):
            rows, params = _rows_cte("new", columns, batch)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"{rows} INSERT INTO {DunningLetter._meta.db_table} ({names}, job_id, sent_at, run_id) "  # noqa: S608
                    # WHERE true: SQLite reads ON CONFLICT after a bare FROM as a join's.
                    f"SELECT {names}, %s, %s, %s FROM new WHERE true "
                    "ON CONFLICT (invoice_id, level_id) DO NOTHING RETURNING invoice_id, id",
                    [*params, *self._run_values()],
                )
                inserted.update(cursor.fetchall())
        return inserted

    def _retake_failed(self, emails: list[_Email]) -> dict[int, int]:
        """Re-take the failed rows being sent again — only those still failed once their row lock
        is this run's (a racing run that sent one meanwhile keeps it). Invoice id → row id."""
        retried = [
            (letter.retry_of, *self._row(email, letter))
            for email in emails
            for letter in email.letters
            if letter.retry_of
        ]
        table = DunningLetter._meta.db_table
        assignments = ", ".join(f"{column} = retried.{column}" for column, _ in LETTER_COLUMNS)
        taken: dict[int, int] = {}
        for batch in _batches(retried):
            rows, params = _rows_cte("retried", [("id", "bigint"), *LETTER_COLUMNS], batch)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"{rows} UPDATE {table} SET {assignments}, job_id = %s, sent_at = %s, run_id = %s "  # noqa: S608
                    f"FROM retried WHERE {table}.id = retried.id AND {table}.status = %s "
                    f"RETURNING {table}.invoice_id, {table}.id",
                    [*params, *self._run_values(), FAILED],
                )
                taken.update(cursor.fetchall())
        return taken

    def _copy_history(self, model, pks: list[int], history_type: str, at) -> None:
        for batch in _batches(pks):
            where, params = _ids_in("id", batch)
            with connection.cursor() as cursor:
                cursor.execute(
                    *_history_copy(
                        model, where=where, params=params, history_type=history_type, actor=self.actor, at=at
                    )
                )

    def _send(self, emails: list[_Email]) -> None:
        """Send the chunk's e-mails over the run's connection, one `send_messages` call each: SMTP
        sends each message on its own anyway, and one call per message tells which one failed."""
        sender = settings.CONCORD_COLLECTIONS_FROM_EMAIL
        for email in emails:
            if email.status != SENT:
                continue
            message = EmailMessage(
                subject=email.subject,
                body=email.body,
                from_email=sender,
                to=[email.recipient],
                reply_to=[sender],
                headers={"X-Concord-Dunning": f"{email.numbers}; level {email.level.level}"},
                connection=self.connection,
            )
            if email.level.attach_statement and not self.link_statements:
                pdf = self.statements.rendered(email.customer.pk)
                filename = documents.statement_filename(email.customer, self.as_of)
                message.attach(filename, pdf, "application/pdf")
            try:
                self.connection.send_messages([message])
            except Exception as error:  # noqa: BLE001 - any failure to send is recorded on the letters
                logger.warning("Dunning e-mail to %s (level %s) failed: %s", email.customer, email.level.level, error)
                email.error = f"sending failed: {type(error).__name__}: {error}"[:300]
                DunningLetter.objects.filter(pk__in=[letter.pk for letter in email.letters]).update(
                    status=FAILED, error=email.error
                )
                # A broken connection is not left to fail the e-mails after this one.
                self.connection.close()

    def _record(self, emails: list[_Email]) -> None:
        """The letters' history rows, and one timeline activity per e-mail sent or failing for the
        first time (a letter failing again every day would drown the timeline), in bulk."""
        now = timezone.now()
        letters = [letter for email in emails for letter in email.letters]
        self._copy_history(DunningLetter, [letter.pk for letter in letters if not letter.retry_of], "+", now)
        self._copy_history(DunningLetter, [letter.pk for letter in letters if letter.retry_of], "~", now)
        activities = [
            (email.customer.pk, _activity_text(level=email.level, email=email), email.numbers[:200])
            for email in emails
            if email.status == SENT or not email.retried
        ]
        if not activities:
            return
        activity_ids = self._insert_activities(activities, now)
        self._copy_history(Activity, activity_ids, "+", now)
        # The customers' cached timeline stats move in the same transaction, as log_activity does
        # (the customers are locked already: in id order, as the chunk locked them).
        added = sorted(Counter(customer_id for customer_id, *_ in activities).items())
        table = Customer._meta.db_table
        at = Customer._meta.get_field("last_activity_at").get_db_prep_value(now, connection)
        # PostgreSQL's GREATEST is SQLite's two-argument MAX.
        greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
        for batch in _batches(added):
            rows, params = _rows_cte("added", [("customer_id", "bigint"), ("activities", "integer")], batch)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"{rows} UPDATE {table} SET activity_count = {table}.activity_count + added.activities, "  # noqa: S608
                    f"last_activity_at = {greatest}(COALESCE({table}.last_activity_at, %s), %s) "
                    f"FROM added WHERE {table}.id = added.customer_id",
                    [*params, at, at],
                )

    def _insert_activities(self, activities: list[tuple[int, str, str]], now) -> list[int]:
        """The "letter" activities (customer id, text, subject), as Activity.objects.bulk_create
        would write them; their ids."""
        table = Activity._meta.db_table
        at = Activity._meta.get_field("occurred_at").get_db_prep_value(now, connection)
        ids: list[int] = []
        for batch in _batches(activities):
            rows, params = _rows_cte("added", [("customer_id", "bigint"), ("text", "text"), ("subject", "text")], batch)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"{rows} INSERT INTO {table} (customer_id, text, subject, kind, actor_id, occurred_at, "  # noqa: S608
                    "outcome, created_at) SELECT customer_id, text, subject, %s, %s, %s, '', %s FROM added "
                    "RETURNING id",
                    [*params, Activity.Kind.LETTER, self.actor.pk, at, at],
                )
                ids += [row[0] for row in cursor.fetchall()]
        return ids


def _recipients(customer_ids: set[int]) -> dict[int, Recipient]:
    """Each customer's recipient (`recipient_for`), in one query of plain values."""
    contacts: dict[int, list] = defaultdict(list)
    rows = (
        Contact.objects.filter(customer_id__in=sorted(customer_ids))
        .order_by("customer_id", "-is_primary", "name", "id")
        .values_list("customer_id", "name", "email", named=True)
    )
    for row in rows:
        contacts[row.customer_id].append(row)
    return {customer_id: recipient_for(found) for customer_id, found in contacts.items()}


def _row_values(row) -> dict:
    return {
        "number": row.number,
        "issue_date": row.issue_date,
        "due_date": row.due_date,
        "currency": row.currency,
        "gross_total": row.gross_total,
        "open_amount": row.open_amount,
        "days_overdue": row.days_overdue,
    }


def _chunks(letters_by_customer: dict[int, int], size: int) -> Iterable[list[int]]:
    """Customer ids in order, cut into chunks of whole customers of about `size` letters."""
    chunk, letters = [], 0
    for customer_id in sorted(letters_by_customer):
        chunk.append(customer_id)
        letters += letters_by_customer[customer_id]
        if letters >= size:
            yield chunk
            chunk, letters = [], 0
    if chunk:
        yield chunk


def run(
    *,
    as_of: date,
    actor,
    job_id: int | None = None,
    customers: QuerySet[Customer] | None = None,
    invoice_ids: list[int] | None = None,
) -> RunSummary:
    """Send the letters due on `as_of` (see the module's docstring): one e-mail per customer and
    level, chunk by chunk, reporting progress to the job after each chunk. Safe to run again, and
    alongside another run: a letter already sent is not sent again."""
    started = time.perf_counter()
    levels = active_levels()
    due = due_letters(as_of=as_of, levels=levels, customers=customers, invoice_ids=invoice_ids)
    letters_by_customer: Counter = Counter()
    statement_customers = set()
    attaching = {level.level for level in levels if level.attach_statement}
    # A plain query, not .iterator(): a server-side cursor makes PostgreSQL plan for the first rows
    # (slow over 100k invoices), and 100k pairs fit in memory.
    with transaction.atomic():
        _without_jit()
        planned = list(due.order_by().values_list("customer_id", "due_level"))
    for customer_id, due_level in planned:
        letters_by_customer[customer_id] += 1
        if due_level in attaching:
            statement_customers.add(customer_id)
    summary = RunSummary(as_of=as_of, planned=sum(letters_by_customer.values()))
    if job_id is not None:
        jobs.advance(job_id=job_id, done=0, total=summary.planned, message="Sending letters…")
    the_run = _Run(as_of=as_of, actor=actor, job_id=job_id, levels=levels, statement_customers=statement_customers)
    summary.statements_linked = the_run.link_statements
    done = 0
    with the_run.connection:
        for customer_ids in _chunks(letters_by_customer, LETTERS_PER_CHUNK):
            planned_here = sum(letters_by_customer[customer_id] for customer_id in customer_ids)
            claimed = the_run.chunk(customer_ids, summary, customers)
            # Paid, disputed or promised meanwhile, or sent by a concurrent run.
            summary.outcomes["skipped"] += max(planned_here - claimed, 0)
            done += planned_here
            if job_id is not None:
                jobs.advance(job_id=job_id, done=done, message=f"{summary.sent} sent, {summary.failed} failed…")
    summary.seconds = time.perf_counter() - started
    summary.statement_seconds = the_run.statements.render_seconds
    logger.info(
        "Dunning run as of %s: %s %s e-mails to %s customers (%.1f s)",
        as_of,
        summary.message,
        summary.emails,
        len(summary.customers),
        summary.seconds,
    )
    return summary


def retry_letter(*, letter: DunningLetter, actor, as_of: date | None = None) -> tuple[RunSummary, str]:
    """Send a failed letter's invoice its due letter now: the failed one again, or the higher level
    it has reached since. Returns the run's summary and, when nothing was sent, why."""
    as_of = as_of or timezone.localdate()
    summary = run(as_of=as_of, actor=actor, invoice_ids=[letter.invoice_id])
    reason = ""
    if not summary.planned or summary.skipped:
        reason = why_nothing_is_due(Invoice.objects.get(pk=letter.invoice_id), as_of=as_of)
    return summary, reason


# --- Jobs --------------------------------------------------------------------------------------

RUN_HINT = (
    "Letters sent before the failure stay sent and are not sent again; start the run again, or wait "
    "for tomorrow's. If it fails again, send this page's address to your administrator."
)


def start_run(*, actor, as_of: date | None = None):
    """Create a job for a dunning run started from the page and queue it (after commit)."""
    from billing import tasks

    as_of = as_of or timezone.localdate()
    job = jobs.create_job(
        kind=JOB_KIND, label=f"Dunning run for {as_of:%d %b %Y}", actor=actor, params={"as_of": as_of.isoformat()}
    )
    return jobs.enqueue(job=job, task=tasks.run_dunning, as_of=as_of.isoformat())


def run_job(*, job_id: int, as_of: date) -> None:
    """Run dunning as the job's starter (or the daily task's system actor), with the job's progress;
    a job already finished (a redelivered task) is left as it is."""
    job = jobs.start(job_id=job_id, message="Planning the letters…")
    if job.is_finished:
        return
    actor = job.created_by or system_actor(f"task:{MANUAL_TASK}")

    def work(job_id: int) -> None:
        summary = run(as_of=as_of, actor=actor, job_id=job_id)
        jobs.succeed(job_id=job_id, message=summary.message, result_url=reverse("dunning:page"))

    jobs.run_tracked(job_id=job_id, work=work, hint=RUN_HINT)


def send_daily(*, as_of: date | None = None) -> int:
    """The daily run (Celery beat): a job of its own, as the task's system actor."""
    as_of = as_of or timezone.localdate()
    actor = system_actor(f"task:{DAILY_TASK}")
    job = jobs.create_job(
        kind=JOB_KIND, label=f"Daily dunning run, {as_of:%d %b %Y}", actor=actor, params={"as_of": as_of.isoformat()}
    )
    run_job(job_id=job.pk, as_of=as_of)
    return job.pk


# --- What the dunning page shows ---------------------------------------------------------------

# A level's table shows this many letters; the rest are counted ("and 40 more").
PREVIEW_ROWS_PER_LEVEL = 200
RECENT_LETTERS = 50
FAILED_LETTERS = 100


@dataclass(frozen=True)
class LevelPreview:
    level: DunningLevel
    letters: list[PlannedLetter]
    count: int
    without_email: int
    totals: dict[str, Decimal]  # open amount asked for, by currency

    @property
    def more(self) -> int:
        return self.count - len(self.letters)


@dataclass(frozen=True)
class RunPreview:
    as_of: date
    levels: list[LevelPreview]
    without_email: list[PlannedLetter]

    @property
    def count(self) -> int:
        return sum(level.count for level in self.levels)


def run_preview(*, as_of: date, customers: QuerySet[Customer] | None = None) -> RunPreview:
    """The next run's letters grouped by active level (empty levels too), and the ones that would
    fail for want of an e-mail address: five queries (the plan's four and the levels)."""
    planned = plan(as_of=as_of, customers=customers)
    by_level: dict[int, list[PlannedLetter]] = {}
    for letter in planned:
        by_level.setdefault(letter.level.pk, []).append(letter)
    previews = []
    for level in active_levels():
        letters = by_level.get(level.pk, [])
        totals: dict[str, Decimal] = {}
        for letter in letters:
            totals[letter.currency] = totals.get(letter.currency, Decimal(0)) + letter.open_amount
        previews.append(
            LevelPreview(
                level=level,
                letters=letters[:PREVIEW_ROWS_PER_LEVEL],
                count=len(letters),
                without_email=sum(1 for letter in letters if not letter.has_recipient),
                totals=dict(sorted(totals.items())),
            )
        )
    return RunPreview(
        as_of=as_of, levels=previews, without_email=[letter for letter in planned if not letter.has_recipient]
    )


def _letters(customers: QuerySet[Customer] | None) -> QuerySet[DunningLetter]:
    letters = DunningLetter.objects.select_related("invoice", "customer", "level")
    return letters if customers is None else letters.filter(customer__in=customers)


def recent_letters(*, customers: QuerySet[Customer] | None = None) -> list[DunningLetter]:
    """The latest letters sent or failed, newest first (one query)."""
    return list(_letters(customers).order_by("-sent_at", "-id")[:RECENT_LETTERS])


def failed_letters(*, customers: QuerySet[Customer] | None = None) -> list[DunningLetter]:
    """Failed letters still worth sending, oldest first (one query): their invoice is still open,
    and no letter of a higher level has been written for it since (that one supersedes them)."""
    superseded = DunningLetter.objects.filter(invoice=OuterRef("invoice"), level__level__gt=OuterRef("level__level"))
    return list(
        _letters(customers)
        .filter(status=FAILED, invoice__status__in=Invoice.OPEN_STATUSES, invoice__open_amount__gt=0)
        .exclude(Exists(superseded))
        .order_by("sent_at", "id")[:FAILED_LETTERS]
    )


def latest_run(user):
    """The newest dunning run `user` started in the last day, to show its progress (None if none)."""
    from jobs.models import BackgroundJob

    since = timezone.now() - timedelta(days=1)
    runs = BackgroundJob.objects.filter(kind=JOB_KIND, created_by=user, created_at__gte=since)
    return runs.order_by("-created_at", "-id").first()
