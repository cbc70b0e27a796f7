"""The demo's connection to the local QuickBooks simulator, ready to connect from the Sync page.

`make demo` runs it after seed_demo; `make run` starts the simulator on 127.0.0.1:8765. Nothing
is created twice: a second run finds the connection and leaves it as it is.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from billing.models import Payment, TaxRate
from crm.demo import PAYMENT_TERMS
from integrations import services
from integrations.models import Connection
from ledger.models import Account

NAME = "QuickBooks Online (simulator)"
# The simulator's seeded company (integrations/quickbooks/simulator/company.py): income account 1
# "Services", bank account 35 "Checking", account 86 "Discounts given", item 1 "Services".
QBO_INCOME_ACCOUNT = "1"
QBO_BANK_ACCOUNT = "35"
QBO_DISCOUNTS_ACCOUNT = "86"
QBO_SERVICES_ITEM = "1"


class Command(BaseCommand):
    help = "Create the demo connection to the QuickBooks simulator (idempotent)."

    def handle(self, *args, **options):
        existing = Connection.objects.filter(name=NAME).first()
        if existing is not None:
            self.stdout.write(f"{NAME}: already there ({existing.get_status_display().lower()}).")
            return
        admin = get_user_model().objects.filter(username="admin").first()
        connection = services.create_connection(actor=admin, provider="quickbooks", name=NAME)
        # The default revenue account first: it is the one QuickBooks' income account reads back as.
        default_revenue = Account.objects.get(role=Account.Role.REVENUE).code
        revenue_codes = [
            default_revenue,
            *Account.objects.filter(type=Account.Type.INCOME)
            .exclude(code=default_revenue)
            .values_list("code", flat=True),
        ]
        services.create_mapping_version(
            actor=admin,
            connection=connection,
            note="The demo company's accounts, tax rates and methods, mapped to the simulator's company",
            accounts={
                "*": QBO_INCOME_ACCOUNT,
                "*discounts": QBO_DISCOUNTS_ACCOUNT,
                "*refunds": QBO_BANK_ACCOUNT,
                **dict.fromkeys(revenue_codes, QBO_INCOME_ACCOUNT),
            },
            tax_codes={"": "NON", **dict.fromkeys(TaxRate.objects.values_list("name", flat=True), "TAX")},
            items={"*": QBO_SERVICES_ITEM},
            payment_methods={method: str(position) for position, method in enumerate(Payment.Method.values, start=1)},
            terms={str(days): str(position) for position, days in enumerate(sorted({0, *PAYMENT_TERMS}), start=1)},
        )
        self.stdout.write(f"{NAME}: created; connect it from the Sync page while `make run` is running.")
