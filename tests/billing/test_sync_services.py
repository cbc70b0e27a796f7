"""The billing services the sync engine needs, one behaviour per test: documents issued with an
accounting package's number and rate, an issued invoice's due date and memo changed in place, and
an issued invoice restated (its entry reversed and posted again) — with the books still agreeing."""

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from billing import services
from billing.errors import InvalidState
from billing.models import Invoice, NumberSequence
from ledger.errors import PeriodLocked
from ledger.models import Account, JournalEntry
from ledger.selectors import account_balance
from ledger.services import lock_period
from tests.billing.conftest import ISSUED_ON, books, issue
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

D = Decimal


def line(amount: str, description: str = "Consulting", **given) -> services.LineInput:
    return services.LineInput(description=description, unit_price=D(amount), **given)


def draft(actor, customer, amount="100.00"):
    return services.create_invoice(actor=actor, customer=customer, lines=[line(amount)])


def ledger_agrees(*days: date) -> None:
    """`manage.py ledger_check` passes today and as of each of `days` (it raises otherwise)."""
    call_command("ledger_check", stdout=StringIO())
    for day in days:
        call_command("ledger_check", "--as-of", day.isoformat(), stdout=StringIO())


def ar(customer, as_of=date(2099, 12, 31)) -> Decimal:
    return account_balance(role=Account.Role.AR_CONTROL, as_of=as_of, customer_id=customer.pk)


@pytest.fixture
def eur_customer(eur_rates):
    return CustomerFactory(currency="EUR")


# --- Numbers and rates given from outside ------------------------------------------------------


def test_an_invoice_issued_with_a_given_number_is_filed_in_the_external_series(clerk, own_customer):
    invoice = services.issue_invoice(
        actor=clerk, invoice=draft(clerk, own_customer), issue_date=ISSUED_ON, number="1037"
    )

    assert (invoice.series, invoice.number) == (services.EXTERNAL_SERIES, "1037")
    assert not NumberSequence.objects.exists()
    assert issue(clerk, own_customer).number == "INV-000001"


def test_a_given_number_taken_in_its_series_is_refused_and_changes_nothing(clerk, own_customer):
    services.issue_invoice(actor=clerk, invoice=draft(clerk, own_customer), issue_date=ISSUED_ON, number="1037")
    second = draft(clerk, own_customer)
    before = books()

    with pytest.raises(ValidationError, match="1037 is taken already"):
        services.issue_invoice(actor=clerk, invoice=second, issue_date=ISSUED_ON, number="1037")
    assert books() == before


def test_a_given_number_is_refused_in_a_series_concord_draws_from(clerk, own_customer):
    issue(clerk, own_customer)

    with pytest.raises(ValidationError, match="Concord numbers series INV itself"):
        services.issue_invoice(
            actor=clerk, invoice=draft(clerk, own_customer), issue_date=ISSUED_ON, number="INV-000002", series="INV"
        )


@pytest.mark.parametrize("number", ["", "   ", "X" * 31])
def test_an_empty_or_too_long_given_number_is_refused(clerk, own_customer, number):
    with pytest.raises(ValidationError, match="1 to 30 characters"):
        services.issue_invoice(actor=clerk, invoice=draft(clerk, own_customer), issue_date=ISSUED_ON, number=number)


def test_an_invoice_issued_at_a_given_rate_carries_its_base_amounts_at_that_rate(clerk, eur_customer):
    invoice = services.issue_invoice(
        actor=clerk, invoice=draft(clerk, eur_customer), issue_date=ISSUED_ON, exchange_rate=D("1.15")
    )

    assert (invoice.exchange_rate, invoice.base_gross, invoice.open_base) == (D("1.15"), D("115.00"), D("115.00"))
    assert ar(eur_customer) == D("115.00")


def test_a_given_rate_other_than_one_is_refused_for_the_base_currency(clerk, own_customer):
    with pytest.raises(ValidationError, match="USD is the base currency"):
        services.issue_invoice(
            actor=clerk, invoice=draft(clerk, own_customer), issue_date=ISSUED_ON, exchange_rate=D("1.01")
        )


def test_a_payment_recorded_at_a_given_rate_is_booked_at_it(clerk, eur_customer):
    payment = services.record_payment(
        actor=clerk,
        customer=eur_customer,
        amount=D("100.00"),
        received_on=ISSUED_ON,
        method="bank_transfer",
        exchange_rate=D("1.125"),
    )

    assert (payment.exchange_rate, payment.base_amount, payment.unapplied_base) == (
        D("1.125"),
        D("112.50"),
        D("112.50"),
    )


