"""Helpers for Concord-level Xero tests: Concord pointed at the Xero simulator, a connection to one
of its organisations the way the connect flow leaves it, and what a person does in Xero's own
screens (`sim.act`, with Xero's field names).

Plain functions, not fixtures: each test module declares the few fixtures it needs around them
(tests/integrations/xero/conftest.py holds the simulator's own fixtures).
"""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from integrations import services
from integrations.core.tokens import Tokens
from integrations.models import Connection, SyncRun
from integrations.tokens import save_tokens
from integrations.xero.oauth import DEFAULT_SCOPES
from integrations.xero.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_WEBHOOK_KEY, XeroSimulator

# Concord's chart and tax rate names → a fresh simulator organisation's (organisation.py seeds
# accounts 090 bank, 200 sales, 260 other revenue, and tax types NONE and OUTPUT at 10%).
ACCOUNTS = {"4000": "200", "4010": "260", "*": "200"}
TAX_CODES = {"Sales tax 10%": "OUTPUT"}
TAX_RATE = ("Sales tax 10%", Decimal("0.10"))
BANK_ACCOUNTS = {"bank_transfer": "090", "*": "090"}


def point_concord_at(settings, sim: XeroSimulator) -> None:
    """Concord's Xero settings aimed at the running simulator, with its app credentials."""
    settings.XERO_API_URL = sim.api_url
    settings.XERO_CONNECTIONS_URL = sim.connections_url
    settings.XERO_TOKEN_URL = sim.token_url
    settings.XERO_AUTHORIZE_URL = sim.authorize_url
    settings.XERO_REVOKE_URL = sim.revoke_url
    settings.XERO_CLIENT_ID = DEFAULT_CLIENT_ID
    settings.XERO_CLIENT_SECRET = DEFAULT_CLIENT_SECRET
    settings.XERO_WEBHOOK_KEY = DEFAULT_WEBHOOK_KEY
    settings.XERO_SCOPES = DEFAULT_SCOPES


def connect(*, actor, sim: XeroSimulator, tenant: str, name: str = "Xero books") -> Connection:
    """An active connection to `tenant` holding tokens the simulator issued, with a mapping onto
    the organisation's seeded accounts, tax types and bank account. Xero needs no items or terms
    tables: lines name items by the product's Xero code, and terms are a number of days."""
    connection = services.create_connection(actor=actor, provider="xero", name=name)
    granted = sim.issue_tokens(tenant, scope=DEFAULT_SCOPES)
    connection.tenant_id, connection.status = tenant, Connection.Status.ACTIVE
    connection.save()
    save_tokens(
        connection,
        Tokens(
            access_token=granted["access_token"],
            access_expires_at=timezone.now() + timezone.timedelta(seconds=granted["expires_in"]),
            refresh_token=granted["refresh_token"],
        ),
    )
    services.create_mapping_version(
        actor=actor, connection=connection, accounts=ACCOUNTS, tax_codes=TAX_CODES, payment_methods=BANK_ACCOUNTS
    )
    return connection


def sync(connection: Connection) -> SyncRun:
    """One run, as the schedule queues it and a worker carries it out."""
    queued = SyncRun.objects.create(connection=connection, trigger=SyncRun.Trigger.SCHEDULE)
    return services.run_sync(run_id=queued.pk)


def run(connection: Connection) -> SyncRun:
    """One run that must succeed (a partial run names what it set aside)."""
    outcome = sync(connection)
    assert outcome.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL), (outcome.phase, outcome.errors)
    return outcome


# --- A person in Xero ------------------------------------------------------------------------------


def xero_contact(sim: XeroSimulator, tenant: str, name: str = "Beta LLC", **fields) -> dict:
    return sim.act(tenant, "Contact", "create", {"Name": name, "DefaultCurrency": "USD", **fields})


def xero_invoice(
    sim: XeroSimulator, tenant: str, contact_id: str, amount: str = "150.00", number: str = "INV-1037", **fields
) -> dict:
    """An approved sales invoice of one untaxed line on the Sales account."""
    return sim.act(
        tenant,
        "Invoice",
        "create",
        {
            "Type": "ACCREC",
            "Contact": {"ContactID": contact_id},
            "InvoiceNumber": number,
            "Date": "2026-11-01",
            "DueDate": "2026-12-01",
            "Status": "AUTHORISED",
            "LineItems": [
                {
                    "Description": "Consulting",
                    "Quantity": 1,
                    "UnitAmount": Decimal(amount),
                    "AccountCode": "200",
                    "TaxType": "NONE",
                }
            ],
            **fields,
        },
    )
