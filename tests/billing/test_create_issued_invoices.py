"""create_issued_invoices leaves what create_invoices then issue_invoices leave — the same invoice
fields, lines, numbers, journal entries and customer balances — but writes each invoice once,
issued, with one history row; a refused batch changes nothing; and its queries do not grow with
the batch."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import services
from billing.models import Invoice, InvoiceLine, NumberSequence, TaxRate
from ledger.errors import MissingExchangeRate, PeriodLocked
from ledger.models import JournalEntry
from ledger.services import lock_period
from tests.billing.conftest import ISSUED_ON, books
from tests.billing.test_batch_services import (
    comparable,
    history_of,
    invoice_lines,
    last_entry_id,
    ledger_after,
    receivables,
)
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

D = Decimal
OPTIONS = [{}, {"due_date": date(2026, 4, 30), "memo": "Spring order"}, {}]


def line(**given):
    return services.LineInput(description="Consulting", **given)


def drafts_for(customer, count, amount="100.00"):
    return [services.InvoiceDraft(customer=customer, lines=[line(unit_price=D(amount))]) for _ in range(count)]


def issue_at_once(actor, drafts, on=ISSUED_ON):
    return services.create_issued_invoices(actor=actor, drafts=drafts, issue_date=on)


@pytest.fixture
def every_kind_of_line(widget, vat, sales_rep, eur_rates):
    """Drafts for a euro customer that post every kind of line (cost of goods, discounts,
    exclusive and inclusive tax, amounts that round), with and without a due date and memo."""
    inclusive = TaxRate.objects.create(
        name="VAT 20% incl.", rate=D("0.20"), inclusive=True, liability_account=vat.liability_account
    )

    def drafts(customer):
        return [
            services.InvoiceDraft(customer=customer, lines=given, **option)
            for given, option in zip(invoice_lines(widget, vat, inclusive), OPTIONS, strict=True)
        ]

    return drafts


@pytest.fixture
def euro_customers(sales_rep, eur_rates):
    """Two customers alike in everything the services read: one invoiced in two passes (created,
    then issued), the other in one."""
    return [
        CustomerFactory(owner=sales_rep, display_name="Euro Trading", currency="EUR", payment_terms_days=14)
        for _ in range(2)
    ]


@pytest.fixture
def both_ways(clerk, euro_customers, every_kind_of_line):
    """The same drafts invoiced both ways: (two passes, one pass), each as stored, with the
    journal as each left it."""
    two_pass, one_pass = euro_customers
    start = last_entry_id()
    services.issue_invoices(
        actor=clerk,
        invoices=services.create_invoices(actor=clerk, drafts=every_kind_of_line(two_pass)),
        issue_date=ISSUED_ON,
    )
    middle = last_entry_id()
    returned = issue_at_once(clerk, every_kind_of_line(one_pass))
    journal = ledger_after(start)
    return {
        "two_pass": list(Invoice.objects.filter(customer=two_pass).order_by("pk")),
        "one_pass": list(Invoice.objects.filter(customer=one_pass).order_by("pk")),
        "returned": returned,
        "two_pass_journal": [part[: len(part) // 2] for part in journal],
        "one_pass_journal": ledger_after(middle),
        "customers": euro_customers,
    }


def lines_of(invoices) -> list[InvoiceLine]:
    return [row for invoice in invoices for row in invoice.lines.order_by("position")]


# --- The same rows ------------------------------------------------------------------------------


def test_the_invoices_are_stored_as_creating_then_issuing_them_stores_them(both_ways):
    assert [comparable(invoice) for invoice in both_ways["one_pass"]] == [
        comparable(invoice) for invoice in both_ways["two_pass"]
    ]
    assert {invoice.status for invoice in both_ways["one_pass"]} == {Invoice.Status.ISSUED}


def test_the_invoices_returned_are_the_rows_stored(both_ways):
    assert [comparable(invoice) for invoice in both_ways["returned"]] == [
        comparable(invoice) for invoice in both_ways["one_pass"]
    ]


def test_the_lines_and_their_history_are_the_two_pass_ones(both_ways):
    one_pass, two_pass = lines_of(both_ways["one_pass"]), lines_of(both_ways["two_pass"])

    assert [comparable(row) for row in one_pass] == [comparable(row) for row in two_pass]
    assert history_of(one_pass) == history_of(two_pass)


def test_the_journal_entries_and_lines_are_the_two_pass_ones(both_ways):
    assert both_ways["one_pass_journal"] == both_ways["two_pass_journal"]


def test_each_entry_names_the_invoice_that_points_to_it(both_ways):
    for invoice in both_ways["one_pass"]:
        entry = JournalEntry.objects.get(pk=invoice.issue_entry_id)
        assert (entry.source_type, entry.source_id, entry.event) == (
            "billing.invoice",
            str(invoice.pk),
            "invoice_issued",
        )


def test_the_customer_balances_move_as_the_two_passes_move_them_and_the_ledger_checks(both_ways):
    two_pass, one_pass = both_ways["customers"]

    assert receivables(one_pass) == receivables(two_pass) != (D(0), D(0), D(0))
    call_command("ledger_check", stdout=None)


def test_each_invoice_has_one_history_row_created_as_issued(both_ways):
    one_pass = [invoice.history.order_by("history_id") for invoice in both_ways["one_pass"]]
    issued_in_two_passes = [history_of([invoice])[-1] for invoice in both_ways["two_pass"]]

    assert [[record.history_type for record in records] for records in one_pass] == [["+"]] * 3
    assert [{**comparable(records[0]), "history_type": "~"} for records in one_pass] == issued_in_two_passes


def test_the_history_records_the_actor(clerk, own_customer):
    invoices = issue_at_once(clerk, drafts_for(own_customer, 2))

    assert {record.history_user for record in Invoice.history.filter(id__in=[invoice.pk for invoice in invoices])} == {
        clerk
    }
    assert {record.history_user for record in InvoiceLine.history.all()} == {clerk}
    assert {record.history_user for record in JournalEntry.history.all()} == {clerk}


# --- Numbers and keys ---------------------------------------------------------------------------


def test_numbers_follow_the_order_of_the_drafts_gaplessly_among_single_issues(clerk, own_customer, others_customer):
    def single():
        draft = services.create_invoice(actor=clerk, customer=own_customer, lines=[line(unit_price=D(5))])
        return services.issue_invoice(actor=clerk, invoice=draft, issue_date=ISSUED_ON)

    first = single()
    batch = issue_at_once(clerk, drafts_for(others_customer, 2) + drafts_for(own_customer, 1, amount="7.00"))
    last = single()

    assert [invoice.number for invoice in [first, *batch, last]] == [f"INV-{n:06d}" for n in range(1, 6)]
    assert [invoice.customer_id for invoice in batch] == [others_customer.pk, others_customer.pk, own_customer.pk]
    assert [invoice.gross_total for invoice in batch] == [D("100.00"), D("100.00"), D("7.00")]
    assert NumberSequence.objects.get(series="INV").next_number == 6


def test_the_invoices_keys_come_from_the_tables_own_sequence(clerk, own_customer):
    batch = issue_at_once(clerk, drafts_for(own_customer, 3))
    after = services.create_invoice(actor=clerk, customer=own_customer, lines=[line(unit_price=D(5))])

    assert [invoice.pk for invoice in batch] == sorted(invoice.pk for invoice in batch)
    assert after.pk > batch[-1].pk


def test_an_empty_batch_writes_nothing(clerk):
    before = books()

    assert issue_at_once(clerk, []) == []
    assert books() == before


# --- Refusals -----------------------------------------------------------------------------------


def test_a_batch_with_one_draft_without_a_price_changes_nothing(clerk, own_customer):
    before = books()
    drafts = drafts_for(own_customer, 3)
    drafts.insert(2, services.InvoiceDraft(customer=own_customer, lines=[line()]))

    with pytest.raises(ValidationError, match="Line 1 needs a unit price or a product"):
        issue_at_once(clerk, drafts)

    assert books() == before
    assert receivables(own_customer) == (D(0), D(0), D(0))
    assert not Invoice.history.exists()


def test_a_batch_with_a_due_date_before_the_issue_date_changes_nothing(clerk, own_customer):
    before = books()
    drafts = drafts_for(own_customer, 2)
    drafts.append(
        services.InvoiceDraft(customer=own_customer, lines=[line(unit_price=D(5))], due_date=date(2026, 3, 1))
    )

    with pytest.raises(ValidationError, match="due date cannot be before the issue date"):
        issue_at_once(clerk, drafts)

    assert books() == before


def test_a_batch_into_a_locked_period_changes_nothing(clerk, finance_admin, own_customer):
    lock_period(actor=finance_admin, locked_through=date(2026, 3, 31))
    before = books()

    with pytest.raises(PeriodLocked):
        issue_at_once(clerk, drafts_for(own_customer, 2))

    assert books() == before
    assert not Invoice.history.exists()


def test_a_batch_for_a_day_without_an_exchange_rate_changes_nothing(clerk, own_customer, sales_rep):
    pounds = CustomerFactory(owner=sales_rep, currency="GBP")
    before = books()

    with pytest.raises(MissingExchangeRate, match="No GBP exchange rate"):
        issue_at_once(clerk, drafts_for(own_customer, 2) + drafts_for(pounds, 1))

    assert books() == before


# --- Queries ------------------------------------------------------------------------------------


@pytest.mark.postgres  # on SQLite, bulk inserts are cut into chunks of 999 parameters
def test_the_queries_of_a_batch_do_not_grow_with_its_size(clerk, sales_rep, widget, vat, django_assert_max_num_queries):
    customers = [CustomerFactory(owner=sales_rep) for _ in range(10)]
    issue_at_once(clerk, drafts_for(customers[0], 1))  # the number series exists from here on

    def drafts(count):
        # Each draft's tax rate read on its own, as separate requests would give them: the rates'
        # accounts the entries post to are loaded once a batch, not once an instance.
        return [
            services.InvoiceDraft(
                customer=customers[n % len(customers)],
                lines=[line(product=widget), line(unit_price=D("12.50"), tax_rate=TaxRate.objects.get(pk=vat.pk))],
            )
            for n in range(count)
        ]

    ten = drafts(10)
    with CaptureQueriesContext(connection) as queries:
        issue_at_once(clerk, ten)
    hundred = drafts(100)

    with django_assert_max_num_queries(len(queries)):
        issue_at_once(clerk, hundred)
    assert Invoice.objects.filter(status=Invoice.Status.ISSUED).count() == 111