def test_a_standalone_credit_note_keeps_a_given_number_and_rate(clerk, eur_customer):
    credit_note = services.issue_credit_note(
        actor=clerk,
        customer=eur_customer,
        lines=[line("40.00")],
        reason="Goodwill",
        issue_date=ISSUED_ON,
        number="CM-7",
        exchange_rate=D("1.05"),
    )

    assert (credit_note.series, credit_note.number) == (services.EXTERNAL_SERIES, "CM-7")
    assert (credit_note.exchange_rate, credit_note.base_gross) == (D("1.05"), D("42.00"))
    assert not NumberSequence.objects.filter(series="CN").exists()


def test_a_credit_note_against_an_invoice_refuses_a_rate_other_than_the_invoice_rate(clerk, eur_customer):
    invoice = issue(clerk, eur_customer)

    with pytest.raises(ValidationError, match="booked at the invoice's rate"):
        services.issue_credit_note(
            actor=clerk,
            customer=eur_customer,
            invoice=invoice,
            lines=[line("10.00")],
            reason="Discount",
            issue_date=ISSUED_ON,
            exchange_rate=D("1.30"),
        )


def test_a_refund_at_a_given_rate_books_the_bank_side_at_it_and_the_difference_as_fx(clerk, eur_customer):
    payment = services.record_payment(
        actor=clerk, customer=eur_customer, amount=D("100.00"), received_on=ISSUED_ON, method="bank_transfer"
    )

    refund = services.refund_credit(
        actor=clerk,
        amount=D("100.00"),
        refunded_on=ISSUED_ON + timedelta(days=1),
        method="bank_transfer",
        payment=payment,
        exchange_rate=D("1.12"),
    )

    assert (refund.exchange_rate, refund.carrying_base, refund.bank_base) == (D("1.12"), D("110.00"), D("112.00"))
    assert account_balance(role=Account.Role.FX_GAIN_LOSS, as_of=date(2099, 12, 31)) == D("2.00")
    ledger_agrees(ISSUED_ON)


# --- update_issued_invoice ------------------------------------------------------------------------


def test_an_issued_invoice_due_date_and_memo_change_in_place_without_posting(clerk, own_customer):
    invoice = issue(clerk, own_customer)
    entries = JournalEntry.objects.count()

    services.update_issued_invoice(actor=clerk, invoice=invoice, due_date=date(2026, 6, 1), memo="PO 12")

    invoice.refresh_from_db()
    assert (invoice.due_date, invoice.memo) == (date(2026, 6, 1), "PO 12")
    assert JournalEntry.objects.count() == entries
    assert invoice.history.first().history_user == clerk


def test_a_field_left_out_stays_as_it_was(clerk, own_customer):
    invoice = issue(clerk, own_customer)
    services.update_issued_invoice(actor=clerk, invoice=invoice, memo="Keep")

    services.update_issued_invoice(actor=clerk, invoice=invoice, due_date=date(2026, 6, 1))

    invoice.refresh_from_db()
    assert (invoice.due_date, invoice.memo) == (date(2026, 6, 1), "Keep")


def test_an_unchanged_issued_invoice_writes_no_history_row(clerk, own_customer):
    invoice = issue(clerk, own_customer)
    rows = invoice.history.count()

    services.update_issued_invoice(actor=clerk, invoice=invoice, due_date=invoice.due_date, memo=invoice.memo)

    assert invoice.history.count() == rows


def test_a_due_date_before_the_issue_date_is_refused(clerk, own_customer):
    invoice = issue(clerk, own_customer)

    with pytest.raises(ValidationError, match="before the issue date"):
        services.update_issued_invoice(actor=clerk, invoice=invoice, due_date=ISSUED_ON - timedelta(days=1))


def test_a_draft_or_void_invoice_is_not_changed_as_an_issued_one(clerk, own_customer):
    void = services.void_invoice(actor=clerk, invoice=issue(clerk, own_customer), voided_on=ISSUED_ON)

    for invoice in (draft(clerk, own_customer), void):
        with pytest.raises(InvalidState, match="only an issued invoice is changed here"):
            services.update_issued_invoice(actor=clerk, invoice=invoice, memo="No")


# --- amend_issued_invoice -------------------------------------------------------------------------


