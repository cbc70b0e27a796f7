from datetime import date
from decimal import Decimal

import pytest

from billing import services
from billing.models import Product, TaxRate
from config import audit
from ledger.models import Account
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
