# ruff: noqa: S311 - seeded generators for reproducible benchmark data, not secrets.
"""Scale data for benchmarks (`manage.py seed_scale`): many customers and invoices, loaded fast.

Unlike the demo (billing.demo), which replays every event through billing.services, this module
writes the rows those services would write directly, in bulk: COPY FROM STDIN on PostgreSQL,
executemany on SQLite (small sizes only). "Would write" is meant to the cent:

- every journal entry follows ledger.posting's rules line by line (an invoice: revenue, discount
  and tax lines per invoice line and the AR debit; a payment: bank or clearing against AR; an
  allocation between different carrying values: realised FX; a credit note against an invoice:
  the invoice rule turned round, at the invoice's rate), with zero lines dropped as
  ledger.services.post_entry drops them; on PostgreSQL the deferred triggers of ledger migration
  0002 check at each commit that every entry balances;
- amounts are priced by the rounding rule of billing.pricing (half up, per line) and converted
  with ledger.money.to_base, here in integer cents so that a million invoices price quickly;
- allocations take carrying values as billing.services._portion does, so foreign-currency
  customers (the second currency) get realised FX wherever a payment's rate differs from the
  invoice's;
- the denormalised figures are exact: Invoice.open_amount/open_base/status/settled_on,
  Payment.unapplied_*/used_up_on/entry, CreditNote.unapplied_*/used_up_on, Customer.ar_*, and the
  number series end at the next free number; `manage.py ledger_check` passes afterwards.

No history rows are written for seeded rows (simple-history records changes made through the
models; these rows never went through them). Products carry no unit cost, so no COGS is posted.

The data is deterministic for a seed: the plan (how many invoices each customer has, on which
days) comes from one generator, each customer's details from its own, so a chunk of customers
can be generated and written without holding the rest. Invoice and credit note numbers run with
time across all customers: a first, cheap pass counts documents per day.

Ids are assigned here, after the largest in each table. On PostgreSQL each chunk of customers
(all their rows) is committed on its own — bounding the server's queue of deferred trigger
events — by one of a few writer threads, each on its own connection, while the next chunk is
generated; the id sequences are moved past each chunk's ids in its commit, and the number
series are moved past every number the seed will use before the first chunk. A run that fails
half-way leaves the chunks it committed (and a gap in the numbers): load into a fresh database.

Foreign-currency documents are booked at their own day's rate, as the services do, so a payment
settling an invoice of another day posts realised FX through the allocation rule; credit notes
against an invoice take its rate and settle it without any (unless per-line rounding differs).
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from tqdm import tqdm

from billing import demo
from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    NumberSequence,
    Payment,
    PaymentAllocation,
)
from config import audit
from crm import services as crm_services
from crm.models import Contact, Customer, CustomerUserObjectPermission
from crm.roles import Role
from ledger.models import Account, ExchangeRate, JournalEntry, JournalLine
from ledger.posting import METHOD_ACCOUNT_ROLES

SYSTEM_ACTOR = "command:seed_scale"
PASSWORD = "concord-scale"  # noqa: S105 - published benchmark credential, documented in the command's help.

DAYS = 730  # invoices are spread over the last 24 months
FOREIGN_SHARE = 0.2
LARGEST_CUSTOMER_SHARE = 0.005
NO_INVOICE_SHARE = 0.03
PAYMENT_TERMS = [14, 21, 30, 30, 30, 30, 45, 60]
# name: (weight, share of past-due invoices left open, days paid after the due date)
PROFILES = {
    "prompt": (50, 0.05, (-10, 5)),
    "late": (35, 0.13, (0, 45)),
    "slow": (15, 0.35, (20, 90)),
}
NOT_YET_DUE_PAID_SHARE = 0.45
PARTIAL_SHARE = 0.25  # of the invoices left open past due: part paid
DISPUTED_SHARE = 0.04  # of the invoices left open past due
INSTALMENT_SHARE = 0.08  # of the paid invoices: paid in two payments
CREDIT_NOTE_SHARE = 0.03
BATCH_PAYER_SHARE = 0.25  # pay each month's invoices in one payment
OVERPAY_SHARE = 0.03  # of batch payments: rounded up, leaving credit
ON_ACCOUNT_SHARE = 0.03  # customers with a payment not yet applied
CONTACT_SHARE = 0.95
COLLECTED_SHARE = 0.6  # of the customers with overdue invoices: a collector is assigned
METHODS = {"bank_transfer": 70, "card": 15, "cheque": 15}
METHOD_LABELS = dict(Payment.Method.choices)
# The demo catalogue's products that carry no unit cost (no COGS to post), all at the standard rate.
SKUS = ["SVC-INST-H", "SVC-SURVEY", "SVC-TRAIN", "SUP-PREM-Y", "SUB-WMS-SEAT", "FRT-DLV"]
PRICE_FACTOR = {"EUR": Decimal("0.92")}
DISPUTE_REASONS = [
    "Customer disputes the hours billed.",
    "Customer says the service was cut short and wants a partial credit.",
    "PO number missing; the customer's AP will not process the invoice until it is reissued with one.",
]
CREDIT_REASONS = ["Agreed price adjustment on {item}", "Service credit on {item}: hours over the estimate"]

WORDS = [
    "North",
    "South",
    "East",
    "West",
    "Blue",
    "Green",
    "Silver",
    "Golden",
    "Iron",
    "Summit",
    "River",
    "Lake",
    "Harbor",
    "Pine",
    "Oak",
    "Cedar",
    "Maple",
    "Granite",
    "Atlas",
    "Beacon",
    "Vertex",
    "Nova",
    "Apex",
    "Prime",
    "Crest",
    "Pioneer",
    "Liberty",
    "Union",
    "Central",
    "Pacific",
    "Atlantic",
    "Alpine",
    "Coastal",
    "Bright",
    "Clear",
    "Swift",
    "Solid",
    "True",
    "Grand",
    "Royal",
    "Metro",
    "Urban",
    "Rural",
    "Valley",
    "Ridge",
    "Bay",
    "Point",
    "Stone",
    "Bridge",
    "Field",
]
TRADES = [
    "Logistics",
    "Supply",
    "Foods",
    "Motors",
    "Textiles",
    "Electronics",
    "Builders",
    "Pharma",
    "Retail",
    "Distribution",
    "Packaging",
    "Tools",
    "Furniture",
    "Plastics",
    "Chemicals",
    "Print",
    "Freight",
    "Medical",
    "Outfitters",
    "Farms",
    "Brewing",
    "Paper",
    "Steel",
    "Systems",
    "Labs",
]
FIRST_NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Karin",
    "Liam",
    "Mia",
    "Noah",
    "Olga",
    "Paul",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Ugo",
    "Vera",
    "Will",
    "Xena",
    "Yusuf",
    "Zoe",
    "Lena",
    "Marco",
    "Nina",
    "Oscar",
]
LAST_NAMES = [
    "Adams",
    "Berger",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Keller",
    "Larsen",
    "Moreau",
    "Nagy",
    "Olsen",
    "Peters",
    "Quist",
    "Rossi",
    "Schmidt",
    "Taylor",
    "Ueda",
    "Vogel",
    "Walker",
    "Young",
    "Zimmer",
    "Novak",
    "Meyer",
    "Brown",
    "Silva",
    "Kowalski",
]
STREETS = [
    "Main",
    "High",
    "Station",
    "Market",
    "Church",
    "Mill",
    "Park",
    "Bridge",
    "King",
    "Queen",
    "Harbour",
    "Garden",
]
MARKETS = {
    # currency: (country, cities, zero-rated)
    "USD": ("US", ["Springfield", "Riverton", "Franklin", "Greenville", "Fairview", "Salem", "Madison"], True),
    "EUR": ("DE", ["Berlin", "Hamburg", "Munich", "Cologne", "Leipzig", "Dresden", "Bremen"], False),
    "OTHER": ("GB", ["Leeds", "Bristol", "York", "Norwich", "Bath", "Derby", "Exeter"], False),
}
CONTACT_ROLES = ["Accounts payable", "Controller", "CFO", "Purchasing", "Office manager"]


class SeedRefused(Exception):
    """The database is not one this seed may load into; nothing was written."""


@dataclass
class ScaleSummary:
    customers: int = 0
    reps: int = 0
    collectors: int = 0
    contacts: int = 0
    invoices: int = 0
    invoice_lines: int = 0
    open_invoices: int = 0
    overdue_invoices: int = 0
    disputed_invoices: int = 0
    payments: int = 0
    unapplied_payments: int = 0
    payment_allocations: int = 0
    credit_notes: int = 0
    journal_entries: int = 0
    journal_lines: int = 0
    exchange_rates: int = 0
    largest_customer: str = ""
    largest_customer_invoices: int = 0
    big_rep: str = ""
    big_rep_customers: int = 0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def lines(self) -> list[str]:
        return [
            f"Customers: {self.customers:,} ({self.contacts:,} contacts), {self.reps} sales reps "
            f"({self.big_rep} owns {self.big_rep_customers:,}), {self.collectors} collectors.",
            f"Invoices: {self.invoices:,} ({self.invoice_lines:,} lines), {self.open_invoices:,} open of which "
            f"{self.overdue_invoices:,} past due and {self.disputed_invoices:,} disputed; largest customer "
            f"{self.largest_customer} with {self.largest_customer_invoices:,}.",
            f"Payments: {self.payments:,} ({self.unapplied_payments:,} with credit left), "
            f"{self.payment_allocations:,} allocations; credit notes: {self.credit_notes:,}; "
            f"exchange rates added: {self.exchange_rates:,}.",
            f"Ledger: {self.journal_entries:,} entries, {self.journal_lines:,} lines.",
            "Phases: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.phases.items()) + ".",
        ]


# --- Rows and writers ----------------------------------------------------------------------------


def _money(cents: int) -> str:
    """Cents as a decimal string, "-12.34" (the hot path of the load: string slicing, no Decimal)."""
    if cents >= 100:
        digits = str(cents)
        return f"{digits[:-2]}.{digits[-2:]}"
    if cents >= 0:
        return f"0.{cents:02d}"
    return "-" + _money(-cents)


def _to_base(cents: int, rate_e8: int) -> int:
    """ledger.money.to_base in integer cents: `cents` × rate, rounded half up (cents ≥ 0)."""
    return (cents * rate_e8 + 50_000_000) // 100_000_000


def _signed_to_base(cents: int, rate_e8: int) -> int:
    return _to_base(cents, rate_e8) if cents >= 0 else -_to_base(-cents, rate_e8)


NULL = "\\N"  # COPY's text format


def _pg_other(value) -> str:
    """A non-string value in COPY's text format."""
    if value is None:
        return NULL
    if value.__class__ is bool:
        return "t" if value else "f"
    return str(value)


