"""Whatever the order of issues, payments, allocations, credits, refunds, voids and write-offs, the
books agree with themselves: the trial balance is zero, and the AR control account, the open
documents less unapplied credit, and the aging total are the same figure — today and as of any
earlier day. A refused operation changes nothing, and a locked period's figures never move.

A hypothesis state machine drives billing.services with random sequences of operations on three
customers (USD, EUR and GBP, the two foreign currencies with rates that change during the
window, GBP's starting only in March), with business dates drawn from the first half of 2026.
Each example runs in its own transaction, rolled back at its end.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from billing import selectors, services
from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    Invoice,
    InvoiceLine,
    NumberSequence,
    Payment,
    PaymentAllocation,
    Product,
    Refund,
    TaxRate,
    WriteOff,
)
from config import audit
from ledger import selectors as ledger_selectors
from ledger.errors import LedgerError
from ledger.models import Account, JournalEntry, JournalLine, PeriodLock
from ledger.money import ZERO, quantize
from ledger.services import lock_period, set_exchange_rate
from tests.factories import CustomerFactory

START, END = date(2026, 1, 1), date(2026, 6, 30)
# CI runs 300 random histories of 15 steps (about 5 minutes on PostgreSQL, a third of the suite);
# a laptop run on SQLite 50.
EXAMPLES = 300 if os.environ.get("CONCORD_REQUIRE_SERVICES") == "1" else 50
STEPS = 15

RATES = {
    "EUR": [("2026-01-01", "1.0850"), ("2026-02-10", "1.1237"), ("2026-03-20", "1.0798"), ("2026-05-05", "1.1560")],
    # No GBP rate before March: GBP documents dated earlier are refused (MissingExchangeRate).
    "GBP": [("2026-03-01", "1.2650"), ("2026-05-15", "1.2411")],
}
METHODS = [choice for choice, _ in Payment.Method.choices]
# Mostly valid quantities; a zero or negative one now and then must be refused.
QUANTITIES = [
    Decimal(q) for q in ("1", "2", "3", "0.5", "1.25", "12", "0.333", "7", "1", "1", "2", "1") * 2 + ("0", "-1")
]

business_days = st.integers(min_value=0, max_value=(END - START).days).map(lambda n: START + timedelta(days=n))
# Days after the later of the documents an operation touches; a negative one is usually refused.
offsets = st.integers(min_value=-3, max_value=45)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1500"), places=4)
fractions = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("0.99"), places=2)
discounts = st.one_of(
    st.just(("none", ZERO)),
    st.tuples(st.just("percent"), st.decimals(min_value=0, max_value=100, places=2)),
    # As a share of the line's subtotal; above 1 it exceeds the line and must be refused.
    st.tuples(st.just("amount"), st.decimals(min_value=0, max_value=Decimal("1.05"), places=2)),
)
line_specs = st.fixed_dictionaries(
    {
        "quantity": st.sampled_from(QUANTITIES),
        "unit_price": prices,
        "discount": discounts,
        "tax": st.sampled_from([None, "exclusive", "inclusive"]),
        "product": st.booleans(),
    }
)


@dataclass(frozen=True)
class World:
    """What every example starts from: committed to the test's transaction, never changed."""

    customers: list
    taxes: dict
    product: Product
    clerk: object
    finance_admin: object
    today: date


def build_world(clerk, finance_admin, owner) -> World:
    system = audit.system_actor("tests")
    for currency, rates in RATES.items():
        for on, rate in rates:
            set_exchange_rate(actor=system, currency=currency, rate_date=date.fromisoformat(on), rate=Decimal(rate))
    tax_payable = Account.objects.get(role=Account.Role.TAX_PAYABLE)
    taxes = {
        "exclusive": TaxRate.objects.create(name="VAT 20%", rate=Decimal("0.2000"), liability_account=tax_payable),
        "inclusive": TaxRate.objects.create(
            name="GST 7.5% incl.", rate=Decimal("0.0750"), inclusive=True, liability_account=tax_payable
        ),
    }
    product = Product.objects.create(
        sku="KIT-1",
        name="Starter kit",
        unit_price=Decimal("49.9900"),
        unit_cost=Decimal("17.3300"),
        revenue_account=Account.objects.get(role=Account.Role.REVENUE),
        tax_rate=taxes["exclusive"],
    )
    customers = [
        CustomerFactory(owner=owner, display_name="Dollar Co", currency="USD", payment_terms_days=30),
        CustomerFactory(owner=owner, display_name="Euro GmbH", currency="EUR", payment_terms_days=14),
        CustomerFactory(owner=owner, display_name="Sterling Ltd", currency="GBP", payment_terms_days=45),
    ]
    return World(customers, taxes, product, clerk, finance_admin, timezone.localdate())


