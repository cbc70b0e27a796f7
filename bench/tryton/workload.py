"""Tryton's side of the scale benchmark (issue 6, measure 7).

Runs inside the Tryton virtualenv that `bench.tryton.environment` builds, never in Concord's own:
it imports trytond. It creates a fresh SQLite database in --workdir with account_invoice
activated, sets up a company's books and customers, then times the operations of Concord's
measure (5) — issue and post invoices in batches; record payments and allocate them — and the
aged balance of receivables, and writes the figures as JSON.

Tryton is driven in-process through its model API, the fastest honest way: one `Transaction` per
call as its RPC dispatcher runs them, calling the methods the dispatcher and the pay wizard call,
with no JSON-RPC encoding or HTTP in the timed path. Setup, which is not timed as a rate, goes
through proteus so that the company and chart wizards run as a person runs them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import random
import secrets
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from dateutil.relativedelta import relativedelta

DATABASE = "tryton"
ADMIN_EMAIL = "admin@example.com"
CENT = Decimal("0.01")
TAX_RATE = Decimal("0.10")
PAYMENT_TERM_DAYS = 30
HISTORY_DAYS = 365
AGING_CONTEXT = {"type": "customer", "term1": 30, "term2": 60, "term3": 90, "unit": "day"}
# What becomes of an issued invoice; the rest stay unpaid, and so show in the aging.
PAID_IN_FULL_SHARE = 0.75
PAID_IN_PART_SHARE = 0.15
SEED = 6
# Queued work a production Tryton leaves to its queue worker, off the caller's path: storing the
# rendered invoice report. Concord renders no document when it issues an invoice either.
DEFERRED_TASKS = {"print_invoice"}
REPORT_SAMPLE = 5
# Posting a back-dated invoice warns that its due date is past; a person confirms the warning.
POST_CONTEXT = {"_skip_warnings": True}


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if min(args.invoices, args.customers, args.batch_size) < 1:
        sys.exit("--invoices, --customers and --batch-size must each be at least 1")
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    result = run(
        invoices=args.invoices,
        customers=args.customers,
        batch_size=args.batch_size,
        workdir=workdir,
        database_cache=args.database_cache.resolve(),
    )
    text = json.dumps(result, indent=2)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    print(text)
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, required=True, help="customer invoices to issue and post")
    parser.add_argument("--customers", type=int, required=True, help="customers the invoices are spread over")
    parser.add_argument("--batch-size", type=int, required=True, help="invoices created and posted per transaction")
    parser.add_argument("--workdir", type=Path, required=True, help="folder for the SQLite database and config")
    parser.add_argument("--json-out", type=Path, help="also write the JSON result to this file")
    parser.add_argument(
        "--database-cache",
        type=Path,
        default=Path(sys.prefix) / "tryton-database-cache",
        help="folder keeping a database with account_invoice activated (default: inside this virtualenv)",
    )
    return parser.parse_args(argv)


def run(*, invoices: int, customers: int, batch_size: int, workdir: Path, database_cache: Path) -> dict:
    today = dt.date.today()
    rng = random.Random(SEED)  # noqa: S311 - made-up figures, repeatable from the seed

    started = time.perf_counter()
    config_file, from_cache = _fresh_database(workdir, database_cache)
    activated = time.perf_counter()
    books = _set_up_books(config_file, today=today)
    tryton = _InProcess(user=books.user, context=books.context)
    books.parties = _create_customers(tryton, count=customers)
    setup_seconds = time.perf_counter() - started

    plan = _plan_invoices(rng, books, count=invoices, today=today)
    issue_post = _issue_and_post(tryton, books, plan, batch_size=batch_size)
    payments = _plan_payments(rng, tryton, plan, today=today)
    record_allocate = _record_and_allocate(tryton, books, payments)
    six_months_ago = today - relativedelta(months=6)
    aging_today = _aged_balance(tryton, as_of=today)
    aging_then = _aged_balance(tryton, as_of=six_months_ago)

    import trytond

    return {
        "tryton_version": trytond.__version__,
        "database": "sqlite",
        "driven": "in-process: trytond's model API, one transaction per call as its RPC dispatcher runs them",
        "sizes": {"invoices": invoices, "customers": customers, "batch_size": batch_size},
        "measures": {
            "issue_post": issue_post,
            "record_allocate": record_allocate,
            "aging_today": aging_today,
            "aging_6_months_ago": aging_then,
        },
        "invoice_report": _sample_deferred_reports(tryton),
        "checks": _read_back(tryton, plan),
        "setup_seconds": round(setup_seconds, 3),
        "activation": {"seconds": round(activated - started, 3), "from_cache": from_cache},
    }


# --- Database and modules -------------------------------------------------------------------


def _fresh_database(workdir: Path, database_cache: Path) -> tuple[Path, bool]:
    """A new SQLite database named DATABASE in workdir, with account_invoice activated.

    Activation takes tens of seconds, so its result is kept in database_cache, keyed by the Tryton
    distributions installed, and copied for later runs, as trytond's own tests do with DB_CACHE.
    Returns the config file and whether the cached copy was used.
    """
    for stale in workdir.glob(f"{DATABASE}.sqlite*"):
        stale.unlink()
    database_file = workdir / f"{DATABASE}.sqlite"
    config_file = workdir / "trytond.conf"
    # One process is the only user of this database, so trytond has no other process's cache
    # changes to pick up. Left at its default (300 s), the periodic check borrows SQLite's one
    # connection in autocommit mode and leaves it so for the rest of that call, which then commits
    # statement by statement: no longer one transaction, and a rehearsal could not roll back.
    config_file.write_text(f"[database]\nuri = sqlite://\npath = {workdir}\n[cache]\nclean_timeout = 86400\n")
    # trytond reads its configuration when its backend is first imported: set it before that.
    from trytond import config

    config.update_etc(str(config_file))

    template = database_cache / f"{_activation_key()}.sqlite"
    if template.is_file():
        shutil.copyfile(template, database_file)
        return config_file, True
    database_file.touch()
    _activate_account_invoice(config_file, workdir)
    database_cache.mkdir(parents=True, exist_ok=True)
    partial = template.with_suffix(f".{os.getpid()}.partial")
    # The backup API copies a consistent database, including what is still in the WAL file.
    with closing(sqlite3.connect(database_file)) as source, closing(sqlite3.connect(partial)) as copy:
        source.backup(copy)
    partial.replace(template)
    return config_file, False


def _activation_key() -> str:
    """Names the cached activated database after the Tryton distributions installed here."""
    installed = sorted(
        f"{dist.metadata['Name'].lower()}=={dist.version}"
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"].lower().startswith(("trytond", "proteus"))
    )
    digest = hashlib.sha256("\n".join(["account_invoice", *installed]).encode()).hexdigest()
    return f"account_invoice-{digest[:16]}"


def _activate_account_invoice(config_file: Path, workdir: Path) -> None:
    """Do what `trytond-admin -u account_invoice --activate-dependencies` does, in this process."""
    from trytond import commandline

    password_file = workdir / "admin-password"
    password_file.write_text(secrets.token_urlsafe(16) + "\n")
    os.environ["TRYTONPASSFILE"] = str(password_file)
    options = commandline.get_parser_admin().parse_args(
        [
            *("-c", str(config_file)),
            *("-d", DATABASE),
            *("-u", "account_invoice"),
            "--activate-dependencies",
            *("--email", ADMIN_EMAIL),
        ]
    )
    options.indexes = True  # as trytond-admin does when it activates modules

    from trytond import admin

    admin.run(options)


# --- The company's books (setup, not timed as a rate) ---------------------------------------


@dataclass
class _Books:
    user: int
    context: dict
    company: int
    currency: int
    receivable: int
    revenue: int
    revenue_journal: int
    payment_term: int
    payment_method: int
    tax: int
    product: int
    unit: int
    parties: list[tuple[int, int]] = field(default_factory=list)  # (party, its invoice address)


def _set_up_books(config_file: Path, *, today: dt.date) -> _Books:
    """Company, chart, fiscal year with invoice sequences, tax, product, payment term and method."""
    from proteus import Model, Wizard
    from proteus import config as proteus_config

    settings = proteus_config.set_trytond(database=DATABASE, config_file=str(config_file))
    Account = Model.get("account.account")
    Journal = Model.get("account.journal")

    currency = Model.get("currency.currency")(name="U.S. Dollar", symbol="$", code="USD", rounding=CENT)
    currency.save()
    company_party = Model.get("party.party")(name="Concord Bench Ltd")
    company_party.save()
    company_wizard = Wizard("company.company.config")
    company_wizard.execute("company")
    company_wizard.form.party = company_party
    company_wizard.form.currency = currency
    company_wizard.execute("add")
    # The admin user now works for the company: its preferences carry it into every call.
    settings._context = Model.get("res.user").get_preferences(True, {})
    company = Model.get("company.company").find()[0]

    chart = Wizard("account.create_chart")
    chart.execute("account")
    root_id = Model.get("ir.model.data").get_id("account.account_template_root_en", settings.context)
    chart.form.account_template = Model.get("account.account.template")(root_id)
    chart.form.company = company
    chart.execute("create_account")

    def account(*domain: tuple):
        found = Account.find([("company", "=", company.id), ("closed", "!=", True), *domain], limit=1)
        if not found:
            raise LookupError(f"the English chart has no account matching {domain}")
        return found[0]

    receivable = account(("type.receivable", "=", True))
    revenue = account(("type.revenue", "=", True))
    cash = account(("code", "=", "1.1.1"))
    tax_account = account(("code", "=", "6.3.6"))
    chart.form.account_receivable = receivable
    chart.form.account_payable = account(("type.payable", "=", True))
    chart.form.category_account_revenue = revenue
    chart.form.category_account_expense = account(("type.expense", "=", True))
    chart.execute("create_properties")

    _create_fiscal_year(company, today=today)

    payment_term = Model.get("account.invoice.payment_term")(name=f"Net {PAYMENT_TERM_DAYS}")
    term_line = payment_term.lines.new(type="remainder")
    term_line.relativedeltas[0].days = PAYMENT_TERM_DAYS
    payment_term.save()

    tax = Model.get("account.tax")(
        name="Sales tax 10%",
        description="Sales tax 10%",
        type="percentage",
        rate=TAX_RATE,
        invoice_account=tax_account,
        credit_note_account=tax_account,
    )
    tax.save()

    category = Model.get("product.category")(name="Services", accounting=True, account_revenue=revenue)
    category.customer_taxes.append(Model.get("account.tax")(tax.id))
    category.save()
    unit = Model.get("product.uom").find([("name", "=", "Unit")])[0]
    template = Model.get("product.template")(
        name="Consulting", type="service", default_uom=unit, list_price=Decimal(100), account_category=category
    )
    template.save()

    payment_method = Model.get("account.invoice.payment.method")(
        name="Bank transfer",
        journal=Journal.find([("type", "=", "cash")], limit=1)[0],
        credit_account=cash,
        debit_account=cash,
    )
    payment_method.save()

    return _Books(
        user=settings.user,
        context=dict(settings.context),
        company=company.id,
        currency=currency.id,
        receivable=receivable.id,
        revenue=revenue.id,
        revenue_journal=Journal.find([("type", "=", "revenue")], limit=1)[0].id,
        payment_term=payment_term.id,
        payment_method=payment_method.id,
        tax=tax.id,
        product=template.products[0].id,
        unit=unit.id,
    )


def _create_fiscal_year(company, *, today: dt.date) -> None:
    """One fiscal year from the first of the month a year ago, with monthly periods and sequences."""
    from proteus import Model

    SequenceStrict = Model.get("ir.sequence.strict")
    SequenceType = Model.get("ir.sequence.type")

    start = today - relativedelta(months=12, day=1)
    fiscal_year = Model.get("account.fiscalyear")(
        name=f"{start:%Y-%m}", start_date=start, end_date=today + relativedelta(months=11, day=31), company=company
    )
    move_type = SequenceType.find([("name", "=", "Account Move")], limit=1)[0]
    move_sequence = SequenceStrict(name="Moves", sequence_type=move_type, company=company)
    move_sequence.save()
    fiscal_year.move_sequence = move_sequence
    invoice_type = SequenceType.find([("name", "=", "Invoice")], limit=1)[0]
    invoice_sequence = SequenceStrict(name="Invoices", sequence_type=invoice_type, company=company)
    invoice_sequence.save()
    sequences = fiscal_year.invoice_sequences[0]
    sequences.out_invoice_sequence = invoice_sequence
    sequences.in_invoice_sequence = invoice_sequence
    sequences.out_credit_note_sequence = invoice_sequence
    sequences.in_credit_note_sequence = invoice_sequence
    fiscal_year.save()
    fiscal_year.click("create_period")


class _InProcess:
    """Runs each call in one Tryton transaction, the way its RPC dispatcher runs a request.

    Like the dispatcher, a call that needs a lock it did not declare (a strict sequence, when an
    invoice or a move is numbered) is rolled back and started again with the lock declared, and the
    tasks the call queued run after its commit. Unlike a remote client, this driver remembers the
    locks per kind of call, so later calls of that kind declare them from the start, and each timed
    kind is rehearsed once, untimed, to learn them. Retries are counted; tasks in DEFERRED_TASKS
    are set aside, as a queue worker would take them.
    """

    def __init__(self, *, user: int, context: dict):
        self.user = user
        self.context = context
        self.retries = 0
        self.task_seconds = 0.0
        self.deferred: dict[str, list[int]] = {}  # method → the records its set-aside tasks name
        self._extras: dict[str, dict] = {}

    def call(self, work: Callable, *, kind: str, rehearse: bool = False, **context):
        """Run work(pool) in a transaction and commit it; a rehearsal rolls it back instead, leaving
        nothing behind but the locks learned for `kind` (and warm caches, as in a running server)."""
        from trytond.pool import Pool
        from trytond.transaction import Transaction, TransactionError
        from trytond.worker import run_task

        extras = self._extras.setdefault(kind, {})
        while True:
            with Transaction().start(DATABASE, self.user, context=self.context | context, **extras) as transaction:
                try:
                    result = work(Pool())
                    if not rehearse:
                        self._set_aside_deferred(Pool(), transaction.tasks)
                except TransactionError as error:
                    transaction.rollback()
                    transaction.tasks.clear()
                    error.fix(extras)
                    self.retries += 1
                    continue
                if rehearse:
                    transaction.rollback()
                    transaction.tasks.clear()
                else:
                    transaction.commit()
            break
        started = time.perf_counter()
        pool = Pool(DATABASE)
        while transaction.tasks:
            run_task(pool, transaction.tasks.pop())
        self.task_seconds += time.perf_counter() - started
        return result

    def _set_aside_deferred(self, pool, tasks: list[int]) -> None:
        for task in pool.get("ir.queue").browse(list(tasks)):
            if task.data["method"] in DEFERRED_TASKS:
                tasks.remove(task.id)
                self.deferred.setdefault(task.data["method"], []).extend(task.data["instances"])


def _create_customers(tryton: _InProcess, *, count: int) -> list[tuple[int, int]]:
    def create(pool) -> list[tuple[int, int]]:
        parties = pool.get("party.party").create(
            [
                {
                    "name": f"Customer {number:05d}",
                    "addresses": [("create", [{"street": f"{number} Market Street", "city": "Springfield"}])],
                }
                for number in range(1, count + 1)
            ]
        )
        return [(party.id, party.addresses[0].id) for party in parties]

    return tryton.call(create, kind="setup")


# --- The workload ---------------------------------------------------------------------------


@dataclass
class _PlannedInvoice:
    party: int
    address: int
    invoice_date: dt.date
    lines: list[tuple[int, Decimal]]  # (quantity, unit price)
    id: int | None = None


def _plan_invoices(rng: random.Random, books: _Books, *, count: int, today: dt.date) -> list[_PlannedInvoice]:
    """Invoices dated over the last year, oldest first: Tryton numbers invoices in date order."""
    plan = []
    for number in range(count):
        age_days = HISTORY_DAYS - 1 - (number * HISTORY_DAYS) // count
        party, address = books.parties[rng.randrange(len(books.parties))]
        lines = [(rng.randint(1, 10), Decimal(rng.randint(2000, 200000)) / 100) for _ in range(rng.randint(1, 3))]
        plan.append(_PlannedInvoice(party, address, today - dt.timedelta(days=age_days), lines))
    return plan


def _invoice_values(books: _Books, planned: _PlannedInvoice) -> dict:
    """A customer invoice as the client sends it once its on-change methods have filled it in."""
    return {
        "type": "out",
        "company": books.company,
        "currency": books.currency,
        "party": planned.party,
        "invoice_address": planned.address,
        "account": books.receivable,
        "journal": books.revenue_journal,
        "payment_term": books.payment_term,
        "invoice_date": planned.invoice_date,
        "lines": [
            (
                "create",
                [
                    {
                        "type": "line",
                        "company": books.company,
                        "currency": books.currency,
                        "product": books.product,
                        "description": "Consulting",
                        "account": books.revenue,
                        "quantity": float(quantity),
                        "unit": books.unit,
                        "unit_price": unit_price,
                        "taxes": [("add", [books.tax])],
                    }
                    for quantity, unit_price in planned.lines
                ],
            )
        ],
    }


def _issue_and_post(tryton: _InProcess, books: _Books, plan: list[_PlannedInvoice], *, batch_size: int) -> dict:
    """Create draft invoices and post them (`Invoice.post` on the batch), a transaction per batch."""

    def issue(pool, batch: list[_PlannedInvoice]) -> None:
        Invoice = pool.get("account.invoice")
        invoices = Invoice.create([_invoice_values(books, planned) for planned in batch])
        Invoice.post(invoices)
        for planned, invoice in zip(batch, invoices, strict=True):
            planned.id = invoice.id

    def issue_all() -> None:
        for start in range(0, len(plan), batch_size):
            batch = plan[start : start + batch_size]
            tryton.call(lambda pool, batch=batch: issue(pool, batch), kind="issue_post", **POST_CONTEXT)

    tryton.call(lambda pool: issue(pool, plan[:1]), kind="issue_post", rehearse=True, **POST_CONTEXT)
    return _rate(tryton, issue_all, count=len(plan))


@dataclass
class _PlannedPayment:
    invoice: int
    amount: Decimal
    paid_on: dt.date
    in_full: bool


def _plan_payments(
    rng: random.Random, tryton: _InProcess, plan: list[_PlannedInvoice], *, today: dt.date
) -> list[_PlannedPayment]:
    """Most invoices paid in full, some in part, some not yet; no payment is dated after today."""

    def read_totals(pool) -> dict[int, Decimal]:
        invoices = pool.get("account.invoice").browse([planned.id for planned in plan])
        return {invoice.id: invoice.total_amount for invoice in invoices}

    totals = tryton.call(read_totals, kind="read")
    payments = []
    for planned in plan:
        outcome = rng.random()
        paid_on = planned.invoice_date + dt.timedelta(days=rng.randint(5, 75))
        if outcome >= PAID_IN_FULL_SHARE + PAID_IN_PART_SHARE or paid_on > today:
            continue
        total = totals[planned.id]
        if outcome < PAID_IN_FULL_SHARE:
            payments.append(_PlannedPayment(planned.id, total, paid_on, in_full=True))
        else:
            part = (total * rng.randint(20, 80) / 100).quantize(CENT, rounding=ROUND_HALF_UP)
            payments.append(_PlannedPayment(planned.id, part, paid_on, in_full=False))
    # Payments are recorded in the order they were received, as a bank statement lists them.
    payments.sort(key=lambda payment: (payment.paid_on, payment.invoice))
    return payments


def _record_and_allocate(tryton: _InProcess, books: _Books, payments: list[_PlannedPayment]) -> dict:
    """Each payment in its own transaction, doing what the pay wizard (account.invoice.pay) does:
    a posted payment move on the invoice, reconciled with the invoice's lines when it settles it
    (a partial payment stays unreconciled, as the wizard's "partial" choice leaves it)."""

    def record(pool, payment: _PlannedPayment) -> None:
        invoice = pool.get("account.invoice")(payment.invoice)
        method = pool.get("account.invoice.payment.method")(books.payment_method)
        to_reconcile, remainder = invoice.get_reconcile_lines_for_amount(
            payment.amount, invoice.currency, party=invoice.party
        )
        settles = not remainder and payment.amount <= invoice.amount_to_pay
        payment_lines = invoice.pay_invoice(payment.amount, method, payment.paid_on)
        if settles:
            pool.get("account.move.line").reconcile(to_reconcile + payment_lines)

    def record_all() -> None:
        for payment in payments:
            tryton.call(lambda pool, payment=payment: record(pool, payment), kind="record_allocate")

    if payments:
        tryton.call(lambda pool: record(pool, payments[0]), kind="record_allocate", rehearse=True)

    in_full = sum(payment.in_full for payment in payments)
    return _rate(tryton, record_all, count=len(payments)) | {"in_full": in_full, "in_part": len(payments) - in_full}


def _aged_balance(tryton: _InProcess, *, as_of: dt.date) -> dict:
    """Read account.aged_balance for customers as of a date, as the client's aged balance list does."""

    def read(pool) -> list[dict]:
        AgedBalance = pool.get("account.aged_balance")
        records = AgedBalance.search([])
        fields = ["party", "term0", "term1", "term2", "term3", "balance"]
        return AgedBalance.read([record.id for record in records], fields)

    started, cpu_started = time.perf_counter(), time.process_time()
    rows = tryton.call(read, kind="aging", date=as_of, **AGING_CONTEXT)
    return {
        "seconds": round(time.perf_counter() - started, 4),
        "cpu_seconds": round(time.process_time() - cpu_started, 4),
        "rows": len(rows),
        # SQLite sums the amounts as floating point: each party's balance back to the cent.
        "balance": str(sum((row["balance"].quantize(CENT, rounding=ROUND_HALF_UP) for row in rows), Decimal(0))),
        "as_of": as_of.isoformat(),
    }


def _sample_deferred_reports(tryton: _InProcess) -> dict:
    """What the set-aside invoice reports cost, rendered for a sample of invoices by the method the
    queue worker would run, for a reader weighing the deferral."""
    deferred = tryton.deferred.get("print_invoice", [])
    sample = deferred[:REPORT_SAMPLE]

    def render(pool) -> None:
        Invoice = pool.get("account.invoice")
        Invoice.print_invoice(Invoice.browse(sample))

    started = time.perf_counter()
    if sample:
        tryton.call(render, kind="report")
    seconds = time.perf_counter() - started
    return {
        "deferred": len(deferred),
        "sampled": len(sample),
        "seconds_each": round(seconds / len(sample), 3) if sample else None,
    }


def _read_back(tryton: _InProcess, plan: list[_PlannedInvoice]) -> dict:
    """What Tryton holds after the run, so that a reader (and the test) sees the work was done."""

    def read(pool) -> dict:
        invoices = pool.get("account.invoice").browse([planned.id for planned in plan])
        states: dict[str, int] = {}
        for invoice in invoices:
            states[invoice.state] = states.get(invoice.state, 0) + 1
        posted = [invoice for invoice in invoices if invoice.state == "posted"]
        return {
            "invoices_by_state": states,
            "numbered": sum(bool(invoice.number) for invoice in invoices),
            "partly_paid": sum(invoice.amount_to_pay != invoice.total_amount for invoice in posted),
            "open_receivable": str(sum((invoice.amount_to_pay for invoice in posted), Decimal(0))),
        }

    return tryton.call(read, kind="read")


def _rate(tryton: _InProcess, work: Callable[[], None], *, count: int) -> dict:
    retries, task_seconds = tryton.retries, tryton.task_seconds
    started, cpu_started = time.perf_counter(), time.process_time()
    work()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "count": count,
        "seconds": round(seconds, 3),
        "per_second": round(count / seconds, 2),
        # SQLite runs in this process, so its CPU time is the work itself, whatever else the
        # machine is running: the rate per CPU second holds on a busy machine too.
        "cpu_seconds": round(cpu_seconds, 3),
        "per_cpu_second": round(count / cpu_seconds, 2),
        "retried_transactions": tryton.retries - retries,
        "queued_task_seconds": round(tryton.task_seconds - task_seconds, 3),
    }


if __name__ == "__main__":
    sys.exit(main())