class Table:
    """Rows for one table, buffered until the chunk is written. Every concrete column must be
    given, so a column added to a model later makes the seed fail loudly, not load NULLs."""

    def __init__(self, model, columns: list[str], *, postgres: bool):
        concrete = [field.column for field in model._meta.concrete_fields]
        if sorted(columns) != sorted(concrete):
            raise RuntimeError(
                f"seed_scale is out of step with {model._meta.label}: it writes {sorted(columns)}, "
                f"the table has {sorted(concrete)}."
            )
        self.model = model
        self.name = model._meta.db_table
        self.columns = columns
        self.postgres = postgres
        self.rows: list = []
        self.count = 0
        start = model._base_manager.aggregate(top=Max("pk"))["top"] or 0
        self.next_id = start + 1

    def take_id(self) -> int:
        pk = self.next_id
        self.next_id += 1
        return pk

    def add(self, row: tuple) -> None:
        if self.postgres:
            # COPY's text format. Strings are not escaped: every text the seed writes is built from
            # its own word lists, numbers and dates, none with a tab, newline or backslash.
            self.rows.append("\t".join([value if value.__class__ is str else _pg_other(value) for value in row]))
        else:
            self.rows.append(row)

    def take_rows(self) -> list:
        """The rows buffered so far, handed to a writer (and counted as written)."""
        rows, self.rows = self.rows, []
        self.count += len(rows)
        return rows

    def write(self, cursor, rows: list) -> None:
        if not rows:
            return
        ops = cursor.db.ops
        table = ops.quote_name(self.name)
        quoted = ", ".join(ops.quote_name(column) for column in self.columns)
        if self.postgres:
            with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for start in range(0, len(rows), 10_000):
                    block = rows[start : start + 10_000]
                    block.append("")
                    copy.write("\n".join(block))
        else:
            marks = ", ".join(["%s"] * len(self.columns))
            # Names from the models' metadata, values as parameters.
            cursor.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({marks})", rows)  # noqa: S608

    def move_sequence(self, cursor, last_id: int) -> None:
        """PostgreSQL: the id sequence continues after `last_id` (or where it was, if further)."""
        if self.postgres and last_id > 0:
            cursor.execute(
                "SELECT setval(sequence, GREATEST(%s, nextval(sequence))) "
                "FROM (SELECT pg_get_serial_sequence(%s, 'id') AS sequence) AS serial",
                [last_id, self.name],
            )


