from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from billing import demo
from billing.models import CreditNote, Invoice, Payment, WriteOff
from config import audit
from crm.models import Customer
from ledger.models import ExchangeRate, JournalLine

pytestmark = pytest.mark.django_db

SYSTEM = "system.command:seed_demo"


def seed(customers=12, months=3, seed=7):
    call_command("seed_demo", customers=customers, months=months, seed=seed, stdout=StringIO())


def invoices():
    return list(
        Invoice.objects.order_by("number").values_list(
            "number", "customer__account_number", "issue_date", "due_date", "currency", "gross_total", "status"
        )
    )


def seeded_then_rolled_back(**options):
    """The demo's invoices for these options, loaded into a database that is then put back."""
    with transaction.atomic():
        seed(**options)
        loaded = invoices()
        transaction.set_rollback(True)
    return loaded


def totals():
    return {
        model.__name__: model.objects.count()
        for model in (Customer, Invoice, Payment, CreditNote, WriteOff, ExchangeRate, JournalLine)
    } | {"history": Invoice.history.count() + Payment.history.count()}


def test_seed_demo_loads_invoices_in_several_states_in_every_customer_currency():
    seed()
    statuses = set(Invoice.objects.values_list("status", flat=True))
    assert {Invoice.Status.ISSUED, Invoice.Status.PARTIALLY_PAID, Invoice.Status.PAID} <= statuses
    assert Payment.objects.exists()
    assert CreditNote.objects.exists()
    assert set(Invoice.objects.values_list("currency", flat=True)) == set(
        Customer.objects.filter(invoices__isnull=False).values_list("currency", flat=True)
    )
    assert not Invoice.objects.exclude(external_system="demo").exists()


def test_the_books_agree_on_the_demo_data_today_and_on_past_days():
    seed()
    today = timezone.localdate()
    for days_ago in (0, 10, 30, 61, 95):
        # Raises CommandError when the trial balance, AR control, open items and aging disagree.
        call_command("ledger_check", "--as-of", f"{today - timedelta(days=days_ago):%Y-%m-%d}", stdout=StringIO())


def test_demo_history_is_recorded_as_the_seed_demo_command():
    seed()
    assert {row.history_user.username for row in Invoice.history.select_related("history_user")} == {SYSTEM}
    assert {row.history_user.username for row in Payment.history.select_related("history_user")} == {SYSTEM}


def test_seed_demo_run_twice_adds_nothing():
    seed()
    before = totals()
    seed()
    assert totals() == before


def test_the_same_seed_gives_the_same_invoices():
    first = seeded_then_rolled_back(customers=8, months=2, seed=3)
    assert first
    assert seeded_then_rolled_back(customers=8, months=2, seed=3) == first


def test_another_seed_gives_other_invoices():
    assert seeded_then_rolled_back(customers=8, months=2, seed=3) != seeded_then_rolled_back(
        customers=8, months=2, seed=4
    )


def test_months_zero_loads_people_and_customers_only():
    seed(months=0)
    assert Customer.objects.count() == 12
    assert not Invoice.objects.exists()


def test_a_write_off_is_requested_by_ar_and_approved_by_admin():
    """Write-offs need invoices months overdue, which a small demo does not reach; the replay of
    a planned write-off is exercised on its own."""
    seed(customers=1, months=0)
    customer = Customer.objects.get()
    today = timezone.localdate()
    with audit.as_system("command:seed_demo"):
        actor = audit.system_actor("command:seed_demo")
        catalogue = demo.ensure_catalogue(actor=actor)
        demo.ensure_exchange_rates(
            actor=actor, seed=7, currencies={customer.currency}, start=today - timedelta(days=400), end=today
        )
        item = catalogue.items["SVC-SURVEY"]
        planned = demo.PlannedInvoice(
            key="C-000001-9999",
            issue_date=today - timedelta(days=300),
            due_date=today - timedelta(days=270),
            lines=[demo.LineInput(product=catalogue.products[item.sku])],
        )
        replay = demo.Replay(
            actor=actor,
            requester=_user("ar"),
            approver=_user("admin"),
            customers=[customer],
        )
        steps = [
            (planned.issue_date, "issue", {"invoice": planned}),
            (today - timedelta(days=60), "request_write_off", {"invoice": planned.key, "reason": "Dissolved."}),
            (today - timedelta(days=55), "approve_write_off", {"invoice": planned.key}),
        ]
        for seq, (on, kind, args) in enumerate(steps):
            replay.run(demo.Event(on, demo.PHASE[kind], 1, seq, kind, args))
    write_off = WriteOff.objects.select_related("requested_by", "decided_by", "invoice").get()
    assert (write_off.requested_by.username, write_off.decided_by.username) == ("ar", "admin")
    assert write_off.status == WriteOff.Status.APPROVED
    assert write_off.written_off_on == today - timedelta(days=55)
    assert write_off.invoice.status == Invoice.Status.WRITTEN_OFF
    call_command("ledger_check", stdout=StringIO())


def _user(username):
    return get_user_model().objects.get(username=username)
