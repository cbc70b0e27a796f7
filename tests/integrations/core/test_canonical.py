"""Canonical records: their plain form, fingerprint and the way back."""

from datetime import date
from decimal import Decimal

from integrations.core.canonical import (
    Address,
    Application,
    CustomerRecord,
    InvoiceRecord,
    Line,
    PaymentRecord,
    record_from_fields,
)


def invoice(**changes):
    fields = {
        "customer_remote_id": "58",
        "number": "INV-1",
        "issue_date": date(2026, 11, 1),
        "due_date": date(2026, 12, 1),
        "currency": "USD",
        "lines": (
            Line(description="Consulting", quantity=Decimal("2"), unit_price=Decimal("75"), amount=Decimal("150.00")),
        ),
        "total": Decimal("150.00"),
    }
    return InvoiceRecord(**{**fields, **changes})


def test_amounts_that_differ_only_in_trailing_zeros_fingerprint_alike():
    assert invoice(
        lines=(Line("Consulting", Decimal("2.000"), Decimal("75.0000"), Decimal("150")),)
    ).content_hash() == (invoice().content_hash())


def test_read_only_fields_do_not_change_the_fingerprint():
    assert invoice(balance=Decimal("10")).content_hash() == invoice(balance=Decimal("0")).content_hash()


def test_a_writable_change_changes_the_fingerprint():
    assert invoice(memo="late").content_hash() != invoice().content_hash()


def test_an_invoice_comes_back_from_its_plain_fields():
    original = invoice(exchange_rate=Decimal("1.2345"))
    assert record_from_fields(InvoiceRecord, original.fields()) == original


def test_a_customer_with_an_address_comes_back_from_its_plain_fields():
    original = CustomerRecord(display_name="Acme", currency="GBP", address=Address(city="Leeds"), payment_terms_days=30)
    assert record_from_fields(CustomerRecord, original.fields()) == original


def test_a_payment_with_applications_comes_back_from_its_plain_fields():
    original = PaymentRecord(
        customer_remote_id="58",
        received_on=date(2026, 11, 3),
        amount=Decimal("100.00"),
        currency="USD",
        applications=(Application("130", Decimal("60.00")), Application("131", Decimal("40.00"))),
    )
    assert record_from_fields(PaymentRecord, original.fields()) == original
