"""Demo receivables for `manage.py seed_demo`: a catalogue, exchange rates, and months of invoices,
payments, credit notes, refunds, disputes, voids and write-offs for the demo customers.

Each customer gets a payment behaviour (pays early, pays late, pays in parts, pays on account, or
hardly pays), a size, a product mix and its own random generator, seeded with the seed and its
account number — so its history is the same whatever else is in the database. The histories of
all customers are planned first, then replayed in date order through billing.services: invoice
numbers run with time, every posting is dated when it happened, and `ledger_check --as-of` agrees
on any day of the period. Events that would fall after today have not happened yet, which leaves
a true tail of open, overdue, disputed and partly paid invoices.

Idempotent: a customer that already has demo invoices (external_system "demo") is left alone;
exchange rates, tax rates and products that exist are kept as they are.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum

from billing import services
from billing.models import CreditNote, Invoice, Payment, Product, Refund, TaxRate, WriteOff
from billing.services import LineInput
from crm.models import Customer
from ledger.models import Account, ExchangeRate
from ledger.money import ZERO, quantize
from ledger.services import set_exchange_rate

DEMO_SYSTEM = "demo"

# --- Catalogue ---------------------------------------------------------------------------------

TAX_RATES = {
    # key: name, rate, prices include the tax
    "standard": ("Standard rate 20%", Decimal("0.2000"), False),
    "standard_incl": ("Standard rate 20% (prices incl. tax)", Decimal("0.2000"), True),
    "zero": ("Zero rate 0%", Decimal("0.0000"), False),
}


@dataclass(frozen=True)
class CatalogueItem:
    sku: str
    name: str
    price: str  # list price, USD
    cost: str | None  # unit cost, USD: books COGS when set
    tax: str  # key of TAX_RATES
    kind: str  # goods, consumable, service, subscription, freight
    quantities: tuple[int, int]
    revenue: str = "sales"  # or "services": booked to Services revenue (4010) where the chart has it


CATALOGUE = [
    CatalogueItem("RCK-BAY-1200", "Pallet racking bay, 1200 mm", "420.00", "262.00", "standard", "goods", (1, 12)),
    CatalogueItem("SHV-STL-0900", "Steel shelving unit, 900 mm", "189.00", "114.00", "standard", "goods", (1, 20)),
    CatalogueItem("SCN-2D-HH", "Handheld 2D barcode scanner", "245.00", "151.00", "standard", "goods", (1, 15)),
    CatalogueItem("PRN-LBL-203", "Desktop label printer, 203 dpi", "520.00", "338.00", "standard", "goods", (1, 6)),
    CatalogueItem("TRK-PAL-25", "Hand pallet truck, 2.5 t", "385.00", "236.00", "standard", "goods", (1, 4)),
    CatalogueItem("BIN-PP-24", "Small parts bins, pack of 24", "64.00", "31.50", "standard", "consumable", (2, 30)),
    CatalogueItem(
        "LBL-TH-1000", "Thermal labels 100×150 mm, roll of 1 000", "18.50", "7.90", "standard", "consumable", (10, 200)
    ),
    CatalogueItem("FLM-STR-500", "Stretch film 500 mm, 6 rolls", "72.00", "38.40", "standard", "consumable", (2, 40)),
    CatalogueItem(
        "GLV-NIT-100", "Nitrile gloves, box of 100", "11.90", "4.60", "standard_incl", "consumable", (10, 200)
    ),
    CatalogueItem("TAP-PKG-36", "Packing tape, 36 rolls", "54.00", "24.80", "standard_incl", "consumable", (1, 30)),
    CatalogueItem("MAN-OPS", "Printed operator manual", "35.00", "9.00", "zero", "consumable", (1, 20)),
    CatalogueItem("SVC-INST-H", "Installation, per hour", "95.00", None, "standard", "service", (4, 40), "services"),
    CatalogueItem("SVC-SURVEY", "Warehouse site survey", "650.00", None, "standard", "service", (1, 1), "services"),
    CatalogueItem(
        "SVC-TRAIN", "Operator training, half day", "480.00", None, "standard", "service", (1, 4), "services"
    ),
    CatalogueItem(
        "SUP-PREM-Y", "Premium support plan, 12 months", "1800.00", None, "standard", "service", (1, 1), "services"
    ),
    CatalogueItem(
        "SUB-WMS-SEAT",
        "Warehouse software, monthly seat",
        "39.00",
        None,
        "standard",
        "subscription",
        (3, 40),
        "services",
    ),
    CatalogueItem("FRT-DLV", "Freight and delivery", "85.00", None, "standard", "freight", (1, 3)),
]

# Local price lists: what one USD of list price is in each currency, before rounding.
PRICE_LIST_FACTOR = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "CAD": Decimal("1.36")}
# Customers outside the VAT area are invoiced without it.
ZERO_RATED_COUNTRIES = {"US", "CA"}

# --- Exchange rates ----------------------------------------------------------------------------

# USD per unit of each currency: a mean-reverting walk around the centre, kept inside the band.
FX_USD_PER_UNIT = {
    # currency: centre, low, high, daily volatility
    "EUR": (1.10, 1.05, 1.15, 0.0040),
    "GBP": (1.28, 1.22, 1.34, 0.0045),
    "CAD": (0.735, 0.70, 0.77, 0.0025),
}
FX_REVERSION = 0.03

# --- Customers' behaviour ----------------------------------------------------------------------

# name: weight among active customers
PROFILES = {"prompt": 42, "late": 28, "partial": 15, "slow": 10, "on_account": 5}
# name: (ad-hoc invoices per month, quantity scale), weight
SIZES = {"small": ((0.08, 0.6), 40), "medium": ((0.2, 1.0), 30), "large": ((0.45, 1.8), 20), "key": ((1.6, 2.5), 10)}
METHODS = {
    "US": {"bank_transfer": 45, "cheque": 35, "card": 20},
    "CA": {"bank_transfer": 50, "cheque": 40, "card": 10},
    "default": {"bank_transfer": 85, "card": 15},
}
SUBSCRIBER_SHARE = 0.1
# Pays what has come up in a monthly payment run, on its run day, rather than invoice by invoice:
# most larger customers do, few small ones.
BATCH_PAYER_SHARE = {"small": 0.25, "medium": 0.4, "large": 0.75, "key": 0.9}
PAYMENT_RUN_DAYS = [10, 15, 20, 25, 28]

# What customers dispute and what they are credited for, by whether the first line is goods.
DISPUTE_REASONS = {
    True: [
        "Customer says {qty} of the {item} arrived damaged.",
        "Customer says the {item} were never delivered to the second site.",
        "Customer disputes the price of the {item}: quoted lower in the order confirmation.",
        "PO number missing; the customer's AP will not process the invoice until it is reissued with one.",
    ],
    False: [
        "Customer disputes the hours billed for the {item}.",
        "Customer says the {item} was cut short and wants a partial credit.",
        "PO number missing; the customer's AP will not process the invoice until it is reissued with one.",
    ],
}
RETURN_REASONS = ["Goods returned: {item}", "Returned unused and restocked: {item}"]
ADJUSTMENT_REASONS = {
    True: ["Agreed price adjustment on {item}", "Price matched to the quotation for {item}"],
    False: ["Service credit on {item}: hours over the estimate", "Agreed price adjustment on {item}"],
}
STANDALONE_CREDITS = [
    "Volume rebate, {period}",
    "Goodwill credit for delayed delivery, {period}",
    "Loyalty discount, {period}",
]
WRITE_OFF_REASONS = [
    "Customer entered administration; no dividend expected for unsecured creditors.",
    "Returned uncollectable by the collection agency after the final demand.",
    "Company dissolved; the debt cannot be recovered.",
]

# The order of events on one day.
PHASES = [
    "issue",
    "void",
    "dispute",
    "credit",
    "resolve",
    "pay",
    "duplicate",
    "bounce",
    "on_account",
    "fail",
    "refund",
    "request_write_off",
    "approve_write_off",
]
PHASE = {name: index for index, name in enumerate(PHASES)}
REST = "rest"  # a payment tranche that pays whatever is still open on the invoice


@dataclass(frozen=True)
class Event:
    on: date
    phase: int
    customer_number: int
    seq: int
    kind: str
    args: dict = field(compare=False, hash=False)

    @property
    def order(self) -> tuple:
        return (self.on, self.phase, self.customer_number, self.seq)


@dataclass
class DemoBilling:
    """What one run of `seed_billing` did."""

    customers_seeded: int = 0
    customers_skipped: int = 0  # had demo invoices already
    rates_added: int = 0
    added: Counter = field(default_factory=Counter)  # documents and events, by kind

    def __str__(self) -> str:
        added = ", ".join(f"{what} {count}" for what, count in sorted(self.added.items())) or "nothing new"
        return (
            f"Billing: {self.customers_seeded} customers seeded, {self.customers_skipped} had demo invoices already; "
            f"{self.rates_added} exchange rates added; this run: {added}."
        )


def demo_totals() -> list[str]:
    """What the demo customers' receivables hold now, for the command's report."""
    customers = Customer.objects.filter(invoices__external_system=DEMO_SYSTEM).distinct()

    def by_status(queryset) -> dict[str, int]:
        return dict(queryset.order_by().values_list("status").annotate(n=Count("id")).values_list("status", "n"))

    invoices = by_status(Invoice.objects.filter(customer__in=customers))
    payments = by_status(Payment.objects.filter(customer__in=customers))
    write_offs = by_status(WriteOff.objects.filter(invoice__customer__in=customers))
    notes = CreditNote.objects.filter(customer__in=customers)
    return [
        f"Invoices: {sum(invoices.values())} ("
        + ", ".join(f"{invoices.get(status, 0)} {label.lower()}" for status, label in Invoice.Status.choices)
        + f"; {Invoice.objects.filter(customer__in=customers, disputed=True).count()} disputed).",
        f"Payments: {sum(payments.values())} ("
        + ", ".join(f"{count} {status}" for status, count in sorted(payments.items()))
        + f"); credit notes: {notes.count()} ({notes.filter(invoice__isnull=True).count()} standalone); "
        f"refunds: {Refund.objects.filter(customer__in=customers).count()}; write-offs: "
        + (", ".join(f"{count} {status}" for status, count in sorted(write_offs.items())) or "none")
        + ".",
    ]


@transaction.atomic
def seed_billing(
    *, actor, requester, approver, customers: list[Customer], seed: int = 7, months: int = 18, today: date
) -> DemoBilling:
    """Give the demo customers `months` of receivables ending `today`. Everything is written
    by `actor` except write-offs, which `requester` (AR) asks for and `approver` (Finance Admin)
    approves. One transaction: all of it or none of it (and one commit, which SQLite needs)."""
    start = _months_before(today, months)
    summary = DemoBilling()
    catalogue = ensure_catalogue(actor=actor)
    currencies = {customer.currency for customer in customers} | set(FX_USD_PER_UNIT)
    summary.rates_added = ensure_exchange_rates(
        actor=actor, seed=seed, currencies=currencies, start=start - timedelta(days=7), end=today
    )
    seeded = set(
        Invoice.objects.filter(customer__in=customers, external_system=DEMO_SYSTEM).values_list(
            "customer_id", flat=True
        )
    )
    events: list[Event] = []
    for customer in customers:
        if customer.pk in seeded:
            summary.customers_skipped += 1
            continue
        plan = CustomerPlan(customer=customer, seed=seed, start=start, today=today, catalogue=catalogue)
        summary.customers_seeded += bool(plan.events)
        events += plan.events
    events.sort(key=lambda event: event.order)
    replay = Replay(actor=actor, requester=requester, approver=approver, customers=customers)
    for event in events:
        replay.run(event)
    summary.added = replay.added
    return summary


# --- Catalogue and rates -----------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    tax_rates: dict[str, TaxRate]
    products: dict[str, Product]  # by SKU, with tax rate and revenue account loaded
    items: dict[str, CatalogueItem]

    def of_kind(self, *kinds: str) -> list[CatalogueItem]:
        return [item for item in self.items.values() if item.kind in kinds]


def ensure_catalogue(*, actor) -> Catalogue:
    """The demo's tax rates and products. Reference data with no service of its own: created
    with the model (history attributed to `actor`), and left alone when it exists."""
    tax_payable = Account.objects.get(role=Account.Role.TAX_PAYABLE)
    sales = Account.objects.get(role=Account.Role.REVENUE)
    revenue = {"sales": sales, "services": Account.objects.filter(code="4010", is_active=True).first() or sales}
    tax_rates = {}
    for key, (name, rate, inclusive) in TAX_RATES.items():
        tax_rates[key] = TaxRate.objects.filter(name=name).first() or _created(
            TaxRate(name=name, rate=rate, inclusive=inclusive, liability_account=tax_payable), actor=actor
        )
    existing = Product.objects.select_related("tax_rate", "revenue_account").in_bulk(
        [item.sku for item in CATALOGUE], field_name="sku"
    )
    products = {}
    for item in CATALOGUE:
        products[item.sku] = existing.get(item.sku) or _created(
            Product(
                sku=item.sku,
                name=item.name,
                unit_price=Decimal(item.price),
                unit_cost=Decimal(item.cost) if item.cost else None,
                tax_rate=tax_rates[item.tax],
                revenue_account=revenue[item.revenue],
            ),
            actor=actor,
        )
    return Catalogue(tax_rates=tax_rates, products=products, items={item.sku: item for item in CATALOGUE})


def _created(instance, *, actor):
    instance.full_clean()
    instance._history_user = actor
    instance.save()
    del instance._history_user
    return instance


def ensure_exchange_rates(*, actor, seed: int, currencies: set[str], start: date, end: date) -> int:
    """A weekly rate (Mondays, and `start`) from `start` to `end` for each currency other than
    the base, as a company that books at the week's rate enters them; a day that has a rate
    already keeps it. Returns how many were added."""
    base = settings.CONCORD_BASE_CURRENCY
    unknown = (currencies | {base}) - {"USD", *FX_USD_PER_UNIT}
    if unknown:
        raise ValueError(f"The demo has no exchange-rate series for {', '.join(sorted(unknown))}.")
    walks = {currency: dict(_usd_walk(seed, currency, start, end)) for currency in FX_USD_PER_UNIT}
    walks["USD"] = {day: Decimal(1) for day in walks["EUR"]}
    existing = set(
        ExchangeRate.objects.filter(rate_date__gte=start, rate_date__lte=end).values_list("currency", "rate_date")
    )
    added = 0
    for currency in sorted(currencies - {base}):
        for day, usd_per_unit in walks[currency].items():
            if (currency, day) in existing:
                continue
            rate = (usd_per_unit / walks[base][day]).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
            set_exchange_rate(actor=actor, currency=currency, rate_date=day, rate=rate, source="Demo reference rate")
            added += 1
    return added


def _usd_walk(seed: int, currency: str, start: date, end: date):
    centre, low, high, volatility = FX_USD_PER_UNIT[currency]
    rng = random.Random(f"concord-demo:{seed}:fx:{currency}")
    value = centre + rng.uniform(-0.5, 0.5) * (high - low) / 2
    day = start
    while day <= end:
        if day.weekday() < 5:  # the market moves on business days
            value += (centre - value) * FX_REVERSION + rng.gauss(0, volatility)
            value = min(max(value, low), high)
        if day == start or day.weekday() == 0:
            yield day, Decimal(f"{value:.4f}")
        day += timedelta(days=1)


# --- Planning one customer's history -----------------------------------------------------------


@dataclass
class PlannedInvoice:
    key: str
    issue_date: date
    due_date: date
    lines: list[LineInput]
    kind: str = "order"  # or "subscription"
    memo: str = ""
    issued_in_error: bool = False  # voided within days, before anything is applied to it


class CustomerPlan:
    """Everything that happens to one customer's receivables, as dated events. Pure: reads
    nothing from the database, so the same seed and customer always give the same plan."""

    def __init__(self, *, customer: Customer, seed: int, start: date, today: date, catalogue: Catalogue):
        self.customer = customer
        self.number = int(customer.account_number.rsplit("-", 1)[-1])
        self.rng = random.Random(f"concord-demo:{seed}:{customer.account_number}")
        self.start, self.today, self.catalogue = start, today, catalogue
        self.events: list[Event] = []
        self._seq = 0
        self._payment_seq = 0
        self._tranches: dict[tuple[date, str], list[tuple[str, object]]] = defaultdict(list)
        self._draw_character()
        invoices = self._plan_invoices()
        for invoice in invoices:
            self._plan_life_of(invoice)
        if invoices:
            self._plan_standalone_credits(first=invoices[0].issue_date)
            self._plan_payments_on_account()
        self._emit_payments()

    # Who the customer is --------------------------------------------------------------------

    def _draw_character(self) -> None:
        rng, customer = self.rng, self.customer
        if customer.status == Customer.Status.ON_HOLD:
            self.profile = "slow"
        elif customer.status == Customer.Status.ARCHIVED:
            self.profile = rng.choice(["prompt", "late"])
        else:
            self.profile = rng.choices(list(PROFILES), weights=list(PROFILES.values()))[0]
        size = rng.choices(list(SIZES), weights=[weight for _, weight in SIZES.values()])[0]
        (self.monthly_invoices, self.scale), _ = SIZES[size]
        self.is_key_account = size in ("large", "key")
        methods = METHODS.get(customer.billing_country, METHODS["default"])
        self.method = rng.choices(list(methods), weights=list(methods.values()))[0]
        self.card_last4 = f"{rng.randrange(10000):04d}"
        self.run_day = rng.choice(PAYMENT_RUN_DAYS) if rng.random() < BATCH_PAYER_SHARE[size] else None
        self.subscriber = rng.random() < SUBSCRIBER_SHARE
        self.seats = rng.randint(3, 40)
        self.needs_po = rng.random() < 0.3
        goods = self.catalogue.of_kind("goods", "consumable")
        self.buys = rng.sample(goods, k=rng.randint(3, min(7, len(goods))))
        if rng.random() < 0.5:
            self.buys += rng.sample(self.catalogue.of_kind("service"), k=rng.randint(1, 2))
        # An archived customer stopped buying months ago.
        self.active_until = self.today
        if customer.status == Customer.Status.ARCHIVED:
            self.active_until = self.today - timedelta(days=rng.randint(150, 330))

    # Invoices ---------------------------------------------------------------------------------

    def _plan_invoices(self) -> list[PlannedInvoice]:
        rng = self.rng
        dates = []
        day = self.start + timedelta(days=rng.randint(0, 20))
        while day <= self.active_until:
            dates.append((_business_day(day), "order"))
            day += timedelta(days=max(3, round(rng.expovariate(self.monthly_invoices / 30.4))))
        if self.subscriber:
            month = _first_of_next_month(self.start)
            while month <= self.active_until:
                dates.append((month, "subscription"))
                month = _first_of_next_month(month)
        dates = [(on, kind) for on, kind in sorted(dates) if on <= self.active_until]
        invoices = []
        for index, (on, kind) in enumerate(dates, start=1):
            lines = self._subscription_lines(on) if kind == "subscription" else self._order_lines()
            memo = f"Warehouse software, {on:%B %Y}" if kind == "subscription" else ""
            if self.needs_po:
                memo = f"{memo}\nPO {rng.randrange(4500000000, 4600000000)}".strip()
            invoice = PlannedInvoice(
                key=f"{self.customer.account_number}-{index:04d}",
                issue_date=on,
                due_date=on + timedelta(days=self.customer.payment_terms_days),
                lines=lines,
                kind=kind,
                memo=memo,
            )
            self._event(on, "issue", invoice=invoice)
            invoices.append(invoice)
        return invoices

    def _order_lines(self) -> list[LineInput]:
        rng = self.rng
        count = rng.choices([1, 2, 3, 4], weights=[60, 25, 10, 5])[0]
        items = rng.sample(self.buys, k=min(count, len(self.buys)))
        lines = [self._line(item) for item in items]
        if any(item.kind == "goods" for item in items) and rng.random() < 0.25:
            lines.append(self._line(self.catalogue.items["FRT-DLV"]))
        return lines

    def _subscription_lines(self, on: date) -> list[LineInput]:
        if self.rng.random() < 0.1:
            self.seats = max(1, self.seats + self.rng.choice([-2, -1, 1, 2, 3]))
        item = self.catalogue.items["SUB-WMS-SEAT"]
        return [self._line(item, quantity=self.seats, description=f"{item.name}, {on:%B %Y}")]

    def _line(self, item: CatalogueItem, *, quantity: int | None = None, description: str = "") -> LineInput:
        rng = self.rng
        if quantity is None:
            low, high = item.quantities
            quantity = max(1, round(rng.randint(low, high) * (self.scale if high > 1 else 1)))
        discount_type, discount_value = "none", ZERO
        unit_price = self._local_price(item)
        if self.is_key_account and item.kind in ("goods", "consumable") and rng.random() < 0.5:
            discount_type, discount_value = "percent", rng.choice([Decimal("5"), Decimal("7.5"), Decimal("10")])
        elif item.kind == "service" and quantity * unit_price > 500 and rng.random() < 0.08:
            discount_type, discount_value = "amount", Decimal(rng.choice([50, 100, 150]))
        tax_rate = None
        if self.customer.billing_country in ZERO_RATED_COUNTRIES:
            tax_rate = self.catalogue.tax_rates["zero"]
        return LineInput(
            description=description,
            quantity=Decimal(quantity),
            unit_price=unit_price,
            product=self.catalogue.products[item.sku],
            discount_type=discount_type,
            discount_value=discount_value,
            tax_rate=tax_rate,
        )

    def _local_price(self, item: CatalogueItem) -> Decimal:
        currency, base = self.customer.currency, settings.CONCORD_BASE_CURRENCY
        price = Decimal(item.price) * PRICE_LIST_FACTOR[currency] / PRICE_LIST_FACTOR.get(base, Decimal(1))
        step = Decimal("1") if price >= 100 else Decimal("0.10")
        return (price / step).quantize(Decimal("1"), rounding=ROUND_HALF_UP) * step

    # What happens to each invoice -------------------------------------------------------------

    def _plan_life_of(self, invoice: PlannedInvoice) -> None:
        rng = self.rng
        issue, due = invoice.issue_date, invoice.due_date
        if invoice.kind == "order" and self.profile != "on_account" and rng.random() < 0.006:
            invoice.issued_in_error = True
            self._event(issue + timedelta(days=rng.randint(0, 3)), "void", invoice=invoice.key)
            return
        if invoice.kind == "subscription" and self.method == "card" and self.profile != "slow":
            self._tranche(issue, invoice.key, REST, method="card")  # charged to the card on file
            return
        if self.profile == "on_account":
            return  # paid by round sums on account, applied oldest first (see below)
        disputed = invoice.kind == "order" and rng.random() < (0.05 if self.profile == "slow" else 0.015)
        if disputed:
            self._plan_dispute(invoice)
            return
        credited_on = None
        tranches = self._tranches_for(issue, due)
        if invoice.kind == "order" and rng.random() < 0.025:
            credited_on = issue + timedelta(days=rng.randint(4, 25))
            # Credited after it was paid: the customer asks for the money back.
            refund = bool(tranches) and tranches[-1][0] < credited_on
            self._credit_against(invoice, credited_on, returned=True, carry=not refund)
            if refund:
                self._event(credited_on + timedelta(days=rng.randint(7, 30)), "refund", credit_note=invoice.key)
        for on, spec in tranches:
            self._tranche(on, invoice.key, spec)
        if not tranches or tranches[-1][1] != REST:
            self._maybe_write_off(invoice)
        elif len(tranches) == 1 and rng.random() < 0.008:
            paid_on = self._pay_day(tranches[0][0])
            self._duplicate_payment(invoice, paid_on + timedelta(days=rng.randint(1, 10)))

    def _tranches_for(self, issue: date, due: date) -> list[tuple[date, object]]:
        rng, profile = self.rng, self.profile
        days = timedelta
        if profile == "prompt":
            on = due - days(days=rng.randint(1, max(1, (due - issue).days * 2 // 3)))
            if rng.random() < 0.08:
                on = due + days(days=rng.randint(1, 9))
            return [(on, REST)]
        if profile == "late":
            if rng.random() < 0.2:
                return [(due - days(days=rng.randint(0, 5)), REST)]
            return [(due + days(days=rng.randint(10, 60)), REST)]
        if profile == "partial":
            if rng.random() < 0.4:
                return [(due + days(days=rng.randint(0, 30)), REST)]
            first = due + days(days=rng.randint(-7, 20))
            tranches = [(first, rng.choice([Decimal("0.25"), Decimal("0.4"), Decimal("0.5"), Decimal("0.6")]))]
            if rng.random() < 0.95:
                tranches.append((first + days(days=rng.randint(15, 75)), REST))
            return tranches
        # slow: pays months late, sometimes in two goes, sometimes never
        if rng.random() < 0.07:
            return []
        if rng.random() < 0.3:
            first = due + days(days=rng.randint(30, 90))
            return [(first, Decimal("0.5")), (first + days(days=rng.randint(30, 70)), REST)]
        return [(due + days(days=rng.randint(45, 150)), REST)]

    def _plan_dispute(self, invoice: PlannedInvoice) -> None:
        rng = self.rng
        line = invoice.lines[0]
        product = line.product
        disputed_on = invoice.issue_date + timedelta(days=rng.randint(3, 20))
        goods = product.unit_cost is not None
        reason = rng.choice(DISPUTE_REASONS[goods]).format(qty=max(1, int(line.quantity) // 4), item=product.name)
        self._event(disputed_on, "dispute", invoice=invoice.key, reason=reason)
        outcome = rng.choices(["credited", "upheld", "open"], weights=[55, 25, 20])[0]
        if outcome == "open":
            return  # still being argued about: no payment, no write-off
        resolved_on = disputed_on + timedelta(days=rng.randint(10, 45))
        if outcome == "credited":
            self._credit_against(invoice, resolved_on, returned=False, carry=True)
        self._event(resolved_on, "resolve", invoice=invoice.key)
        self._tranche(resolved_on + timedelta(days=rng.randint(3, 25)), invoice.key, REST)

    def _credit_against(self, invoice: PlannedInvoice, on: date, *, returned: bool, carry: bool) -> None:
        """A credit for part of the first line: some of the goods back, or a price adjustment.
        With `carry`, credit the invoice no longer needs goes to the customer's other invoices."""
        rng = self.rng
        line = invoice.lines[0]
        name = line.description or line.product.name
        if returned and line.quantity > 1 and line.product.unit_cost is not None:
            quantity = Decimal(rng.randint(1, max(1, int(line.quantity) // 3)))
            credit = LineInput(
                description=f"Return of {name}",
                quantity=quantity,
                unit_price=line.unit_price,
                product=line.product,
                discount_type="percent" if line.discount_type == "percent" else "none",
                discount_value=line.discount_value if line.discount_type == "percent" else ZERO,
                tax_rate=line.tax_rate,
            )
            reason = rng.choice(RETURN_REASONS).format(item=name)
        else:
            charged = quantize(line.quantity * line.unit_price) - (
                quantize(quantize(line.quantity * line.unit_price) * line.discount_value / 100)
                if line.discount_type == "percent"
                else line.discount_value
            )
            share = rng.choice([Decimal("0.1"), Decimal("0.15"), Decimal("0.2"), Decimal("0.3")])
            credit = LineInput(
                description=f"Price adjustment: {name}",
                quantity=Decimal(1),
                unit_price=quantize(charged * share),
                product=line.product,
                tax_rate=line.tax_rate,
            )
            reason = rng.choice(ADJUSTMENT_REASONS[line.product.unit_cost is not None]).format(item=name)
        self._event(on, "credit", key=invoice.key, invoice=invoice.key, lines=[credit], reason=reason, carry=carry)

    def _maybe_write_off(self, invoice: PlannedInvoice) -> None:
        """An invoice that will never be paid in full: bad debt, once AR has given up on it."""
        rng = self.rng
        requested_on = invoice.due_date + timedelta(days=rng.randint(150, 210))
        self._event(requested_on, "request_write_off", invoice=invoice.key, reason=rng.choice(WRITE_OFF_REASONS))
        self._event(requested_on + timedelta(days=rng.randint(1, 10)), "approve_write_off", invoice=invoice.key)

    def _duplicate_payment(self, invoice: PlannedInvoice, on: date) -> None:
        """The customer's AP pays the same invoice twice; the second payment is refunded."""
        key = self._payment_key()
        on = self._pay_day(on)
        self._event(on, "duplicate", payment=key, invoice=invoice.key, method=self.method, reference=self._ref())
        self._event(on + timedelta(days=self.rng.randint(7, 25)), "refund", payment=key)

    def _plan_standalone_credits(self, *, first: date) -> None:
        """Now and then a rebate or a goodwill credit, not tied to one invoice."""
        rng = self.rng
        quarters = max(1, (self.active_until - first).days // 91)
        for index in range(sum(rng.random() < 0.04 for _ in range(quarters))):
            on = _business_day(first + timedelta(days=rng.randint(20, max(21, (self.active_until - first).days))))
            amount = Decimal(rng.randint(4, 40) * 10) * Decimal(str(self.scale))
            tax_rate = self.catalogue.tax_rates[
                "zero" if self.customer.billing_country in ZERO_RATED_COUNTRIES else "standard"
            ]
            reason = rng.choice(STANDALONE_CREDITS).format(period=f"Q{(on.month - 1) // 3 + 1} {on.year}")
            key = f"{self.customer.account_number}-CN{index + 1}"
            lines = [LineInput(description=reason, unit_price=quantize(amount), tax_rate=tax_rate)]
            # Most credits are used against invoices; some are paid out.
            refund = rng.random() < 0.2
            self._event(on, "credit", key=key, invoice=None, lines=lines, reason=reason, carry=not refund)
            if refund:
                self._event(on + timedelta(days=rng.randint(7, 30)), "refund", credit_note=key)

    def _plan_payments_on_account(self) -> None:
        """Some customers pay a round sum every month on the 25th, for whatever has fallen due;
        Concord applies it oldest due first, and a surplus waits for the next invoices."""
        if self.profile != "on_account":
            return
        month = _first_of_next_month(self.start)
        while month <= self.active_until + timedelta(days=90):
            on = _business_day(month.replace(day=25))
            self._event(on, "on_account", payment=self._payment_key(), method=self.method, reference=self._ref())
            month = _first_of_next_month(month)

    # Payments ---------------------------------------------------------------------------------

    def _tranche(self, on: date, invoice_key: str, spec, *, method: str | None = None) -> None:
        method = method or self.method
        on = on if method == "card" else self._pay_day(on)
        if method == "cheque" and self.rng.random() < 0.03:
            # A cheque that bounces; the customer pays again by bank transfer a week or two later.
            key = self._payment_key()
            self._event(on, "bounce", payment=key, invoice=invoice_key, method="cheque", reference=self._ref("cheque"))
            self._event(on + timedelta(days=self.rng.randint(3, 6)), "fail", payment=key)
            on, method = self._pay_day(on + timedelta(days=self.rng.randint(8, 16))), "bank_transfer"
        self._tranches[(on, method)].append((invoice_key, spec))

    def _pay_day(self, on: date) -> date:
        if self.run_day is not None:  # the next payment run
            run = on.replace(day=self.run_day)
            on = run if run >= on else _first_of_next_month(on).replace(day=self.run_day)
        return _business_day(on)

    def _emit_payments(self) -> None:
        for (on, method), tranches in sorted(self._tranches.items()):
            self._event(
                on, "pay", payment=self._payment_key(), method=method, reference=self._ref(method), tranches=tranches
            )

    def _payment_key(self) -> str:
        self._payment_seq += 1
        return f"{DEMO_SYSTEM}-{self.customer.account_number}-P{self._payment_seq:04d}"

    def _ref(self, method: str | None = None) -> str:
        method = method or self.method
        if method == "card":
            return f"Card ending {self.card_last4}"
        if method == "cheque":
            return f"Cheque {self.rng.randrange(100000, 999999)}"
        return f"Transfer {self.rng.randrange(10**7, 10**8)}"

    def _event(self, on: date, kind: str, **args) -> None:
        if on > self.today:
            return  # has not happened yet
        self._seq += 1
        self.events.append(Event(on, PHASE[kind], self.number, self._seq, kind, args))


def _business_day(day: date) -> date:
    """`day`, or the Monday after when it falls on a weekend."""
    return day + timedelta(days=7 - day.weekday()) if day.weekday() >= 5 else day


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    following = date(year + month // 12, month % 12 + 1, 1)
    return date(year, month, min(day.day, (following - timedelta(days=1)).day))


# --- Replaying the plan through the services ---------------------------------------------------


class Replay:
    """Runs the planned events, in date order, through billing.services."""

    def __init__(self, *, actor, requester, approver, customers: list[Customer]):
        self.actor, self.requester, self.approver = actor, requester, approver
        self.customers = {int(customer.account_number.rsplit("-", 1)[-1]): customer for customer in customers}
        self.invoices: dict[str, Invoice] = {}
        self.payments: dict[str, Payment] = {}
        self.credit_notes: dict[str, CreditNote] = {}
        self.write_offs: dict[str, WriteOff] = {}
        # Credit notes whose credit AR applies to the customer's next invoices, by customer id.
        self.carried: defaultdict[int, list[str]] = defaultdict(list)
        self.to_void: set[int] = set()  # issued in error: nothing may be applied to them
        self.added: Counter = Counter()

    def run(self, event: Event) -> None:
        customer = self.customers[event.customer_number]
        getattr(self, f"_{event.kind}")(event.on, customer, **event.args)

    def _issue(self, on, customer, *, invoice: PlannedInvoice) -> None:
        draft = services.create_invoice(
            actor=self.actor,
            customer=customer,
            lines=invoice.lines,
            due_date=invoice.due_date,
            memo=invoice.memo,
            external_system=DEMO_SYSTEM,
            external_id=invoice.key,
        )
        self.invoices[invoice.key] = services.issue_invoice(actor=self.actor, invoice=draft, issue_date=on)
        self.added["invoices"] += 1
        if invoice.issued_in_error:
            self.to_void.add(draft.pk)
        elif self.carried[customer.pk]:
            self._use_carried_credit(on, customer)

    def _void(self, on, customer, *, invoice: str) -> None:
        services.void_invoice(actor=self.actor, invoice=self.invoices[invoice], voided_on=on)
        self.to_void.discard(self.invoices[invoice].pk)
        self.added["voids"] += 1

    def _dispute(self, on, customer, *, invoice: str, reason: str) -> None:
        services.set_dispute(actor=self.actor, invoice=self.invoices[invoice], disputed=True, reason=reason)
        self.added["disputes"] += 1

    def _resolve(self, on, customer, *, invoice: str) -> None:
        services.set_dispute(actor=self.actor, invoice=self.invoices[invoice], disputed=False)

    def _credit(
        self, on, customer, *, key: str, invoice: str | None, lines: list[LineInput], reason: str, carry: bool
    ) -> None:
        note = services.issue_credit_note(
            actor=self.actor,
            customer=customer,
            lines=lines,
            reason=reason,
            invoice=self.invoices[invoice] if invoice else None,
            issue_date=on,
        )
        self.credit_notes[key] = note
        self.added["credit notes"] += 1
        if carry and note.unapplied_amount > 0:
            self.carried[customer.pk].append(key)
            self._use_carried_credit(on, customer)

    def _pay(self, on, customer, *, payment: str, method: str, reference: str, tranches) -> None:
        """A remittance for the planned invoices: what is still open on each (or the planned
        share of it). Applied by `auto_allocate` when that picks exactly these invoices (one
        service call instead of one per invoice), otherwise invoice by invoice."""
        open_now = list(
            Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES).order_by(
                "due_date", "issue_date", "id"
            )
        )
        by_pk = {invoice.pk: invoice for invoice in open_now}
        paying: dict[Invoice, Decimal] = {}
        for key, spec in tranches:
            invoice = by_pk.get(self.invoices[key].pk)
            if invoice is None:
                continue  # settled meanwhile, by a credit note or a payment on account
            amount = invoice.open_amount
            if spec != REST:
                amount = max(Decimal(1), (invoice.gross_total * spec).quantize(Decimal(1)))
            # Two instalments of one invoice can fall in the same payment run.
            paying[invoice] = min(invoice.open_amount, paying.get(invoice, ZERO) + amount)
        parts = list(paying.items())
        if not parts:
            return
        oldest_first = [
            invoice for invoice in open_now if invoice.currency == customer.currency and not invoice.disputed
        ]
        parts.sort(key=lambda part: open_now.index(part[0]))
        paid_in_full = all(amount == invoice.open_amount for invoice, amount in parts[:-1])
        automatic = paid_in_full and [invoice for invoice, _ in parts] == oldest_first[: len(parts)]
        total = sum(amount for _, amount in parts)
        received = self._record(
            on, customer, key=payment, amount=total, method=method, ref=reference, auto_apply=automatic
        )
        if not automatic:
            for invoice, amount in parts:
                services.allocate_payment(
                    actor=self.actor, payment=received, invoice=invoice, amount=amount, allocated_on=on
                )

    def _duplicate(self, on, customer, *, payment: str, invoice: str, method: str, reference: str) -> None:
        amount = self.invoices[invoice].gross_total
        self._record(on, customer, key=payment, amount=amount, method=method, ref=reference)

    def _bounce(self, on, customer, *, payment: str, invoice: str, method: str, reference: str) -> None:
        open_amount = Invoice.objects.values_list("open_amount", flat=True).get(pk=self.invoices[invoice].pk)
        if open_amount > 0:
            self._record(on, customer, key=payment, amount=open_amount, method=method, ref=reference)

    def _fail(self, on, customer, *, payment: str) -> None:
        if payment in self.payments:
            services.fail_payment(actor=self.actor, payment=self.payments[payment], failed_on=on)
            self.added["failed payments"] += 1

    def _on_account(self, on, customer, *, payment: str, method: str, reference: str) -> None:
        """Last month's surplus is applied first, then a round sum for what falls due this week."""
        for earlier in Payment.objects.filter(customer=customer, status=Payment.Status.CLEARED, unapplied_amount__gt=0):
            services.auto_allocate(actor=self.actor, payment=earlier)
        due = (
            Invoice.objects.filter(
                customer=customer,
                status__in=Invoice.OPEN_STATUSES,
                disputed=False,
                due_date__lte=on + timedelta(days=7),
            ).aggregate(total=Sum("open_amount"))["total"]
            or ZERO
        )
        amount = (due / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP) * 100
        if amount > 0:
            self._record(on, customer, key=payment, amount=amount, method=method, ref=reference, auto_apply=True)

    def _use_carried_credit(self, on, customer) -> None:
        """Apply the customer's carried credit notes to its open invoices, oldest due first."""
        keys = {self.credit_notes[key].pk: key for key in self.carried[customer.pk]}
        notes = list(CreditNote.objects.filter(pk__in=keys, unapplied_amount__gt=0).order_by("issue_date", "id"))
        invoices = Invoice.objects.filter(customer=customer, status__in=Invoice.OPEN_STATUSES, disputed=False)
        for invoice in invoices.exclude(pk__in=self.to_void).order_by("due_date", "issue_date", "id"):
            while notes and invoice.open_amount > 0:
                note = notes[0]
                amount = min(note.unapplied_amount, invoice.open_amount)
                services.allocate_credit_note(
                    actor=self.actor, credit_note=note, invoice=invoice, amount=amount, allocated_on=on
                )
                note.unapplied_amount -= amount
                invoice.open_amount -= amount
                if note.unapplied_amount == 0:
                    notes.pop(0)
            if not notes:
                break
        self.carried[customer.pk] = [keys[note.pk] for note in notes]

    def _refund(self, on, customer, *, payment: str | None = None, credit_note: str | None = None) -> None:
        if payment:
            credit = Payment.objects.filter(pk=self.payments[payment].pk, status=Payment.Status.CLEARED).first()
        else:
            credit = CreditNote.objects.get(pk=self.credit_notes[credit_note].pk)
        if credit is None or credit.unapplied_amount == 0:
            return
        services.refund_credit(
            actor=self.actor,
            amount=credit.unapplied_amount,
            refunded_on=on,
            method="bank_transfer",
            payment=credit if payment else None,
            credit_note=None if payment else credit,
            reference=f"Refund of {credit}"[:100],
        )
        self.added["refunds"] += 1

    def _request_write_off(self, on, customer, *, invoice: str, reason: str) -> None:
        current = Invoice.objects.get(pk=self.invoices[invoice].pk)
        if current.status in Invoice.OPEN_STATUSES and not current.disputed:
            self.write_offs[invoice] = services.request_write_off(actor=self.requester, invoice=current, reason=reason)

    def _approve_write_off(self, on, customer, *, invoice: str) -> None:
        if invoice in self.write_offs:
            services.approve_write_off(actor=self.approver, write_off=self.write_offs[invoice], written_off_on=on)
            self.added["write-offs"] += 1

    def _record(self, on, customer, *, key: str, amount: Decimal, method: str, ref: str, auto_apply=False) -> Payment:
        payment = services.record_payment(
            actor=self.actor,
            customer=customer,
            amount=amount,
            received_on=on,
            method=method,
            reference=ref,
            auto_apply=auto_apply,
        )
        self.payments[key] = payment
        self.added["payments"] += 1
        return payment