def _write_chunk(batches: list[tuple[Table, list, int]], *, own_connection: bool = False) -> None:
    """Write one chunk of customers, every row of theirs, in one transaction, and move the id
    sequences past it. `batches`: (table, rows, last id assigned). In a writer thread
    (`own_connection`) the thread's connection is closed afterwards."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for table, rows, _last_id in batches:
                table.write(cursor, rows)
            for table, _rows, last_id in batches:
                table.move_sequence(cursor, last_id)
    finally:
        if own_connection:
            connection.close()


# --- In-memory state of one customer's documents -----------------------------------------------


class _Invoice:
    __slots__ = (
        "base",
        "credit_day",
        "disputed",
        "due",
        "entry_id",
        "fate",
        "gross",
        "id",
        "issue",
        "lines",
        "net",
        "number",
        "open",
        "open_base",
        "rate",
        "rate_text",
        "settled",
        "tax",
    )


class _Credit:
    """A payment or credit note as credit to apply: what is left of it and at what rate."""

    __slots__ = (
        "amount",
        "base",
        "day",
        "entry_id",
        "id",
        "invoice_id",
        "kind",
        "label",
        # payments
        "method",
        "net",
        # credit notes
        "number",
        "rate",
        "rate_text",
        "reason",
        "reference",
        "tax",
        "unapplied",
        "unapplied_base",
        "used_up",
    )


# --- The seed ------------------------------------------------------------------------------------


@dataclass
class _Setup:
    actor: object  # the system user every seeded row is created by
    actor_id: int
    rep_ids: list[int]
    rep_names: list[str]
    collector_ids: list[int]
    accounts: dict[str, int]
    products: list[tuple[int, str, int, int, int]]  # id, name, revenue account, price cents (base), max quantity
    standard_tax: tuple[int, int, int]  # id, basis points, liability account
    zero_tax: tuple[int, int, int]
    permission_ids: tuple[int, int]
    rates: dict[int, tuple[int, str]]  # day index → (rate × 1e8, as stored)
    rates_added: int


def seed_scale(
    *,
    customers: int,
    invoices: int,
    seed: int = 1,
    progress: bool = True,
    reps: int = 50,
    big_rep_customers: int = 2000,
    collectors: int = 3,
    chunk_customers: int = 2000,
    writers: int = 3,
    allow_existing: bool = False,
    today: date | None = None,
) -> ScaleSummary:
    """Load `customers` customers and `invoices` invoices with their payments, credit notes,
    allocations and journal entries, as billing.services would have left them. Refused, with
    nothing written, when the database holds customers already (unless `allow_existing`)."""
    if customers < 1 or invoices < 0:
        raise SeedRefused("Give at least one customer and no negative number of invoices.")
    if reps < 2 or collectors < 1:
        raise SeedRefused("The seed needs at least two sales reps and one collector.")
    if not 0 < big_rep_customers <= customers:
        raise SeedRefused(f"The big rep's {big_rep_customers} customers must be between 1 and {customers}.")
    if not allow_existing and Customer.objects.exists():
        raise SeedRefused(
            f"The database holds {Customer.objects.count():,} customers already; seed_scale loads into an empty "
            "one (create a fresh database, or pass --allow-existing to add to this one)."
        )
    today = today or timezone.localdate()
    summary = ScaleSummary()
    show = progress and sys.stderr.isatty()
    postgres = connection.vendor == "postgresql"
    started = time.monotonic()

    plan = _Plan(customers=customers, invoices=invoices, seed=seed, big_rep_customers=big_rep_customers, show=show)
    summary.phases["plan"] = time.monotonic() - started

    mark = time.monotonic()
    setup = _set_up(reps=reps, collectors=collectors, seed=seed, today=today)
    summary.phases["setup"] = time.monotonic() - mark

    mark = time.monotonic()
    loader = _Loader(plan=plan, setup=setup, seed=seed, today=today, postgres=postgres, summary=summary)
    with transaction.atomic():
        loader.reserve_numbers()
    # On PostgreSQL, chunks are written and committed by `writers` threads, each on its own
    # connection, while the next chunk is generated: most of a chunk's cost is the server's
    # checking at commit (foreign keys, the ledger's balance triggers), which runs in parallel.
    # Inside a caller's transaction (a test) other connections could not see the setup rows,
    # so everything is written here, in that transaction.
    parallel = postgres and writers > 1 and not connection.in_atomic_block
    bar = tqdm(total=invoices, desc="Invoices", unit="inv", unit_scale=True, disable=not show, file=sys.stderr)
    with bar, ThreadPoolExecutor(max_workers=writers if parallel else 1) as pool:
        pending: deque[Future] = deque()
        for first in range(0, customers, chunk_customers):
            last = min(first + chunk_customers, customers)
            for index in range(first, last):
                loader.customer(index)
            batches = loader.take_chunk()
            done = sum(plan.counts[first:last])
            if not parallel:
                _write_chunk(batches)
                bar.update(done)
                continue
            while len(pending) >= writers:
                pending.popleft().result()
            future = pool.submit(_write_chunk, batches, own_connection=True)
            future.add_done_callback(lambda _future, done=done: bar.update(done))
            pending.append(future)
        for future in pending:
            future.result()
    summary.phases["load"] = time.monotonic() - mark

    mark = time.monotonic()
    if postgres:
        # VACUUM, not only ANALYZE: rows loaded by COPY have no visibility-map bits yet, so every
        # index-only scan would still read the table until autovacuum passes (and the server may
        # run with autovacuum off). A bulk load ends the way pg_restore's advice says.
        # Inside a transaction (a test's) VACUUM cannot run; ANALYZE alone still can.
        command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
        tables = [table.name for table in loader.tables.values()]
        with connection.cursor() as cursor:
            for name in tqdm(tables, desc=command, unit="table", disable=not show, file=sys.stderr):
                cursor.execute(f"{command} {connection.ops.quote_name(name)}")
    summary.phases["vacuum"] = time.monotonic() - mark
    summary.phases["total"] = time.monotonic() - started

    summary.customers = customers
    summary.reps, summary.collectors = reps, collectors
    summary.big_rep, summary.big_rep_customers = setup.rep_names[0], big_rep_customers
    summary.exchange_rates = setup.rates_added
    summary.largest_customer = _account_number(plan.account_offset + plan.largest + 1)
    summary.largest_customer_invoices = plan.counts[plan.largest]
    tables = loader.tables
    summary.contacts = tables["contact"].count
    summary.invoices, summary.invoice_lines = tables["invoice"].count, tables["invoice_line"].count
    summary.payments, summary.payment_allocations = tables["payment"].count, tables["payment_allocation"].count
    summary.credit_notes = tables["credit_note"].count
    summary.journal_entries, summary.journal_lines = tables["entry"].count, tables["line"].count
    return summary


def _account_number(number: int) -> str:
    return f"C-{number:06d}"


class _Plan:
    """Who has how many invoices, and how many invoices and credit notes fall on each day: the
    first, cheap pass that lets the second number documents in date order across customers."""

    def __init__(self, *, customers: int, invoices: int, seed: int, big_rep_customers: int, show: bool):
        rng = random.Random(f"seed_scale:{seed}:plan")
        self.customers = customers
        self.big_rep_customers = big_rep_customers
        # Customers of the big rep: a fixed permutation's first `big_rep_customers` (spread out).
        step = next(p for p in range(7919, 10**7) if math.gcd(p, customers) == 1)
        self.big_rep_step = step
        last = Customer.objects.filter(account_number__regex=r"^C-[0-9]+$").order_by("-account_number").first()
        self.account_offset = int(last.account_number[2:]) if last else 0
        # Invoices per customer: one largest customer, the rest log-normally skewed.
        self.largest = next(i for i in range(customers) if self.owned_by_big_rep(i))
        target = round(invoices * LARGEST_CUSTOMER_SHARE) if customers > 1 else invoices
        weights = [0.0 if rng.random() < NO_INVOICE_SHARE else rng.lognormvariate(0, 1) for _ in range(customers)]
        weights[self.largest] = 0.0
        rest = invoices - target
        total = sum(weights) or 1.0
        shares = [weight * rest / total for weight in weights]
        counts = [int(share) for share in shares]
        short = rest - sum(counts)
        if short:
            by_fraction = sorted(range(customers), key=lambda i: counts[i] - shares[i])
            for i in by_fraction[:short]:
                counts[i] += 1
        counts[self.largest] += target
        top = max(range(customers), key=lambda i: (counts[i], i == self.largest))
        counts[self.largest], counts[top] = counts[top], counts[self.largest]
        self.counts = counts
        self.invoices_on: list[int] = [0] * (DAYS + 1)
        self.credit_notes_on: list[int] = [0] * (DAYS + 1)
        for index in tqdm(range(customers), desc="Plan", unit="cust", disable=not show, file=sys.stderr):
            days, credit_days = self.skeleton(seed, index)
            for day in days:
                self.invoices_on[day] += 1
            for day in credit_days:
                if day is not None:
                    self.credit_notes_on[day] += 1
        self.credit_notes = sum(self.credit_notes_on)

    def owned_by_big_rep(self, index: int) -> bool:
        return (index * self.big_rep_step) % self.customers < self.big_rep_customers

    def skeleton(self, seed: int, index: int) -> tuple[list[int], list[int | None]]:
        """A customer's invoice days (sorted) and, per invoice, the day of its credit note or None."""
        rng = random.Random(seed * 1_000_003 + index * 2)
        days = sorted(rng.randint(0, DAYS) for _ in range(self.counts[index]))
        credit_days = [
            min(day + rng.randint(3, 25), DAYS) if rng.random() < CREDIT_NOTE_SHARE else None for day in days
        ]
        return days, credit_days


