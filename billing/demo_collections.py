"""Demo collections work for `manage.py seed_demo`: collectors on the overdue accounts, and
promises to pay — some still open, some kept, some broken (which tells the owner rep).

Runs after the receivables are replayed (billing.demo), through the same services a person
uses, dated in the recent past. Idempotent: when any demo customer already has a promise, it
does nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

from django.db.models import Min

from billing import collections, services
from billing.models import Invoice, PromiseToPay
from crm import services as crm_services
from crm.models import Customer
from ledger.money import quantize

PROMISES_OF_EACH_KIND = 5


def _overdue_invoices(customer_ids: list[int], today: date) -> dict[int, list[Invoice]]:
    """Each customer's overdue, undisputed open invoices, oldest due first."""
    overdue: dict[int, list[Invoice]] = {}
    for invoice in (
        Invoice.objects.filter(
            customer_id__in=customer_ids,
            status__in=Invoice.OPEN_STATUSES,
            due_date__lt=today - timedelta(days=25),
            disputed=False,
        )
        .select_related("customer")
        .order_by("customer_id", "due_date", "pk")
    ):
        overdue.setdefault(invoice.customer_id, []).append(invoice)
    return overdue


def seed_collections(*, actor, collector, customers: list[Customer], seed: int, today: date) -> Counter:
    added: Counter = Counter()
    customer_ids = [customer.pk for customer in customers]
    if PromiseToPay.objects.filter(customer_id__in=customer_ids).exists():
        return added
    overdue = _overdue_invoices(customer_ids, today)
    rng = random.Random(f"{seed}-collections")  # noqa: S311 - demo data, not secrets

    # AR chases the accounts with the oldest debts; the rest wait, unassigned, on the worklist.
    oldest_due = dict(
        Invoice.objects.filter(pk__in=[invoices[0].pk for invoices in overdue.values()])
        .values_list("customer_id")
        .annotate(Min("due_date"))
    )
    for customer_id in sorted(oldest_due, key=lambda pk: (oldest_due[pk], pk))[: len(oldest_due) // 2]:
        crm_services.assign_collector(actor=actor, customer=Customer.objects.get(pk=customer_id), collector=collector)
        added["collectors assigned"] += 1

    chosen = sorted(overdue)
    rng.shuffle(chosen)
    kinds = ["open"] * PROMISES_OF_EACH_KIND + ["kept"] * PROMISES_OF_EACH_KIND + ["broken"] * PROMISES_OF_EACH_KIND
    for kind, customer_id in zip(kinds, chosen, strict=False):
        invoices = overdue[customer_id][:2]
        invoices = [invoice for invoice in invoices if invoice.currency == invoices[0].currency]
        amount = quantize(sum(invoice.open_amount for invoice in invoices))
        customer = invoices[0].customer
        if kind == "open":
            made_on, promised_on = today - timedelta(days=2), today + timedelta(days=rng.randint(3, 14))
        else:
            made_on, promised_on = today - timedelta(days=20), today - timedelta(days=rng.randint(3, 8))
        collections.record_promise(
            actor=collector,
            customer=customer,
            invoices=invoices,
            amount=amount,
            promised_on=promised_on,
            made_on=made_on,
            note="Promised on the phone to the collector.",
        )
        if kind == "kept":
            paid_on = promised_on - timedelta(days=1)
            payment = services.record_payment(
                actor=actor,
                customer=customer,
                amount=amount,
                currency=invoices[0].currency,
                received_on=paid_on,
                method="bank_transfer",
                reference=f"PTP-{customer.account_number}",
                auto_apply=False,
            )
            for invoice in invoices:
                invoice.refresh_from_db()
                services.allocate_payment(
                    actor=actor, payment=payment, invoice=invoice, amount=invoice.open_amount, allocated_on=paid_on
                )
        added[f"promises ({kind})"] += 1
    settled = collections.settle_due_promises(as_of=today, actor=actor)
    added["promises settled"] += settled["kept"] + settled["broken"]
    return added
