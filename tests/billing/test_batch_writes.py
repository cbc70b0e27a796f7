"""How the batch services write: config.bulk's rows and history rows (one statement per table,
the history of a row changed several times in order), the batch's field checks (each value as
Django checks it, the computed amounts by their digits), the garbage collector paused only while
a batch runs, and queries that do not grow with a batch."""

import copy
import gc
from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from billing.models import Invoice, InvoiceLine, Payment
from config import bulk
from ledger.models import JournalLine
from tests.billing.conftest import ISSUED_ON, books, issue
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

D = Decimal


def line(**given):
    return services.LineInput(description="Consulting", **given)


def drafts(customer, *prices):
    return [services.InvoiceDraft(customer=customer, lines=[line(unit_price=D(price))]) for price in prices]


# --- Field checks -------------------------------------------------------------------------------


def test_lines_of_the_same_shape_keep_their_own_amounts(clerk, own_customer):
    # 10.50 and 12.25 have the same digits and scale: checked once, each keeps its own value.
    services.create_invoices(
        actor=clerk,
        drafts=[
            services.InvoiceDraft(
                customer=own_customer,
                lines=[line(unit_price=D("10.50"), quantity=D(3)), line(unit_price=D("12.25"), quantity=D(2))],
            )
        ],
    )

    stored = list(InvoiceLine.objects.order_by("position").values_list("unit_price", "subtotal", "net", "gross"))
    assert stored == [
        (D("10.50"), D("31.50"), D("31.50"), D("31.50")),
        (D("12.25"), D("24.50"), D("24.50"), D("24.50")),
    ]
    assert Invoice.objects.get().gross_total == D("56.00")


def test_a_line_too_large_for_its_columns_is_refused_as_the_single_service_refuses_it(clerk, own_customer):
    huge = [line(quantity=D("999999999.999"), unit_price=D("9999999999.9999"))]
    with pytest.raises(ValidationError) as single:
        services.create_invoice(actor=clerk, customer=own_customer, lines=huge)
    before = books()

    with pytest.raises(ValidationError) as batch:
        services.create_invoices(
            actor=clerk,
            drafts=[*drafts(own_customer, "10.00"), services.InvoiceDraft(customer=own_customer, lines=huge)],
        )

    assert batch.value.message_dict == single.value.message_dict
    assert "gross_total" in batch.value.message_dict
    assert books() == before
    assert not InvoiceLine.history.exists()


# --- The garbage collector ----------------------------------------------------------------------


def test_a_batch_leaves_the_garbage_collector_running(clerk, own_customer):
    services.create_invoices(actor=clerk, drafts=drafts(own_customer, "10.00"))

    assert gc.isenabled()


def test_a_refused_batch_leaves_the_garbage_collector_running(clerk, own_customer):
    with pytest.raises(ValidationError):
        services.create_invoices(actor=clerk, drafts=[services.InvoiceDraft(customer=own_customer, lines=[])])

    assert gc.isenabled()


def test_a_batch_leaves_the_garbage_collector_paused_when_its_caller_paused_it(clerk, own_customer):
    gc.disable()
    try:
        services.create_invoices(actor=clerk, drafts=drafts(own_customer, "10.00"))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_garbage_collector_is_paused_while_a_batch_runs(clerk, own_customer, monkeypatch):
    seen = []
    real_insert = bulk.insert

    def insert(*args, **kwargs):
        seen.append(gc.isenabled())
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(bulk, "insert", insert)
    services.create_invoices(actor=clerk, drafts=drafts(own_customer, "10.00"))

    assert seen
    assert not any(seen)


# --- config.bulk --------------------------------------------------------------------------------