def test_a_restated_invoice_reverses_its_entry_on_its_own_date_and_posts_again(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    first_entry = invoice.issue_entry

    invoice = services.amend_issued_invoice(actor=clerk, invoice=invoice, lines=[line("80.00"), line("45.00")])

    reversal = first_entry.reversed_by
    assert (reversal.event, reversal.entry_date) == ("invoice_restated", ISSUED_ON)
    assert (invoice.issue_entry.event, invoice.issue_entry.entry_date) == ("invoice_issued", ISSUED_ON)
    assert (invoice.gross_total, invoice.base_gross, invoice.open_amount, invoice.open_base) == (D("125.00"),) * 4
    assert list(invoice.lines.values_list("unit_price", flat=True)) == [D("80.00"), D("45.00")]
    own_customer.refresh_from_db()
    assert (own_customer.ar_open, ar(own_customer), ar(own_customer, as_of=ISSUED_ON)) == (D("125.00"),) * 3
    ledger_agrees(ISSUED_ON, ISSUED_ON - timedelta(days=1))


def test_a_restatement_keeps_the_old_lines_in_the_history(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    old_line = invoice.lines.get()

    services.amend_issued_invoice(actor=clerk, invoice=invoice, lines=[line("80.00")], issue_date=ISSUED_ON)

    deleted = old_line.history.first()
    assert (deleted.history_type, deleted.unit_price, deleted.history_user) == ("-", D("100.00"), clerk)


def test_a_restatement_to_a_later_issue_date_books_at_that_day_rate(clerk, eur_customer):
    invoice = issue(clerk, eur_customer, "100.00")  # 2 March: 1.10
    moved = date(2026, 4, 2)  # 1.20 from 1 April
    services.update_issued_invoice(actor=clerk, invoice=invoice, due_date=moved + timedelta(days=30))

    invoice = services.amend_issued_invoice(actor=clerk, invoice=invoice, lines=[line("100.00")], issue_date=moved)

    assert (invoice.issue_date, invoice.exchange_rate, invoice.base_gross) == (moved, D("1.20"), D("120.00"))
    assert ar(eur_customer, as_of=moved - timedelta(days=1)) == D("0.00")
    assert ar(eur_customer, as_of=moved) == D("120.00")
    ledger_agrees(ISSUED_ON, moved)


def test_a_restatement_to_an_issue_date_after_its_due_date_is_refused(clerk, own_customer):
    invoice = issue(clerk, own_customer)

    with pytest.raises(ValidationError, match="is due"):
        services.amend_issued_invoice(
            actor=clerk, invoice=invoice, lines=[line("100.00")], issue_date=invoice.due_date + timedelta(days=1)
        )


def test_the_amount_of_an_invoice_with_a_payment_applied_does_not_change(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    services.record_payment(actor=clerk, customer=own_customer, amount=D("40.00"), received_on=ISSUED_ON, method="cash")
    before = books()

    with pytest.raises(InvalidState, match="amount cannot change under them"):
        services.amend_issued_invoice(actor=clerk, invoice=invoice, lines=[line("90.00")])
    assert books() == before


def test_an_invoice_with_a_payment_applied_is_restated_when_it_owes_the_same(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    services.record_payment(
        actor=clerk, customer=own_customer, amount=D("100.00"), received_on=ISSUED_ON, method="cash"
    )
    services_revenue = Account.objects.get(code="4010")

    invoice = services.amend_issued_invoice(
        actor=clerk, invoice=invoice, lines=[line("100.00", revenue_account=services_revenue)]
    )

    assert (invoice.status, invoice.open_amount) == (Invoice.Status.PAID, D("0.00"))
    assert account_balance(role=Account.Role.REVENUE, as_of=date(2099, 12, 31)) == D("0.00")
    ledger_agrees(ISSUED_ON)


def test_a_restatement_to_an_issue_date_after_a_payment_applied_is_refused(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    services.record_payment(
        actor=clerk, customer=own_customer, amount=D("100.00"), received_on=ISSUED_ON, method="cash"
    )

    with pytest.raises(ValidationError, match="credit or payments dated 2026-03-02"):
        services.amend_issued_invoice(
            actor=clerk, invoice=invoice, lines=[line("100.00")], issue_date=ISSUED_ON + timedelta(days=1)
        )


def test_a_restatement_in_a_locked_period_is_refused_and_changes_nothing(clerk, finance_admin, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    lock_period(actor=finance_admin, locked_through=date(2026, 3, 31))
    before = books()

    with pytest.raises(PeriodLocked):
        services.amend_issued_invoice(actor=clerk, invoice=invoice, lines=[line("110.00")])
    assert books() == before
    assert invoice.lines.get().unit_price == D("100.00")


def test_a_void_invoice_is_not_restated(clerk, own_customer):
    void = services.void_invoice(actor=clerk, invoice=issue(clerk, own_customer), voided_on=ISSUED_ON)

    with pytest.raises(InvalidState, match="only an issued invoice is amended"):
        services.amend_issued_invoice(actor=clerk, invoice=void, lines=[line("10.00")])


def test_a_restated_invoice_voided_later_reverses_the_restated_entry(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    invoice = services.amend_issued_invoice(actor=clerk, invoice=invoice, lines=[line("130.00")])

    services.void_invoice(actor=clerk, invoice=invoice, voided_on=ISSUED_ON + timedelta(days=5))

    assert ar(own_customer) == D("0.00")
    assert ar(own_customer, as_of=ISSUED_ON + timedelta(days=4)) == D("130.00")
    ledger_agrees(ISSUED_ON, ISSUED_ON + timedelta(days=4))