def _set_up(*, reps: int, collectors: int, seed: int, today: date) -> _Setup:
    """Reference data through the ORM (users in their roles, the catalogue, exchange rates, the
    number series moved past the numbers this seed will use), in one transaction."""
    with audit.as_system(SYSTEM_ACTOR), transaction.atomic():
        actor = audit.system_actor(SYSTEM_ACTOR)
        password = make_password(PASSWORD)
        rep_users = [
            _user(f"rep{number:02d}", Role.SALES, actor=actor, password=password, index=number)
            for number in range(1, reps + 1)
        ]
        collector_users = [
            _user(f"collector{number}", Role.ACCOUNTS_RECEIVABLE, actor=actor, password=password, index=number)
            for number in range(1, collectors + 1)
        ]
        catalogue = demo.ensure_catalogue(actor=actor)
        foreign = _foreign_currency()
        start = today - timedelta(days=DAYS)
        rates_added = _ensure_rates(seed=seed, currency=foreign, start=start, today=today)
        rates = _rates_by_day(foreign, start=start)
        products = []
        for sku in SKUS:
            product = catalogue.products[sku]
            item = catalogue.items[sku]
            price_cents = int(product.unit_price * 100)
            products.append((product.pk, product.name, product.revenue_account_id, price_cents, item.quantities[1]))
        standard, zero = catalogue.tax_rates["standard"], catalogue.tax_rates["zero"]
        accounts = dict(Account.objects.exclude(role="").values_list("role", "pk"))
        view, change = (
            Permission.objects.get(content_type__app_label="crm", codename=codename).pk
            for codename in ("view_customer", "change_customer")
        )
    return _Setup(
        actor=actor,
        actor_id=actor.pk,
        rep_ids=[user.pk for user in rep_users],
        rep_names=[user.username for user in rep_users],
        collector_ids=[user.pk for user in collector_users],
        accounts=accounts,
        products=products,
        standard_tax=(standard.pk, int(standard.rate * 10000), standard.liability_account_id),
        zero_tax=(zero.pk, int(zero.rate * 10000), zero.liability_account_id),
        permission_ids=(view, change),
        rates=rates,
        rates_added=rates_added,
    )


def _foreign_currency() -> str:
    return "EUR" if settings.CONCORD_BASE_CURRENCY != "EUR" else "USD"


def _user(username: str, role: Role, *, actor, password: str, index: int):
    first = FIRST_NAMES[index % len(FIRST_NAMES)]
    last = LAST_NAMES[(index * 7) % len(LAST_NAMES)]
    user, _created = get_user_model().objects.get_or_create(
        username=username,
        defaults={"first_name": first, "last_name": last, "email": f"{username}@concord.example", "password": password},
    )
    crm_services.assign_role(actor=actor, user=user, role=role)
    return user


def _reserve_numbers(series: str, count: int, *, actor) -> int:
    """Move the series past `count` numbers and return the first of them (gapless: the seed
    uses every one)."""
    sequence = NumberSequence.objects.select_for_update().filter(series=series).first()
    if sequence is None:
        sequence = NumberSequence(series=series, prefix=f"{series}-")
        audit.save_as(sequence, actor=actor, force_insert=True)
    first = sequence.next_number
    sequence.next_number = first + count
    audit.save_as(sequence, actor=actor)
    return first


def _ensure_rates(*, seed: int, currency: str, start: date, today: date) -> int:
    """A rate for every day of the period (a day that has one keeps it): a mean-reverting walk."""
    existing = set(
        ExchangeRate.objects.filter(currency=currency, rate_date__gte=start, rate_date__lte=today).values_list(
            "rate_date", flat=True
        )
    )
    rng = random.Random(f"seed_scale:{seed}:fx:{currency}")
    centre = 1.10 if currency == "EUR" else 0.91
    value = centre
    added = []
    for offset in range(DAYS + 1):
        day = start + timedelta(days=offset)
        if day.weekday() < 5:
            value += (centre - value) * 0.03 + rng.gauss(0, 0.004)
            value = min(max(value, centre * 0.95), centre * 1.05)
        if day not in existing:
            added.append(
                ExchangeRate(currency=currency, rate_date=day, rate=Decimal(f"{value:.6f}"), source="seed_scale")
            )
    ExchangeRate.objects.bulk_create(added)
    return len(added)


