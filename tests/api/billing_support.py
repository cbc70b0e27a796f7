"""Helpers for the billing API tests (tests/api/test_billing_*.py): documents written through the
services, as in use, and the API's URLs."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from billing import collections, services
from config import audit

ISSUED_DAYS_AGO = 20


def system():
    return audit.system_actor("tests")


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def draft(customer, *prices: str, actor=None):
    return services.create_invoice(
        actor=actor or system(),
        customer=customer,
        lines=[services.LineInput(description=f"Item {n}", unit_price=Decimal(p)) for n, p in enumerate(prices, 1)],
    )


def issued(customer, amount: str = "100.00", *, days: int = ISSUED_DAYS_AGO):
    """An invoice issued `days` ago (open, nothing applied)."""
    invoice = draft(customer, amount)
    return services.issue_invoice(actor=system(), invoice=invoice, issue_date=days_ago(days))


def payment(customer, amount: str = "50.00", *, auto_apply: bool = False, days: int = 5):
    return services.record_payment(
        actor=system(),
        customer=customer,
        amount=Decimal(amount),
        received_on=days_ago(days),
        method="bank_transfer",
        auto_apply=auto_apply,
    )


def credit_note(customer, amount: str = "30.00", *, invoice=None, days: int = 5):
    return services.issue_credit_note(
        actor=system(),
        customer=customer,
        reason="Goodwill",
        invoice=invoice,
        issue_date=days_ago(days),
        lines=[services.LineInput(description="Goodwill", unit_price=Decimal(amount))],
    )


def promise(customer, invoice, *, days_ahead: int = 7):
    return collections.record_promise(
        actor=system(),
        customer=customer,
        invoices=[invoice],
        amount=invoice.open_amount,
        promised_on=timezone.localdate() + timedelta(days=days_ahead),
    )


def widget():
    """A product with a 20% tax rate, as tests/billing/conftest.py's `widget`."""
    from billing.models import Product, TaxRate
    from ledger.models import Account

    vat = TaxRate.objects.create(
        name="VAT 20%", rate=Decimal("0.20"), liability_account=Account.objects.get(role="tax_payable")
    )
    return Product.objects.create(
        sku="W-1",
        name="Widget",
        unit_price=Decimal("10.00"),
        revenue_account=Account.objects.get(role="revenue"),
        tax_rate=vat,
    )


def invoice_url(invoice=None, action: str = "") -> str:
    if invoice is None:
        return "/api/v1/invoices/"
    return f"/api/v1/invoices/{invoice.pk}/" + (f"{action}/" if action else "")


def payment_url(payment=None, action: str = "") -> str:
    if payment is None:
        return "/api/v1/payments/"
    return f"/api/v1/payments/{payment.pk}/" + (f"{action}/" if action else "")


def credit_note_url(credit_note=None, action: str = "") -> str:
    if credit_note is None:
        return "/api/v1/credit-notes/"
    return f"/api/v1/credit-notes/{credit_note.pk}/" + (f"{action}/" if action else "")


def promise_url(promise=None, action: str = "") -> str:
    if promise is None:
        return "/api/v1/promises/"
    return f"/api/v1/promises/{promise.pk}/" + (f"{action}/" if action else "")


def problem_type(response) -> str:
    assert response["Content-Type"].startswith("application/problem+json"), response.content
    return response.json()["type"].rsplit(":", 1)[-1]


def error_fields(response) -> set[str]:
    return {error["field"] for error in response.json().get("errors", [])}
