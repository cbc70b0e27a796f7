"""The demo's connections to the local QuickBooks and Xero simulators, ready to connect from the
Sync page.

`make demo` runs it after seed_demo; `make run` starts the simulators on 127.0.0.1:8765
(QuickBooks) and 127.0.0.1:8766 (Xero). Nothing is created twice: a second run finds each
connection and leaves it as it is.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from billing.models import Payment, TaxRate
from crm.demo import PAYMENT_TERMS
from integrations import services
from integrations.models import Connection
from ledger.models import Account

NAME = "QuickBooks Online (simulator)"
XERO_NAME = "Xero (simulator)"
# The simulator's seeded company (integrations/quickbooks/simulator/company.py): income account 1
# "Services", bank account 35 "Checking", account 86 "Discounts given", item 1 "Services".
QBO_INCOME_ACCOUNT = "1"
QBO_BANK_ACCOUNT = "35"
QBO_DISCOUNTS_ACCOUNT = "86"
QBO_SERVICES_ITEM = "1"
# Every organisation of the Xero simulator (integrations/xero/simulator/): account 200 "Sales",
# 090 "Business Bank Account" (takes payments); tax types NONE and OUTPUT.
XERO_SALES_ACCOUNT = "200"
XERO_BANK_ACCOUNT = "090"


class Command(BaseCommand):
    help = "Create the demo connections to the QuickBooks and Xero simulators (idempotent)."

    def handle(self, *args, **options):
        admin = get_user_model().objects.filter(username="admin").first()
        for name, create in ((NAME, self._quickbooks), (XERO_NAME, self._xero)):
            existing = Connection.objects.filter(name=name).first()
            if existing is not None:
                self.stdout.write(f"{name}: already there ({existing.get_status_display().lower()}).")
                continue
            create(admin)
            self.stdout.write(f"{name}: created; connect it from the Sync page while `make run` is running.")

    def _quickbooks(self, admin) -> None:
        connection = services.create_connection(actor=admin, provider="quickbooks", name=NAME)
        services.create_mapping_version(
            actor=admin,
            connection=connection,
            note="The demo company's accounts, tax rates and methods, mapped to the simulator's company",
            accounts={
                "*": QBO_INCOME_ACCOUNT,
                "*discounts": QBO_DISCOUNTS_ACCOUNT,
                "*refunds": QBO_BANK_ACCOUNT,
                **dict.fromkeys(_revenue_codes(), QBO_INCOME_ACCOUNT),
            },
            tax_codes={"": "NON", **dict.fromkeys(TaxRate.objects.values_list("name", flat=True), "TAX")},
            items={"*": QBO_SERVICES_ITEM},
            payment_methods={method: str(position) for position, method in enumerate(Payment.Method.values, start=1)},
            terms={str(days): str(position) for position, days in enumerate(sorted({0, *PAYMENT_TERMS}), start=1)},
        )

    def _xero(self, admin) -> None:
        connection = services.create_connection(actor=admin, provider="xero", name=XERO_NAME)
        services.create_mapping_version(
            actor=admin,
            connection=connection,
            note="The demo company's accounts and tax rates, mapped to the simulator's organisation",
            accounts={"*": XERO_SALES_ACCOUNT, **dict.fromkeys(_revenue_codes(), XERO_SALES_ACCOUNT)},
            tax_codes={"": "NONE", **dict.fromkeys(TaxRate.objects.values_list("name", flat=True), "OUTPUT")},
            # Xero records the bank account a payment went into, not how it was paid: every
            # method goes to the one bank account (read back as a bank transfer).
            payment_methods={"bank_transfer": XERO_BANK_ACCOUNT, "*": XERO_BANK_ACCOUNT},
        )


def _revenue_codes() -> list[str]:
    # The default revenue account first (4000 in the default chart): several codes sharing one income
    # account read back as the first in sort order (Mapping.reverse), which should be the default.
    default_revenue = Account.objects.get(role=Account.Role.REVENUE).code
    return [
        default_revenue,
        *Account.objects.filter(type=Account.Type.INCOME).exclude(code=default_revenue).values_list("code", flat=True),
    ]