def _rates_by_day(currency: str, *, start: date) -> dict[int, tuple[int, str]]:
    """The rate in force each day (ledger.services.rate_on: the latest on or before it)."""
    stored = dict(
        ExchangeRate.objects.filter(currency=currency, rate_date__lte=start + timedelta(days=DAYS)).values_list(
            "rate_date", "rate"
        )
    )
    rates = {}
    latest = None
    earlier = [day for day in stored if day < start]
    if earlier:
        latest = stored[max(earlier)]
    for offset in range(DAYS + 1):
        latest = stored.get(start + timedelta(days=offset), latest)
        rates[offset] = (int(latest * 100_000_000), str(latest))
    return rates


class _Loader:
    """The second pass: each customer's documents and journal entries, as rows."""

    def __init__(self, *, plan: _Plan, setup: _Setup, seed: int, today: date, postgres: bool, summary: ScaleSummary):
        self.plan, self.setup, self.seed, self.summary = plan, setup, seed, summary
        self.postgres = postgres
        self.base = settings.CONCORD_BASE_CURRENCY
        self.foreign = _foreign_currency()
        self.start = today - timedelta(days=DAYS)
        self.days = [(self.start + timedelta(days=offset)).isoformat() for offset in range(DAYS + 1)]
        suffix = "+00" if postgres else ""
        self.stamps = [f"{day} 09:00:00{suffix}" for day in self.days]
        self.today = DAYS
        self.invoice_used = [0] * (DAYS + 1)
        self.credit_note_used = [0] * (DAYS + 1)
        self.invoice_first_on: list[int] = []
        self.credit_note_first_on: list[int] = []
        accounts = setup.accounts
        self.ar = accounts[Account.Role.AR_CONTROL]
        self.discounts = accounts[Account.Role.SALES_DISCOUNTS]
        self.fx = accounts[Account.Role.FX_GAIN_LOSS]
        self.cash = {method: accounts[role] for method, role in METHOD_ACCOUNT_ROLES.items()}
        p = postgres
        self.tables = {
            "customer": Table(Customer, CUSTOMER_COLUMNS, postgres=p),
            "contact": Table(Contact, CONTACT_COLUMNS, postgres=p),
            "grant": Table(
                CustomerUserObjectPermission, ["id", "permission_id", "user_id", "content_object_id"], postgres=p
            ),
            "invoice": Table(Invoice, INVOICE_COLUMNS, postgres=p),
            "invoice_line": Table(InvoiceLine, [*LINE_COLUMNS, "invoice_id", "unit_cost"], postgres=p),
            "payment": Table(Payment, PAYMENT_COLUMNS, postgres=p),
            "payment_allocation": Table(PaymentAllocation, [*ALLOCATION_COLUMNS, "payment_id"], postgres=p),
            "credit_note": Table(CreditNote, CREDIT_NOTE_COLUMNS, postgres=p),
            "credit_note_line": Table(CreditNoteLine, [*LINE_COLUMNS, "credit_note_id"], postgres=p),
            # applied_with_id stays empty: the seed applies credit notes directly, not through a
            # payment as an accounting package may.
            "credit_note_allocation": Table(
                CreditNoteAllocation, [*ALLOCATION_COLUMNS, "credit_note_id", "applied_with_id"], postgres=p
            ),
            "entry": Table(JournalEntry, ENTRY_COLUMNS, postgres=p),
            "line": Table(JournalLine, JOURNAL_LINE_COLUMNS, postgres=p),
        }
        self.t = self.tables

    def reserve_numbers(self) -> None:
        """Move the number series past the numbers this seed uses, before any is used: a run that
        fails leaves a gap, never a number issued twice."""
        actor = self.setup.actor
        self.invoice_first_on = self._firsts(
            self.plan.invoices_on, _reserve_numbers("INV", sum(self.plan.invoices_on), actor=actor)
        )
        self.credit_note_first_on = self._firsts(
            self.plan.credit_notes_on, _reserve_numbers("CN", self.plan.credit_notes, actor=actor)
        )

    @staticmethod
    def _firsts(per_day: list[int], first: int) -> list[int]:
        firsts, running = [], first
        for count in per_day:
            firsts.append(running)
            running += count
        return firsts

    def take_chunk(self) -> list[tuple[Table, list, int]]:
        return [(table, table.take_rows(), table.next_id - 1) for table in self.tables.values()]

    # Ledger ----------------------------------------------------------------------------------

    def _entry(self, day: int, memo: str, source: tuple[str, int], event: str, lines: list[tuple]) -> int:
        """Post one entry: lines are (account, base amount signed, currency, amount signed,
        customer); zero lines are dropped and the rest must balance, as post_entry requires."""
        kept = [line for line in lines if line[1]]
        if len(kept) < 2 or sum(line[1] for line in kept):
            raise RuntimeError(f"seed_scale built an unbalanced entry: {memo} {lines}")
        entry_id = self.t["entry"].take_id()
        self.t["entry"].add(
            (entry_id, self.days[day], memo[:300], source[0], str(source[1]), event, None, self.setup.actor_id,
             self.stamps[day])
        )  # fmt: skip
        journal = self.t["line"]
        entry_date = self.days[day]
        for account, amount, currency, amount_currency, customer_id in kept:
            debit = _money(amount) if amount > 0 else "0.00"
            credit = _money(-amount) if amount < 0 else "0.00"
            line_id = journal.next_id
            journal.next_id += 1
            if self.postgres:
                # The most numerous rows, written straight in COPY's text format.
                customer = NULL if customer_id is None else customer_id
                journal.rows.append(
                    f"{line_id}\t{entry_id}\t{account}\t{debit}\t{credit}\t{customer}\t{currency}\t"
                    f"{_money(amount_currency)}\t{entry_date}"
                )
            else:
                row = (line_id, entry_id, account, debit, credit, customer_id, currency, _money(amount_currency))
                journal.rows.append((*row, entry_date))
        return entry_id

    def _sales_lines(self, lines, rate_e8: int, sign: int, currency: str) -> tuple[list[tuple], int]:
        """ledger.posting._sales_lines: revenue (net + discount), discount and tax per line."""
        posted, receivable = [], 0
        for line in lines:
            net, discount_net, tax, tax_account, revenue_account = line[6], line[7], line[8], line[10], line[11]
            net_base, discount_base, tax_base = (
                _to_base(net, rate_e8),
                _to_base(discount_net, rate_e8),
                _to_base(tax, rate_e8),
            )
            posted.append(
                (revenue_account, sign * (net_base + discount_base), currency, sign * (net + discount_net), None)
            )
            if discount_base or discount_net:
                posted.append((self.discounts, -sign * discount_base, currency, -sign * discount_net, None))
            if tax_base or tax:
                posted.append((tax_account, sign * tax_base, currency, sign * tax, None))
            receivable += net_base + tax_base
        return posted, receivable

    def _apply(self, credit: _Credit, invoice: _Invoice, amount: int, day: int, customer_id: int, currency: str):
        """billing.services._apply: each side gives up its carrying value's portion; realised FX
        on the difference."""
        table = self.t["payment_allocation" if credit.kind == "payment" else "credit_note_allocation"]
        invoice_base = _portion(amount, invoice.open, invoice.open_base, invoice.rate)
        credit_base = _portion(amount, credit.unapplied, credit.unapplied_base, credit.rate)
        allocation_id = table.take_id()
        fx_entry = None
        difference = credit_base - invoice_base
        if difference:
            fx_entry = self._entry(
                day,
                f"Realised FX on settling {invoice.number} with {credit.label}",
                (f"billing.{table.model._meta.model_name}", allocation_id),
                "fx_realised",
                [(self.ar, difference, currency, 0, customer_id), (self.fx, -difference, self.base, -difference, None)],
            )
        row = (allocation_id, invoice.id, _money(amount), self.days[day], _money(invoice_base), _money(credit_base),
               fx_entry, self.setup.actor_id, self.stamps[day], credit.id)  # fmt: skip
        table.add(row if credit.kind == "payment" else (*row, None))
        invoice.open -= amount
        invoice.open_base -= invoice_base
        if invoice.open == 0:
            invoice.settled = max(invoice.settled or day, day)
        credit.unapplied -= amount
        credit.unapplied_base -= credit_base
        if credit.unapplied == 0:
            credit.used_up = max(credit.used_up or day, day)

    # One customer ----------------------------------------------------------------------------

    def customer(self, index: int) -> None:
        plan, setup, t = self.plan, self.setup, self.t
        rng = random.Random(self.seed * 1_000_003 + index * 2 + 1)
        customer_id = t["customer"].take_id()
        number = _account_number(plan.account_offset + index + 1)
        foreign = rng.random() < FOREIGN_SHARE
        currency = self.foreign if foreign else self.base
        country, cities, zero_rated = MARKETS[currency if currency in MARKETS else "OTHER"]
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(TRADES)}"
        if rng.random() < 0.5:
            name = f"{rng.choice(WORDS)} {rng.choice(TRADES)}"
        name = f"{name} {number[2:]}" if rng.random() < 0.1 else name
        terms = rng.choice(PAYMENT_TERMS)
        profile = rng.choices(list(PROFILES), weights=[weight for weight, _, _ in PROFILES.values()])[0]
        _, open_share, lateness = PROFILES[profile]
        batch_payer = rng.random() < BATCH_PAYER_SHARE
        method = rng.choices(list(METHODS), weights=list(METHODS.values()))[0]
        if plan.owned_by_big_rep(index):
            owner = setup.rep_ids[0]
        else:
            owner = setup.rep_ids[1 + rng.randrange(len(setup.rep_ids) - 1)]
        tax = setup.zero_tax if zero_rated else setup.standard_tax
        rate_of = (lambda day: (100_000_000, "1")) if not foreign else setup.rates.__getitem__
        factor = PRICE_FACTOR.get(currency, Decimal(1)) if foreign else Decimal(1)
        label = f"{name}"

        days, credit_days = plan.skeleton(self.seed, index)
        invoices: list[_Invoice] = []
        events: list[tuple] = []  # (day, order, kind, payload)
        for issue, credit_day in zip(days, credit_days, strict=True):
            invoice = self._invoice(rng, customer_id, label, currency, issue, terms, rate_of, factor, tax)
            invoices.append(invoice)
            invoice.credit_day = credit_day
            if credit_day is not None:
                events.append((credit_day, 0, "credit", invoice))
            self._plan_payment(rng, invoice, open_share, lateness, events, batch_payer)
        if invoices and rng.random() < ON_ACCOUNT_SHARE:
            day = rng.randint(invoices[0].issue, self.today)
            events.append((day, 2, "on_account", rng.randint(5, 200) * 1000))
        events = self._batch(events) if batch_payer else events
        events.sort(key=lambda event: (event[0], event[1]))

        credits: list[_Credit] = []
        reference = 0
        for day, _, kind, payload in events:
            if kind == "credit":
                credits.append(self._credit_note(rng, payload, customer_id, label, currency, day))
                continue
            allocations, total = [], 0
            if kind == "on_account":
                total = payload
            else:
                for invoice, amount in payload:
                    # None: whatever is still open; a set amount is a part payment, never all of it.
                    amount = invoice.open if amount is None else min(amount, invoice.open - 1)
                    if amount > 0:
                        allocations.append((invoice, amount))
                        total += amount
                if len(allocations) > 1 and rng.random() < OVERPAY_SHARE:
                    total = -(-total // 10_000) * 10_000 + 10_000  # rounded up to a round sum
            if total <= 0:
                continue
            reference += 1
            credit = self._payment(
                customer_id, label, currency, day, total, method, f"REM-{number[2:]}-{reference}", rate_of
            )
            credits.append(credit)
            for invoice, amount in allocations:
                self._apply(credit, invoice, amount, day, customer_id, currency)

        # Rows whose figures are final only now.
        open_total = unapplied_total = 0
        overdue = False
        for invoice in invoices:
            open_total += invoice.open
            if invoice.open and invoice.due < self.today:
                overdue = True
                self.summary.overdue_invoices += 1
            self._invoice_row(rng, invoice, customer_id, currency)
        for credit in credits:
            unapplied_total += credit.unapplied
            if credit.kind == "payment":
                self.summary.unapplied_payments += credit.unapplied > 0
                t["payment"].add(
                    (credit.id, customer_id, self.days[credit.day], _money(credit.amount), currency, credit.method,
                     credit.reference, Payment.Status.CLEARED, credit.rate_text, _money(credit.base),
                     _money(credit.unapplied), _money(credit.unapplied_base),
                     self.days[credit.used_up] if credit.used_up is not None else None, None, credit.entry_id, None,
                     "", "", setup.actor_id, self.stamps[credit.day])
                )  # fmt: skip
            else:
                t["credit_note"].add(
                    (credit.id, customer_id, credit.invoice_id, "CN", credit.number, self.days[credit.day], currency,
                     credit.rate_text, credit.reason, _money(credit.net), _money(credit.tax), _money(credit.amount),
                     _money(credit.base), _money(credit.unapplied), _money(credit.unapplied_base),
                     self.days[credit.used_up] if credit.used_up is not None else None, credit.entry_id, "", "",
                     setup.actor_id, self.stamps[credit.day])
                )  # fmt: skip
        collector = None
        if overdue and rng.random() < COLLECTED_SHARE:
            collector = setup.collector_ids[index % len(setup.collector_ids)]
        created = self.stamps[days[0]] if days else self.stamps[0]
        status = rng.choices(["active", "on_hold", "archived"], weights=[95, 4, 1])[0]
        credit_limit = rng.choice([None, "5000.00", "10000.00", "25000.00", "50000.00", "100000.00"])
        t["customer"].add(
            (customer_id, number, name, f"{name} {rng.choice(['Ltd', 'Inc', 'GmbH', 'LLC'])}",
             f"{country}{rng.randrange(10**8, 10**9)}", f"{rng.randint(1, 250)} {rng.choice(STREETS)} Street", "",
             rng.choice(cities), "", f"{rng.randrange(10000, 99999)}", country, currency, terms, credit_limit, status,
             owner, collector, "", "", None, 0, _money(open_total), _money(unapplied_total),
             _money(open_total - unapplied_total), created, created)
        )  # fmt: skip
        view, change = setup.permission_ids
        t["grant"].add((t["grant"].take_id(), view, owner, customer_id))
        t["grant"].add((t["grant"].take_id(), change, owner, customer_id))
        if rng.random() < CONTACT_SHARE:
            domain = "".join(ch for ch in name.lower() if ch.isalnum())[:24] or "example"
            for position in range(1 if rng.random() < 0.7 else 2):
                first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                t["contact"].add(
                    (t["contact"].take_id(), customer_id, f"{first} {last}",
                     f"{first.lower()}.{last.lower()}{position or ''}@{domain}.example",
                     f"+1 555 {rng.randrange(1000000, 9999999)}", rng.choice(CONTACT_ROLES), position == 0, created)
                )  # fmt: skip

    def _invoice(self, rng, customer_id, label, currency, issue, terms, rate_of, factor, tax) -> _Invoice:
        invoice = _Invoice()
        invoice.id = self.t["invoice"].take_id()
        invoice.number = f"INV-{self.invoice_first_on[issue] + self.invoice_used[issue]:06d}"
        self.invoice_used[issue] += 1
        invoice.issue, invoice.due = issue, issue + terms
        invoice.rate, invoice.rate_text = rate_of(issue)
        tax_id, tax_bp, tax_account = tax
        lines = []
        for position, product in enumerate(rng.sample(self.setup.products, k=rng.choice([1, 1, 2, 2, 3])), start=1):
            product_id, description, revenue_account, price, max_quantity = product
            price = int((Decimal(price) * factor).quantize(Decimal(1))) if factor != 1 else price
            quantity = rng.randint(1, max(1, min(max_quantity, 12)))
            percent = rng.choice([5, 10]) if rng.random() < 0.1 else 0
            lines.append(_price(position, product_id, description, quantity, price, percent, tax_id, tax_bp,
                                tax_account, revenue_account))  # fmt: skip
        invoice.lines = lines
        invoice.net = sum(line[6] for line in lines)
        invoice.tax = sum(line[8] for line in lines)
        invoice.gross = invoice.net + invoice.tax
        posted, receivable = self._sales_lines(lines, invoice.rate, -1, currency)
        posted.append((self.ar, receivable, currency, invoice.gross, customer_id))
        invoice.entry_id = self._entry(
            issue, f"Invoice {invoice.number} to {label}", ("billing.invoice", invoice.id), "invoice_issued", posted
        )
        invoice.base = invoice.open_base = receivable
        invoice.open = invoice.gross
        invoice.settled = None
        invoice.disputed = False
        return invoice

    def _plan_payment(self, rng, invoice: _Invoice, open_share, lateness, events, batch_payer) -> None:
        """What happens to an invoice: paid (in one go, in two instalments, or in a batch), or
        left open (part paid, disputed) — past due mostly, since most bills get paid in time."""
        earliest = invoice.issue if invoice.credit_day is None else invoice.credit_day
        if invoice.due >= self.today:
            left_open = rng.random() >= NOT_YET_DUE_PAID_SHARE
            pay_day = rng.randint(earliest, self.today)
        else:
            left_open = rng.random() < open_share
            pay_day = min(max(invoice.due + rng.randint(*lateness), earliest), self.today)
        invoice.fate = "open" if left_open else "paid"
        if left_open:
            if invoice.due < self.today:
                if rng.random() < PARTIAL_SHARE:
                    part = invoice.gross * rng.randint(30, 70) // 100
                    events.append((rng.randint(earliest, self.today), 1, "pay", [(invoice, part)]))
                invoice.disputed = rng.random() < DISPUTED_SHARE
            return
        if pay_day - earliest > 20 and rng.random() < INSTALMENT_SHARE:
            events.append((pay_day - 15, 1, "pay", [(invoice, invoice.gross // 2)]))
            events.append((pay_day, 1, "pay", [(invoice, None)]))
            return
        events.append((pay_day, 1, "batch" if batch_payer else "pay", [(invoice, None)]))

    def _batch(self, events: list[tuple]) -> list[tuple]:
        """A batch payer pays each month's settled invoices in one payment, on the month's last
        payment day."""
        months: dict[tuple, list] = defaultdict(list)
        kept = []
        for event in events:
            if event[2] == "batch":
                months[self.days[event[0]][:7]].append(event)
            else:
                kept.append(event)
        for group in months.values():
            day = max(event[0] for event in group)
            group.sort(key=lambda event: event[3][0][0].due)
            kept.append((day, 1, "pay", [tranche for event in group for tranche in event[3]]))
        return kept

    def _payment(self, customer_id, label, currency, day, amount, method, reference, rate_of) -> _Credit:
        payment = _Credit()
        payment.kind = "payment"
        payment.id = self.t["payment"].take_id()
        payment.day, payment.amount = day, amount
        payment.rate, payment.rate_text = rate_of(day)
        payment.base = payment.unapplied_base = _to_base(amount, payment.rate)
        payment.unapplied, payment.used_up = amount, None
        payment.method, payment.reference = method, reference
        method_label = METHOD_LABELS[method]
        payment.label = f"{_money(amount)} {currency} on {self.days[day]} ({method_label})"
        payment.entry_id = self._entry(
            day,
            f"Payment from {label} ({method_label} {reference})".strip(),
            ("billing.payment", payment.id),
            "payment_received",
            [
                (self.cash[method], payment.base, currency, amount, None),
                (self.ar, -payment.base, currency, -amount, customer_id),
            ],
        )
        return payment

    def _credit_note(self, rng, invoice: _Invoice, customer_id, label, currency, day) -> _Credit:
        """A credit note against the invoice, at its rate, applied to it at once (issue_credit_note)."""
        note = _Credit()
        note.kind = "credit_note"
        note.id = self.t["credit_note"].take_id()
        note.number = f"CN-{self.credit_note_first_on[day] + self.credit_note_used[day]:06d}"
        self.credit_note_used[day] += 1
        note.day, note.invoice_id = day, invoice.id
        note.rate, note.rate_text = invoice.rate, invoice.rate_text
        first = invoice.lines[0]
        if len(invoice.lines) == 1 and rng.random() < 0.35:
            lines = invoice.lines  # the whole invoice credited
        else:
            quantity = rng.randint(1, first[2])
            lines = [
                _price(1, first[0], first[1], quantity, first[3], first[4], first[9], first[12], first[10], first[11])
            ]
        note.reason = rng.choice(CREDIT_REASONS).format(item=first[1])
        note.net = sum(line[6] for line in lines)
        note.tax = sum(line[8] for line in lines)
        note.amount = note.net + note.tax
        posted, receivable = self._sales_lines(lines, note.rate, 1, currency)
        posted.append((self.ar, -receivable, currency, -note.amount, customer_id))
        note.entry_id = self._entry(
            day, f"Credit note {note.number} to {label}", ("billing.creditnote", note.id), "credit_note_issued", posted
        )
        note.base = note.unapplied_base = receivable
        note.unapplied, note.used_up = note.amount, None
        note.label = note.number
        table = self.t["credit_note_line"]
        for position, line in enumerate(lines, start=1):
            table.add((table.take_id(), position, *_line_values(line), note.id))
        amount = min(invoice.open, note.unapplied)
        if amount > 0:
            self._apply(note, invoice, amount, day, customer_id, currency)
        return note

    def _invoice_row(self, rng, invoice: _Invoice, customer_id: int, currency: str) -> None:
        if invoice.open == 0:
            status = Invoice.Status.PAID
        elif invoice.open < invoice.gross:
            status = Invoice.Status.PARTIALLY_PAID
        else:
            status = Invoice.Status.ISSUED
        is_open = invoice.open > 0
        self.summary.open_invoices += is_open
        disputed = is_open and invoice.disputed
        self.summary.disputed_invoices += disputed
        dispute_day = min(invoice.due + 10, self.today)
        self.t["invoice"].add(
            (invoice.id, customer_id, "INV", invoice.number, status, currency, self.days[invoice.issue],
             (self.start + timedelta(days=invoice.due)).isoformat(), invoice.rate_text, _money(invoice.net),
             _money(invoice.tax), _money(invoice.gross), _money(invoice.base), _money(invoice.open),
             _money(invoice.open_base), disputed, rng.choice(DISPUTE_REASONS) if disputed else "",
             self.stamps[dispute_day] if disputed else None, "", "import", "", "", None, None, invoice.entry_id, None,
             self.days[invoice.settled] if invoice.settled is not None and not is_open else None, self.setup.actor_id,
             self.stamps[invoice.issue], self.stamps[max(invoice.settled or invoice.issue, invoice.issue)])
        )  # fmt: skip
        table = self.t["invoice_line"]
        for line in invoice.lines:
            table.add((table.take_id(), line[13], *_line_values(line), invoice.id, None))


def _portion(amount: int, of_amount: int, of_base: int, rate: int) -> int:
    """billing.services._portion: all of the carrying value when the whole is used, else the
    amount at the document's rate, never more than is left."""
    if amount == of_amount:
        return of_base
    return min(_to_base(amount, rate), of_base)


def _price(position, product_id, description, quantity, price, percent, tax_id, tax_bp, tax_account, revenue_account):
    """billing.pricing.price_line for a tax-exclusive line with an optional percentage discount,
    in cents. Returns (product, description, quantity, price, percent, subtotal, net,
    discount_net, tax, tax rate, tax account, revenue account, tax basis points, position)."""
    subtotal = quantity * price
    discount = (subtotal * percent + 50) // 100
    net = subtotal - discount
    tax = (net * tax_bp + 5000) // 10000
    return (product_id, description, quantity, price, percent, subtotal, net, discount, tax, tax_id, tax_account,
            revenue_account, tax_bp, position)  # fmt: skip


def _line_values(line) -> tuple:
    """The LineAmounts/PricedLine columns after `position`, as LINE_COLUMNS lists them."""
    product_id, description, quantity, price, percent, subtotal, net, discount, tax, tax_id = line[:10]
    revenue_account = line[11]
    return (
        product_id,
        description,
        str(quantity),
        _money(price),
        "percent" if percent else "none",
        str(percent),
        tax_id,
        revenue_account,
        _money(subtotal),
        _money(discount),
        _money(discount),  # tax exclusive: the discount has no tax in it
        _money(net),
        _money(tax),
        _money(net + tax),
    )


CUSTOMER_COLUMNS = [
    "id", "account_number", "display_name", "legal_name", "tax_id", "billing_line1", "billing_line2", "billing_city",
    "billing_region", "billing_postal_code", "billing_country", "currency", "payment_terms_days", "credit_limit",
    "status", "owner_id", "collector_id", "external_system", "external_id", "last_activity_at", "activity_count",
    "ar_open", "ar_unapplied", "ar_balance", "created_at", "updated_at",
]  # fmt: skip
CONTACT_COLUMNS = ["id", "customer_id", "name", "email", "phone", "role", "is_primary", "created_at"]
INVOICE_COLUMNS = [
    "id", "customer_id", "series", "number", "status", "currency", "issue_date", "due_date", "exchange_rate",
    "net_total", "tax_total", "gross_total", "base_gross", "open_amount", "open_base", "disputed", "dispute_reason",
    "disputed_at", "memo", "source", "external_system", "external_id", "recurring_template_id", "period_start",
    "issue_entry_id", "voided_on", "settled_on", "created_by_id", "created_at", "updated_at",
]  # fmt: skip
LINE_COLUMNS = [
    "id", "position", "product_id", "description", "quantity", "unit_price", "discount_type", "discount_value",
    "tax_rate_id", "revenue_account_id", "subtotal", "discount", "discount_net", "net", "tax", "gross",
]  # fmt: skip
PAYMENT_COLUMNS = [
    "id", "customer_id", "received_on", "amount", "currency", "method", "reference", "status", "exchange_rate",
    "base_amount", "unapplied_amount", "unapplied_base", "used_up_on", "idempotency_key", "entry_id", "failed_on",
    "external_system", "external_id", "created_by_id", "created_at",
]  # fmt: skip
ALLOCATION_COLUMNS = [
    "id", "invoice_id", "amount", "allocated_on", "invoice_base", "credit_base", "fx_entry_id", "created_by_id",
    "created_at",
]  # fmt: skip
CREDIT_NOTE_COLUMNS = [
    "id", "customer_id", "invoice_id", "series", "number", "issue_date", "currency", "exchange_rate", "reason",
    "net_total", "tax_total", "gross_total", "base_gross", "unapplied_amount", "unapplied_base", "used_up_on",
    "entry_id", "external_system", "external_id", "created_by_id", "created_at",
]  # fmt: skip
ENTRY_COLUMNS = [
    "id", "entry_date", "memo", "source_type", "source_id", "event", "reversal_of_id", "created_by_id", "created_at"
]  # fmt: skip
JOURNAL_LINE_COLUMNS = [
    "id", "entry_id", "account_id", "debit", "credit", "customer_id", "currency", "amount_currency", "entry_date"
]  # fmt: skip