def test_each_change_of_a_row_updated_in_bulk_has_its_history_row_in_order(clerk, own_customer):
    [invoice] = services.create_invoices(actor=clerk, drafts=drafts(own_customer, "10.00"))
    states = []
    for memo in ("first", "second"):
        invoice.memo = memo
        states.append(copy.copy(invoice))
    invoice.memo = "third"
    states.append(invoice)

    bulk.update(Invoice, [invoice], ["memo"], actor=clerk, states=states)

    history = list(invoice.history.order_by("history_id").values_list("history_type", "memo", "history_user"))
    assert history == [
        ("+", "", clerk.pk),
        ("~", "first", clerk.pk),
        ("~", "second", clerk.pk),
        ("~", "third", clerk.pk),
    ]
    assert Invoice.objects.get(pk=invoice.pk).memo == "third"


def test_an_update_in_bulk_refuses_a_row_without_a_state(clerk, own_customer):
    first, second = services.create_invoices(actor=clerk, drafts=drafts(own_customer, "10.00", "20.00"))

    with pytest.raises(ValueError, match="needs a state"):
        bulk.update(Invoice, [first, second], ["memo"], actor=clerk, states=[first])


def test_rows_inserted_in_bulk_by_several_people_record_each_author(clerk, own_customer):
    other = UserFactory()
    first, second = Invoice(customer=own_customer, currency="USD"), Invoice(customer=own_customer, currency="USD")
    second._history_user = other

    bulk.insert(Invoice, [first, second], actor=clerk)

    assert [row.history.get().history_user for row in (first, second)] == [clerk, other]


def test_insert_values_needs_a_value_for_every_field(clerk):
    with pytest.raises(ValueError, match="amount_currency"):
        bulk.insert_values(
            JournalLine, ["entry_id", "account_id", "debit", "credit"], [[1, 1, D(1), D(0)]], actor=clerk
        )


def test_bulk_writes_name_the_rows_they_wrote(clerk, own_customer):
    named = []

    def note(sender, pks, **kwargs):
        named.append((sender, list(pks)))

    bulk.rows_written.connect(note)
    try:
        [invoice] = services.issue_invoices(
            actor=clerk,
            invoices=services.create_invoices(actor=clerk, drafts=drafts(own_customer, "10.00")),
            issue_date=ISSUED_ON,
        )
    finally:
        bulk.rows_written.disconnect(note)

    assert (Invoice, [invoice.pk]) in named  # inserted, then again when issued
    assert [sender for sender, _ in named].count(Invoice) == 2
    assert (InvoiceLine, list(invoice.lines.values_list("pk", flat=True))) in named
    assert (
        JournalLine,
        list(JournalLine.objects.filter(entry=invoice.issue_entry).values_list("pk", flat=True)),
    ) in named


# --- Queries ------------------------------------------------------------------------------------


@pytest.mark.postgres  # on SQLite, bulk inserts are cut into chunks of 999 parameters
def test_creating_a_batch_takes_as_many_queries_for_100_invoices_as_for_10(clerk, sales_rep):
    customers = [CustomerFactory(owner=sales_rep) for _ in range(10)]

    def queries_to_create(count: int) -> int:
        batch = [
            services.InvoiceDraft(customer=customers[n % 10], lines=[line(unit_price=D("12.50"))] * 3)
            for n in range(count)
        ]
        with CaptureQueriesContext(connection) as queries:
            services.create_invoices(actor=clerk, drafts=batch)
        return len(queries)

    assert queries_to_create(100) == queries_to_create(10)


@pytest.mark.postgres
def test_recording_a_batch_takes_as_many_queries_for_100_payments_as_for_10(clerk, sales_rep):
    customers = [CustomerFactory(owner=sales_rep) for _ in range(10)]
    for customer in customers:
        for _ in range(3):
            issue(clerk, customer, amount="40.00")

    def queries_to_record(count: int) -> int:
        batch = [
            services.PaymentDraft(
                customer=customers[n % 10], amount=D("2.00"), received_on=date(2026, 3, 9), method="bank_transfer"
            )
            for n in range(count)
        ]
        with CaptureQueriesContext(connection) as queries:
            services.record_payments(actor=clerk, payments=batch)
        return len(queries)

    # Small enough that neither batch settles an invoice (which reads the days of earlier payments).
    assert queries_to_record(100) == queries_to_record(10)
    assert Payment.objects.count() == 110