COUNTED = (
    JournalEntry,
    JournalLine,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAllocation,
    CreditNote,
    CreditNoteAllocation,
    Refund,
    WriteOff,
    PeriodLock,
)
COUNT_ROWS = "SELECT " + ", ".join(f"(SELECT count(*) FROM {model._meta.db_table})" for model in COUNTED)  # noqa: S608


def snapshot() -> tuple:
    """Everything an operation could change: row counts and the balances kept on documents."""
    with connection.cursor() as cursor:
        cursor.execute(COUNT_ROWS)
        counts = cursor.fetchone()
    return (
        counts,
        list(Invoice.objects.order_by("pk").values_list("pk", "status", "open_amount", "open_base", "disputed")),
        list(Payment.objects.order_by("pk").values_list("pk", "status", "unapplied_amount", "unapplied_base")),
        list(CreditNote.objects.order_by("pk").values_list("pk", "unapplied_amount", "unapplied_base")),
        list(WriteOff.objects.order_by("pk").values_list("pk", "status")),
        list(NumberSequence.objects.order_by("series").values_list("series", "next_number")),
    )


def figures(as_of: date) -> tuple:
    """What the books said at the end of `as_of`: every account, and open documents and unapplied
    credit apart (an allocation moves both by the same amount, so only apart does it show)."""
    return (
        [(row.account.code, row.debit, row.credit) for row in ledger_selectors.trial_balance(as_of=as_of)],
        selectors.open_position(as_of=as_of),
    )


def ar_subledger(as_of: date) -> dict[int, Decimal]:
    """Each customer's balance on the AR control account at the end of `as_of`."""
    balances = (
        JournalLine.objects.filter(account__role=Account.Role.AR_CONTROL, entry_date__lte=as_of)
        .values("customer")
        .annotate(debit=Sum("debit"), credit=Sum("credit"))
        .values_list("customer", "debit", "credit")
    )
    owed = {customer_id: quantize(debit) - quantize(credit) for customer_id, debit, credit in balances}
    return {customer_id: balance for customer_id, balance in owed.items() if balance}


