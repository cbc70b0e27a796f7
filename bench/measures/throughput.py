"""Measure 5: issue + post invoices in batches, and record + allocate payments in batches, as
rates per second — through the batch services, or one document at a time when those are not there
(the result says so).

Issue + post times, per batch, billing.services.create_issued_invoices: each invoice priced from
its lines, numbered, its issue entry posted and the customer's balance moved, all in one
transaction, each invoice written once, issued (what create_invoices then issue_invoices leave).
Tryton's side (bench/tryton/workload.py) does the same work in its own way: it creates draft invoices
and posts them (`Invoice.create`, then `Invoice.post`), a transaction per batch.
Record + allocate times billing.services.record_payments.

These write: the runner gives them a database of their own (a copy of a shared one)."""

from __future__ import annotations

import itertools
import random
import time
from datetime import date
from decimal import Decimal

from bench.stats import QueryCounter, summary
from billing import services
from billing.models import Payment, TaxRate
from config.audit import system_actor
from crm.models import Customer
from ledger.money import quantize

ACTOR = "command:bench"
# Invoices drawn as bench/tryton/workload.py draws Tryton's: 1–3 lines of 1–10 units at
# 20.00–2,000.00, so that the Concord ÷ Tryton ratio compares the same work.
LINE_SEED = 20261126
PAYMENT_CAP = Decimal("150.00")
BATCH_UNAVAILABLE = "batch services unavailable: measured one document at a time"


def batch_services_available() -> bool:
    return all(hasattr(services, name) for name in ("create_issued_invoices", "InvoiceDraft"))


def payment_batches_available() -> bool:
    return all(hasattr(services, name) for name in ("record_payments", "PaymentDraft"))


def _lines(rng: random.Random, tax_rate: TaxRate | None) -> list[services.LineInput]:
    return [
        services.LineInput(
            description="Bench consulting",
            quantity=Decimal(rng.randint(1, 10)),
            unit_price=Decimal(rng.randint(2000, 200000)) / 100,
            tax_rate=tax_rate,
        )
        for _ in range(rng.randint(1, 3))
    ]


def _rate_result(batch_seconds: list[float], batch_queries: list[int], *, count: int, batched: bool) -> dict:
    total = sum(batch_seconds)
    return {
        "seconds": summary(batch_seconds),
        "batches": len(batch_seconds),
        "count": count,
        "total_seconds": round(total, 3),
        "per_second": round(count / total, 1) if total else None,
        "queries": max(batch_queries),
        "queries_per_document": round(sum(batch_queries) / count, 1) if count else None,
        "batched": batched,
        **({} if batched else {"note": BATCH_UNAVAILABLE}),
    }


def _issue_batch(customers: list[Customer], *, actor, lines, today: date, batched: bool) -> int:
    if batched:
        drafts = [services.InvoiceDraft(customer=customer, lines=lines()) for customer in customers]
        return len(services.create_issued_invoices(actor=actor, drafts=drafts, issue_date=today))
    for customer in customers:
        invoice = services.create_invoice(actor=actor, customer=customer, lines=lines())
        services.issue_invoice(actor=actor, invoice=invoice, issue_date=today)
    return len(customers)


def measure_issue_post(*, today: date, batch_size: int, batches: int, warmup: int = 1) -> dict:
    actor = system_actor(ACTOR)
    rng = random.Random(LINE_SEED)  # noqa: S311 - made-up figures, repeatable from the seed
    tax_rate = TaxRate.objects.filter(rate__gt=0).order_by("pk").first()

    def lines() -> list[services.LineInput]:
        return _lines(rng, tax_rate)

    batched = batch_services_available()
    pool = list(Customer.objects.filter(status=Customer.Status.ACTIVE).order_by("pk")[: batch_size * (batches + 1)])
    if not pool:
        pool = list(Customer.objects.order_by("pk")[: batch_size * (batches + 1)])
    cycle = itertools.cycle(pool)
    seconds, queries, count = [], [], 0
    for number in range(warmup + batches):
        customers = [next(cycle) for _ in range(batch_size)]
        with QueryCounter() as counter:
            started = time.perf_counter()
            issued = _issue_batch(customers, actor=actor, lines=lines, today=today, batched=batched)
            elapsed = time.perf_counter() - started
        if number >= warmup:
            seconds.append(elapsed)
            queries.append(counter.count)
            count += issued
    return {"issue_post": {**_rate_result(seconds, queries, count=count, batched=batched), "batch_size": batch_size}}


def _payment_amount(customer: Customer) -> Decimal:
    return quantize(min(max(customer.ar_open / 2, Decimal("1.00")), PAYMENT_CAP))


def _pay_batch(customers: list[Customer], *, actor, today: date, batched: bool, serial: itertools.count) -> int:
    method = Payment.Method.BANK_TRANSFER
    if batched:
        drafts = [
            services.PaymentDraft(
                customer=customer,
                amount=_payment_amount(customer),
                received_on=today,
                method=method,
                reference=f"bench-{next(serial)}",
            )
            for customer in customers
        ]
        recorded = services.record_payments(actor=actor, payments=drafts, auto_apply=True)
        return len(drafts) if recorded is None else len(recorded)
    for customer in customers:
        services.record_payment(
            actor=actor,
            customer=customer,
            amount=_payment_amount(customer),
            received_on=today,
            method=method,
            reference=f"bench-{next(serial)}",
        )
    return len(customers)


def measure_record_allocate(*, today: date, batch_size: int, batches: int, warmup: int = 1) -> dict:
    """Payments from customers with something open, each applied to their oldest open invoices."""
    actor = system_actor(ACTOR)
    batched = payment_batches_available()
    pool = list(Customer.objects.filter(ar_open__gt=0).order_by("pk")[: batch_size * (batches + warmup)])
    if not pool:
        raise LookupError("no customer has anything open to pay")
    cycle, serial = itertools.cycle(pool), itertools.count(1)
    seconds, queries, count = [], [], 0
    for number in range(warmup + batches):
        customers = [next(cycle) for _ in range(batch_size)]
        with QueryCounter() as counter:
            started = time.perf_counter()
            recorded = _pay_batch(customers, actor=actor, today=today, batched=batched, serial=serial)
            elapsed = time.perf_counter() - started
        if number >= warmup:
            seconds.append(elapsed)
            queries.append(counter.count)
            count += recorded
    return {
        "record_allocate": {**_rate_result(seconds, queries, count=count, batched=batched), "batch_size": batch_size}
    }
