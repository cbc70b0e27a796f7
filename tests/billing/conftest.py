from datetime import date
from decimal import Decimal

import pytest

from billing import services
from billing.models import (
    CreditNote,
    CreditNoteAllocation,
    Invoice,
    InvoiceLine,
    NumberSequence,
    Payment,
    PaymentAllocation,
    Product,
    Refund,
    TaxRate,
    WriteOff,
)
from config import audit
from ledger.models import Account, JournalEntry, JournalLine
from ledger.selectors import account_balance
from ledger.services import set_exchange_rate

ISSUED_ON = date(2026, 3, 2)


@pytest.fixture
def clerk(ar_clerk):
    return ar_clerk


@pytest.fixture
def vat(db):
    return TaxRate.objects.create(
        name="VAT 20%", rate=Decimal("0.20"), liability_account=Account.objects.get(role="tax_payable")
    )


@pytest.fixture
def widget(db, vat):
    return Product.objects.create(
        sku="W-1",
        name="Widget",
        unit_price=Decimal("10.00"),
        revenue_account=Account.objects.get(role="revenue"),
        tax_rate=vat,
        unit_cost=Decimal("4.00"),
    )


@pytest.fixture
def eur_rates(db):
    system = audit.system_actor("tests")
    set_exchange_rate(actor=system, currency="EUR", rate_date=date(2026, 1, 1), rate=Decimal("1.10"))
    set_exchange_rate(actor=system, currency="EUR", rate_date=date(2026, 4, 1), rate=Decimal("1.20"))


def issue(actor, customer, amount="100.00", on=ISSUED_ON, **line):
    invoice = services.create_invoice(
        actor=actor,
        customer=customer,
        lines=[services.LineInput(description="Consulting", unit_price=Decimal(amount), **line)],
    )
    return services.issue_invoice(actor=actor, invoice=invoice, issue_date=on)


def books() -> dict:
    """Everything a refused operation must leave as it was: row counts, the balances kept on
    documents, the number series and the ledger."""
    counted = (
        JournalEntry,
        JournalLine,
        Invoice,
        InvoiceLine,
        Payment,
        PaymentAllocation,
        CreditNote,
        CreditNoteAllocation,
        Refund,
        WriteOff,
    )
    return {
        "rows": {model.__name__: model.objects.count() for model in counted},
        "invoices": list(Invoice.objects.order_by("pk").values_list("pk", "status", "open_amount", "open_base")),
        "payments": list(Payment.objects.order_by("pk").values_list("pk", "status", "unapplied_amount")),
        "credit_notes": list(CreditNote.objects.order_by("pk").values_list("pk", "unapplied_amount")),
        "write_offs": list(WriteOff.objects.order_by("pk").values_list("pk", "status")),
        "numbers": list(NumberSequence.objects.order_by("series").values_list("series", "next_number")),
        "ar_control": account_balance(role=Account.Role.AR_CONTROL, as_of=date(2099, 12, 31)),
    }