def check_deferred_constraints() -> None:
    """Fire PostgreSQL's deferred balance triggers now, for every entry written so far."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


class BillingMachine(RuleBasedStateMachine):
    """Each rule is one use case of billing.services with random, mostly valid, input."""

    def __init__(self, world: World):
        super().__init__()
        self.world = world
        self.closed_period: tuple[date, tuple] | None = None
        self.payment_requests: list[dict] = []
        self.has = Counter()
        self.changed = True  # whether the last step wrote anything
        # The example's own transaction (a savepoint in the test's), rolled back in teardown.
        self._atomic = transaction.atomic()
        self._atomic.__enter__()

    def teardown(self):
        try:
            check_deferred_constraints()
        finally:
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

    # --- helpers ------------------------------------------------------------------------------

    def attempt(self, service, **kwargs):
        """Call a service; if it refuses, it must say so with a domain error and change nothing."""
        before = snapshot()
        try:
            result = service(**kwargs)
        except (LedgerError, ValidationError) as refusal:
            assert snapshot() == before, f"{service.__name__} refused ({refusal}) but changed the books"
            event(f"{service.__name__}: refused, {type(refusal).__name__}")
            return None
        event(f"{service.__name__}: done")
        self.changed = True
        return result

    def line_input(self, spec: dict) -> services.LineInput:
        kind, value = spec["discount"]
        price = self.world.product.unit_price if spec["product"] else spec["unit_price"]
        if kind == "amount":
            value = quantize(quantize(spec["quantity"] * price) * value)
        if spec["product"]:
            return services.LineInput(
                product=self.world.product, quantity=spec["quantity"], discount_type=kind, discount_value=value
            )
        return services.LineInput(
            description="Services",
            quantity=spec["quantity"],
            unit_price=price,
            discount_type=kind,
            discount_value=value,
            tax_rate=self.world.taxes[spec["tax"]] if spec["tax"] else None,
        )

    # --- setup --------------------------------------------------------------------------------

    @initialize(rng=st.randoms(use_true_random=False))
    def choose_past_dates(self, rng):
        """The random earlier day every step's invariant also checks the books as of."""
        self.rng = rng

    @initialize(
        invoices=st.lists(
            st.tuples(st.integers(0, 2), st.lists(line_specs, min_size=1, max_size=2), business_days),
            min_size=1,
            max_size=3,
        )
    )
    def start_with_invoices(self, invoices):
        for customer, lines, issued_on in invoices:
            self.issue_invoice(customer=customer, lines=lines, issued_on=issued_on, terms=None)

    @initialize(
        payments=st.lists(
            st.tuples(
                st.integers(0, 2), st.decimals(min_value=Decimal("0.01"), max_value=2000, places=2), business_days
            ),
            max_size=2,
        )
    )
    def start_with_unapplied_money(self, payments):
        for customer, amount, received_on in payments:
            self.attempt(
                services.record_payment,
                actor=self.world.clerk,
                customer=self.world.customers[customer],
                amount=amount,
                received_on=received_on,
                method=Payment.Method.BANK_TRANSFER,
                auto_apply=False,
            )

    # --- invoices -----------------------------------------------------------------------------

    @rule(
        customer=st.integers(0, 2),
        lines=st.lists(line_specs, min_size=1, max_size=3),
        issued_on=business_days,
        terms=st.none() | st.integers(0, 60),
    )
    def issue_invoice(self, customer, lines, issued_on, terms):
        customer = self.world.customers[customer]
        try:
            draft = services.create_invoice(
                actor=self.world.clerk,
                customer=customer,
                lines=[self.line_input(spec) for spec in lines],
                due_date=None if terms is None else issued_on + timedelta(days=terms),
            )
        except ValidationError:
            assert not Invoice.objects.filter(status=Invoice.Status.DRAFT).exists()
            event("create_invoice: refused, ValidationError")
            return
        issued = self.attempt(services.issue_invoice, actor=self.world.clerk, invoice=draft, issue_date=issued_on)
        if issued is None:
            draft.lines.all().delete()
            draft.delete()
        else:
            expected_due = issued_on + timedelta(days=customer.payment_terms_days if terms is None else terms)
            assert issued.due_date == expected_due

    @precondition(lambda self: self.has["open_invoices"])
    @rule(data=st.data(), offset=offsets)
    def void_invoice(self, data, offset):
        candidates = list(Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES).order_by("pk"))
        if not candidates:
            return
        invoice = data.draw(st.sampled_from(candidates), label="invoice")
        untouched = invoice.open_amount == invoice.gross_total
        voided = self.attempt(
            services.void_invoice,
            actor=self.world.clerk,
            invoice=invoice,
            voided_on=invoice.issue_date + timedelta(days=offset),
        )
        if not untouched:
            assert voided is None, "an invoice with something applied to it was voided"

    @precondition(lambda self: self.has["open_invoices"])
    @rule(data=st.data(), disputed=st.booleans())
    def dispute(self, data, disputed):
        candidates = list(Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES).order_by("pk"))
        if candidates:
            invoice = data.draw(st.sampled_from(candidates), label="invoice")
            services.set_dispute(actor=self.world.clerk, invoice=invoice, disputed=disputed, reason="Wrong quantity")
            self.changed = True

    # --- payments -----------------------------------------------------------------------------

    @rule(
        data=st.data(),
        customer=st.integers(0, 3),
        kind=st.sampled_from(["full", "partial", "over", "any"]),
        received_on=business_days,
        method=st.sampled_from(METHODS),
        auto_apply=st.booleans(),
        key=st.sampled_from([None] * 8 + ["retry-a", "retry-b"]),
    )
    def record_payment(self, data, customer, kind, received_on, method, auto_apply, key):
        """`customer` 3: the customer of an open invoice, if there is one."""
        owing = list(Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES).values_list("customer", flat=True))
        if customer == 3 and owing:
            owing_customer = data.draw(st.sampled_from(owing), label="customer of an open invoice")
            customer = next(c for c in self.world.customers if c.pk == owing_customer)
        else:
            customer = self.world.customers[customer % 3]
        owed = sum(
            Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES).values_list(
                "open_amount", flat=True
            ),
            ZERO,
        )
        if kind == "full" and owed:
            amount = owed
        elif kind == "partial" and owed > Decimal("0.01"):
            amount = max(quantize(owed * data.draw(fractions, label="share")), Decimal("0.01"))
        elif kind == "over":
            amount = owed + data.draw(st.decimals(min_value=Decimal("0.01"), max_value=500, places=2), label="extra")
        else:
            amount = data.draw(st.decimals(min_value=Decimal("0.01"), max_value=3000, places=2), label="amount")
        request = {
            "customer": customer,
            "amount": amount,
            "received_on": received_on,
            "method": method,
            "auto_apply": auto_apply,
            "idempotency_key": key,
        }
        reused = key is not None and Payment.objects.filter(idempotency_key=key).exists()
        payment = self.attempt(services.record_payment, actor=self.world.clerk, **request)
        if payment is not None and key is not None and not reused:
            self.payment_requests.append(request)
        if payment is not None and not reused:
            assert payment.unapplied_amount >= 0
            if auto_apply:
                still_open = Invoice.objects.filter(
                    customer=customer, status__in=Invoice.OPEN_STATUSES, disputed=False
                ).exists()
                # Auto-allocation uses the payment up or leaves no undisputed invoice open.
                assert payment.unapplied_amount == ZERO or not still_open

    @precondition(lambda self: self.payment_requests)
    @rule(data=st.data())
    def retry_payment(self, data):
        """A client retrying the same request gets the first payment back, and nothing is written."""
        if not self.payment_requests:
            return
        request = data.draw(st.sampled_from(self.payment_requests), label="request")
        first = Payment.objects.get(idempotency_key=request["idempotency_key"])
        before = snapshot()
        again = services.record_payment(actor=self.world.clerk, **request)
        assert again.pk == first.pk
        assert snapshot() == before

    @precondition(lambda self: self.has["cleared_payments"])
    @rule(data=st.data(), offset=offsets)
    def fail_payment(self, data, offset):
        candidates = list(Payment.objects.filter(status=Payment.Status.CLEARED).order_by("pk"))
        if candidates:
            payment = data.draw(st.sampled_from(candidates), label="payment")
            self.attempt(
                services.fail_payment,
                actor=self.world.clerk,
                payment=payment,
                failed_on=payment.received_on + timedelta(days=offset),
            )

    # --- applying credit ----------------------------------------------------------------------

    def _credit_and_invoice(self, data, credits):
        """Mostly a credit and an open invoice of the same customer; now and then another
        customer's invoice, which must be refused."""
        credits = list(credits.filter(unapplied_amount__gt=0).order_by("pk"))
        invoices = list(Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES).order_by("pk"))
        pairs = [(credit, invoice) for credit in credits for invoice in invoices]
        same_customer = [(credit, invoice) for credit, invoice in pairs if credit.customer_id == invoice.customer_id]
        if same_customer and data.draw(st.integers(0, 9), label="same customer unless 0"):
            pairs = same_customer
        if not pairs:
            return None, None
        return data.draw(st.sampled_from(pairs), label="credit, invoice")

    def _allocation_amount(self, data, credit, invoice) -> Decimal:
        most = min(credit.unapplied_amount, invoice.open_amount)
        kind = data.draw(st.sampled_from(["most", "part", "too much"]), label="amount")
        if kind == "most" or most == Decimal("0.01"):
            return most
        if kind == "part":
            return max(quantize(most * data.draw(fractions, label="share")), Decimal("0.01"))
        return most + Decimal("0.01")

    def _allocate(self, data, service, credits, field, offset):
        credit, invoice = self._credit_and_invoice(data, credits)
        if credit is None:
            return
        credit_date = getattr(credit, "received_on", None) or credit.issue_date
        amount = self._allocation_amount(data, credit, invoice)
        fits = amount <= min(credit.unapplied_amount, invoice.open_amount)
        allocation = self.attempt(
            service,
            actor=self.world.clerk,
            invoice=invoice,
            amount=amount,
            allocated_on=max(invoice.issue_date, credit_date) + timedelta(days=offset),
            **{field: credit},
        )
        if not fits or invoice.customer_id != credit.customer_id:
            assert allocation is None, "an allocation beyond the open balances was accepted"

    @precondition(lambda self: self.has["unapplied_payments"] and self.has["open_invoices"])
    @rule(data=st.data(), offset=offsets)
    def allocate_payment(self, data, offset):
        payments = Payment.objects.filter(status=Payment.Status.CLEARED)
        self._allocate(data, services.allocate_payment, payments, "payment", offset)

    @precondition(lambda self: self.has["unapplied_notes"] and self.has["open_invoices"])
    @rule(data=st.data(), offset=offsets)
    def allocate_credit_note(self, data, offset):
        self._allocate(data, services.allocate_credit_note, CreditNote.objects.all(), "credit_note", offset)

    # --- credit notes and refunds -------------------------------------------------------------

    @rule(
        data=st.data(),
        against=st.sampled_from(["invoice", "invoice", "standalone"]),
        kind=st.sampled_from(["whole", "share", "lines"]),
        offset=offsets,
    )
    def issue_credit_note(self, data, against, kind, offset):
        invoice = None
        if against == "invoice":
            invoices = list(Invoice.objects.exclude(status=Invoice.Status.DRAFT).order_by("pk"))
            if not invoices:
                return
            invoice = data.draw(st.sampled_from(invoices), label="invoice")
            customer, issued_on = invoice.customer, invoice.issue_date + timedelta(days=offset)
        else:
            customer = self.world.customers[data.draw(st.integers(0, 2), label="customer")]
            issued_on = data.draw(business_days, label="issued_on")
        if invoice is not None and kind == "whole":
            lines = [services.LineInput(description="Full credit", unit_price=invoice.gross_total)]
        elif invoice is not None and kind == "share":
            share = max(quantize(invoice.gross_total * data.draw(fractions, label="share")), Decimal("0.01"))
            lines = [services.LineInput(description="Partial credit", unit_price=share)]
        else:
            specs = data.draw(st.lists(line_specs, min_size=1, max_size=2), label="lines")
            lines = [self.line_input(spec) for spec in specs]
        self.attempt(
            services.issue_credit_note,
            actor=self.world.clerk,
            customer=customer,
            invoice=invoice,
            lines=lines,
            reason="Goodwill",
            issue_date=issued_on,
        )

    @precondition(lambda self: self.has["unapplied_payments"] or self.has["unapplied_notes"])
    @rule(
        data=st.data(),
        source=st.sampled_from(["payment", "credit_note"]),
        offset=offsets,
        method=st.sampled_from(METHODS),
    )
    def refund(self, data, source, offset, method):
        model = Payment if source == "payment" else CreditNote
        credits = list(model.objects.filter(unapplied_amount__gt=0).order_by("pk"))
        if not credits:
            return
        credit = data.draw(st.sampled_from(credits), label="credit")
        kind = data.draw(st.sampled_from(["all", "part", "too much"]), label="amount")
        amount = {
            "all": credit.unapplied_amount,
            "part": max(quantize(credit.unapplied_amount * data.draw(fractions, label="share")), Decimal("0.01")),
            "too much": credit.unapplied_amount + Decimal("0.01"),
        }[kind]
        credit_date = getattr(credit, "received_on", None) or credit.issue_date
        refund = self.attempt(
            services.refund_credit,
            actor=self.world.clerk,
            amount=amount,
            refunded_on=credit_date + timedelta(days=offset),
            method=method,
            **{source: credit},
        )
        if kind == "too much":
            assert refund is None, "a refund above the unapplied credit was paid"

    # --- write-offs ---------------------------------------------------------------------------

    @precondition(lambda self: self.has["open_invoices"])
    @rule(data=st.data())
    def request_write_off(self, data):
        candidates = list(
            Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES)
            .exclude(write_offs__status=WriteOff.Status.REQUESTED)
            .order_by("pk")
        )
        if candidates:
            invoice = data.draw(st.sampled_from(candidates), label="invoice")
            self.attempt(services.request_write_off, actor=self.world.clerk, invoice=invoice, reason="Insolvent")

    @precondition(lambda self: self.has["requested"])
    @rule(data=st.data(), offset=offsets, by_requester=st.integers(0, 5))
    def approve_write_off(self, data, offset, by_requester):
        requests = list(WriteOff.objects.filter(status=WriteOff.Status.REQUESTED).order_by("pk"))
        if not requests:
            return
        write_off = data.draw(st.sampled_from(requests), label="write_off")
        # Now and then the requester (an AR clerk) tries to approve it: refused.
        approver = self.world.clerk if by_requester == 0 else self.world.finance_admin
        approved = self.attempt(
            services.approve_write_off,
            actor=approver,
            write_off=write_off,
            written_off_on=write_off.invoice.issue_date + timedelta(days=offset),
        )
        if approver == self.world.clerk:
            assert approved is None, "a write-off was approved by the person who asked for it"

    # --- period locks ------------------------------------------------------------------------

    @rule(locked_through=st.integers(0, 45).map(lambda n: START + timedelta(days=n)))
    def lock_period(self, locked_through):
        lock_period(actor=self.world.finance_admin, locked_through=locked_through)
        self.changed = True
        if self.closed_period is None or locked_through > self.closed_period[0]:
            self.closed_period = (locked_through, figures(locked_through))

    # --- after every step ---------------------------------------------------------------------

    @invariant()
    def the_books_agree(self):
        """As of a random earlier day after every step (a back-dated aging); as of today, and
        document by document, after every step that wrote something (a refused step was shown to
        change nothing, so today's figures are the ones checked after the step before)."""
        self.check_the_books(as_of=START + timedelta(days=self.rng.randint(-5, (END - START).days + 10)))
        if not self.changed:
            return
        self.check_the_books(as_of=self.world.today)
        self.check_each_invoice_against_its_history()
        self.check_the_locked_period()
        check_deferred_constraints()
        self.note_what_the_next_step_can_work_on()
        self.changed = False

    def check_the_books(self, *, as_of: date) -> None:
        trial_balance = sum((row.balance for row in ledger_selectors.trial_balance(as_of=as_of)), ZERO)
        assert trial_balance == ZERO, f"trial balance off by {trial_balance} on {as_of}"
        ar_control = ledger_selectors.account_balance(role=Account.Role.AR_CONTROL, as_of=as_of)
        position = selectors.open_position(as_of=as_of)
        aging = selectors.aging(as_of=as_of)
        assert ar_control == position.net == aging.total, (as_of, ar_control, position, aging.total)
        # Customer by customer too: each aging row is that customer's AR subledger that day.
        owed = {customer_id: row.total for customer_id, row in aging.rows.items() if row.total}
        assert owed == ar_subledger(as_of), f"aging rows and AR subledger differ on {as_of}"
        if as_of == self.world.today:
            assert selectors.stored_open_position() == position
            assert selectors.receivables_out_of_step() == []
            assert selectors.settlement_days_out_of_step() == 0

    def check_each_invoice_against_its_history(self) -> None:
        """The open balance kept on each invoice is what its dated events leave open."""
        rebuilt = {
            pk: (amount, base)
            for pk, amount, base in selectors.invoices_open_as_of(self.world.today).values_list(
                "pk", "open_amount_then", "open_base_then"
            )
        }
        stored = {
            pk: (amount, base)
            for pk, amount, base in Invoice.objects.filter(open_amount__gt=0).values_list(
                "pk", "open_amount", "open_base"
            )
        }
        assert rebuilt == stored

    def check_the_locked_period(self) -> None:
        """At the lock in force only: an operation dated in an earlier locked period would move
        the figures at this later date too."""
        if self.closed_period is not None:
            locked_through, then = self.closed_period
            assert figures(locked_through) == then, f"the figures as of locked {locked_through} changed"

    def note_what_the_next_step_can_work_on(self) -> None:
        """Counts the preconditions read, so that no step is spent on an empty choice."""
        self.has = Counter(
            {
                **Invoice.objects.aggregate(open_invoices=Count("pk", filter=Q(status__in=Invoice.OPEN_STATUSES))),
                **Payment.objects.aggregate(
                    cleared_payments=Count("pk", filter=Q(status=Payment.Status.CLEARED)),
                    unapplied_payments=Count("pk", filter=Q(unapplied_amount__gt=0)),
                ),
                **CreditNote.objects.aggregate(unapplied_notes=Count("pk", filter=Q(unapplied_amount__gt=0))),
                **WriteOff.objects.aggregate(requested=Count("pk", filter=Q(status=WriteOff.Status.REQUESTED))),
            }
        )


@pytest.mark.django_db
def test_random_billing_keeps_the_books_in_agreement(ar_clerk, finance_admin, sales_rep):
    world = build_world(ar_clerk, finance_admin, sales_rep)
    run_state_machine_as_test(
        lambda: BillingMachine(world),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
