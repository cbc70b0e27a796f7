from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command

from billing import services
from billing.models import Invoice
from tests.billing.conftest import issue
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_full_cycle_balances(clerk, finance_admin, widget, eur_rates):
    customer = CustomerFactory(currency="EUR", payment_terms_days=30)
    invoice = issue(clerk, customer, "100.00")
    assert invoice.number == "INV-000001"
    assert invoice.base_gross == Decimal("110.00")
    payment = services.record_payment(
        actor=clerk, customer=customer, amount=Decimal("60"), received_on=date(2026, 4, 5), method="bank_transfer"
    )
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PARTIALLY_PAID
    assert payment.unapplied_amount == 0
    second = services.create_invoice(
        actor=clerk, customer=customer, lines=[services.LineInput(product=widget, quantity=Decimal(3))]
    )
    second = services.issue_invoice(actor=clerk, invoice=second, issue_date=date(2026, 4, 10))
    assert second.gross_total == Decimal("36.00")
    note = services.issue_credit_note(
        actor=clerk,
        customer=customer,
        invoice=invoice,
        reason="Damaged",
        lines=[services.LineInput(description="Credit", unit_price=Decimal("10"))],
        issue_date=date(2026, 4, 12),
    )
    assert note.unapplied_amount == 0
    over = services.record_payment(
        actor=clerk, customer=customer, amount=Decimal("100"), received_on=date(2026, 4, 20), method="card"
    )
    assert over.unapplied_amount == Decimal("34.00")
    services.refund_credit(actor=clerk, payment=over, amount=Decimal("4"), refunded_on=date(2026, 4, 21), method="card")
    third = issue(clerk, customer, "50.00", on=date(2026, 4, 22))
    request = services.request_write_off(actor=clerk, invoice=third, reason="Gone bust")
    services.approve_write_off(actor=finance_admin, write_off=request, written_off_on=date(2026, 5, 1))
    fourth = issue(clerk, customer, "20.00", on=date(2026, 5, 2))
    services.void_invoice(actor=clerk, invoice=fourth, voided_on=date(2026, 5, 3))
    for as_of in ["2026-03-31", "2026-04-11", "2026-04-30", "2026-05-02", "2026-12-31"]:
        call_command("ledger_check", "--as-of", as_of, stdout=None)
    call_command("ledger_check", stdout=None)
