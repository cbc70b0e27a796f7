"""Bad input changes nothing and says why: each refusal raises a domain error whose message a
person can act on, and leaves every row, balance, number series and the ledger as they were."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing import services
from billing.errors import AllocationExceedsBalance, CurrencyMismatch, IdempotencyConflict, InvalidState, NotPermitted
from billing.models import Payment
from crm import services as crm_services
from ledger.errors import MissingExchangeRate, PeriodLocked
from ledger.services import lock_period
from tests.billing.conftest import ISSUED_ON, books, issue
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

PAID_ON = date(2026, 3, 10)


def pay(clerk, customer, amount, *, on=PAID_ON, auto_apply=False, **options):
    return services.record_payment(
        actor=clerk,
        customer=customer,
        amount=Decimal(amount),
        received_on=on,
        method="bank_transfer",
        auto_apply=auto_apply,
        **options,
    )


# --- Allocations --------------------------------------------------------------------------------


def test_an_allocation_above_the_invoices_open_balance_is_refused(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    payment = pay(clerk, own_customer, "150.00")
    before = books()
    with pytest.raises(AllocationExceedsBalance, match=r"120\.00 USD is more than the 100\.00 still open on invoice"):
        services.allocate_payment(actor=clerk, payment=payment, invoice=invoice, amount=Decimal("120.00"))
    assert books() == before


def test_an_allocation_above_the_payments_unapplied_amount_is_refused(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    payment = pay(clerk, own_customer, "40.00")
    before = books()
    with pytest.raises(AllocationExceedsBalance, match=r"60\.00 USD is more than the 40\.00 unapplied on"):
        services.allocate_payment(actor=clerk, payment=payment, invoice=invoice, amount=Decimal("60.00"))
    assert books() == before


def test_a_payment_in_another_currency_than_the_customers_is_refused(clerk, own_customer, eur_rates):
    before = books()
    with pytest.raises(CurrencyMismatch, match="pays in USD, not EUR"):
        pay(clerk, own_customer, "50.00", currency="EUR")
    assert books() == before


def test_a_payment_is_not_applied_to_an_invoice_in_another_currency(clerk, finance_admin, own_customer, eur_rates):
    # The customer moved from USD to EUR after being invoiced: its new payments are in EUR.
    usd_invoice = issue(clerk, own_customer, "100.00")
    customer = crm_services.update_customer(actor=finance_admin, customer=own_customer, currency="EUR")
    eur_payment = pay(clerk, customer, "100.00")
    before = books()
    with pytest.raises(CurrencyMismatch, match=r"Invoice INV-000001 is in USD; .* is in EUR"):
        services.allocate_payment(actor=clerk, payment=eur_payment, invoice=usd_invoice, amount=Decimal("10.00"))
    assert books() == before


def test_credit_notes_against_one_invoice_never_total_more_than_it(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    credit = [services.LineInput(description="Returned goods", unit_price=Decimal("60.00"))]
    services.issue_credit_note(actor=clerk, customer=own_customer, invoice=invoice, lines=credit, reason="Returns")
    before = books()
    with pytest.raises(
        AllocationExceedsBalance, match=r"its total is 100\.00 \(60\.00 has been credited on it already\)"
    ):
        services.issue_credit_note(actor=clerk, customer=own_customer, invoice=invoice, lines=credit, reason="Again")
    assert books() == before


# --- Periods and rates --------------------------------------------------------------------------


def test_an_invoice_dated_in_a_locked_period_is_refused(clerk, finance_admin, own_customer):
    lock_period(actor=finance_admin, locked_through=date(2026, 3, 31), reason="Q1 closed")
    draft = services.create_invoice(
        actor=clerk, customer=own_customer, lines=[services.LineInput(description="Audit", unit_price=Decimal(500))]
    )
    before = books()
    with pytest.raises(
        PeriodLocked, match="The books are locked through 2026-03-31; nothing can be posted on 2026-03-02"
    ):
        services.issue_invoice(actor=clerk, invoice=draft, issue_date=ISSUED_ON)
    assert books() == before


def test_credit_applied_in_a_locked_period_is_refused_even_without_an_fx_difference(clerk, finance_admin, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    payment = pay(clerk, own_customer, "100.00")
    lock_period(actor=finance_admin, locked_through=date(2026, 3, 31), reason="Q1 closed")
    before = books()
    with pytest.raises(PeriodLocked, match="locked through 2026-03-31; nothing can be posted on 2026-03-15"):
        services.allocate_payment(
            actor=clerk, payment=payment, invoice=invoice, amount=Decimal("100.00"), allocated_on=date(2026, 3, 15)
        )
    assert books() == before


def test_an_invoice_in_a_currency_without_a_rate_yet_is_refused(clerk, eur_rates):
    customer = CustomerFactory(currency="EUR")
    draft = services.create_invoice(
        actor=clerk, customer=customer, lines=[services.LineInput(description="Audit", unit_price=Decimal(500))]
    )
    before = books()
    with pytest.raises(MissingExchangeRate, match="No EUR exchange rate on or before 2025-12-31; enter one"):
        services.issue_invoice(actor=clerk, invoice=draft, issue_date=date(2025, 12, 31))
    assert books() == before


# --- Invoices -----------------------------------------------------------------------------------


def test_voiding_a_paid_invoice_is_refused(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    pay(clerk, own_customer, "100.00", auto_apply=True)
    before = books()
    with pytest.raises(InvalidState, match=r"has payments or credits applied \(paid\); .* Issue a credit note"):
        services.void_invoice(actor=clerk, invoice=invoice, voided_on=date(2026, 3, 20))
    assert books() == before


def test_voiding_a_partially_paid_invoice_is_refused(clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    pay(clerk, own_customer, "30.00", auto_apply=True)
    before = books()
    with pytest.raises(InvalidState, match=r"has payments or credits applied \(partially paid\)"):
        services.void_invoice(actor=clerk, invoice=invoice, voided_on=date(2026, 3, 20))
    assert books() == before


@pytest.mark.parametrize("quantity", [Decimal("-1"), Decimal("0")])
def test_an_invoice_line_without_a_positive_quantity_is_refused(clerk, own_customer, quantity):
    before = books()
    with pytest.raises(ValidationError, match=f"Quantity must be positive, not {quantity}"):
        services.create_invoice(
            actor=clerk,
            customer=own_customer,
            lines=[services.LineInput(description="Returned widgets", quantity=quantity, unit_price=Decimal(10))],
        )
    assert books() == before


# --- Idempotency --------------------------------------------------------------------------------


def test_the_same_idempotency_key_for_a_different_payment_is_refused(clerk, own_customer):
    pay(clerk, own_customer, "75.00", idempotency_key="bank-feed-4711")
    before = books()
    with pytest.raises(IdempotencyConflict, match="'bank-feed-4711' was used for a different payment"):
        pay(clerk, own_customer, "57.00", idempotency_key="bank-feed-4711")
    assert books() == before


def test_the_same_idempotency_key_for_the_same_payment_returns_the_first_without_writing(clerk, own_customer):
    first = pay(clerk, own_customer, "75.00", idempotency_key="bank-feed-4711")
    before = books()
    again = pay(clerk, own_customer, "75.00", idempotency_key="bank-feed-4711")
    assert again.pk == first.pk
    assert books() == before
    assert Payment.objects.count() == 1


# --- Write-offs ---------------------------------------------------------------------------------


def test_a_finance_admin_cannot_approve_their_own_write_off(finance_admin, clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    request = services.request_write_off(actor=finance_admin, invoice=invoice, reason="Customer insolvent")
    before = books()
    with pytest.raises(NotPermitted, match="approved by someone other than the person who asked for it"):
        services.approve_write_off(actor=finance_admin, write_off=request, written_off_on=date(2026, 5, 1))
    assert books() == before


def test_a_sales_user_cannot_approve_a_write_off(sales_rep, clerk, own_customer):
    invoice = issue(clerk, own_customer, "100.00")
    request = services.request_write_off(actor=clerk, invoice=invoice, reason="Customer insolvent")
    before = books()
    with pytest.raises(NotPermitted, match="Only a Finance Admin may approve a write-off"):
        services.approve_write_off(actor=sales_rep, write_off=request, written_off_on=date(2026, 5, 1))
    assert books() == before
