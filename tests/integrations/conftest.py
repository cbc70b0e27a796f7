"""Fixtures of tests/integrations: a QuickBooks company in the simulator, connected to Concord with
tokens and a mapping (tests that sync over real HTTP; a module's own `connection` overrides it)."""

import pytest
from django.utils import timezone

from integrations import services
from integrations.core.tokens import Tokens
from integrations.models import Connection
from integrations.quickbooks.simulator import QuickBooksSimulator
from integrations.tokens import save_tokens
from ledger.models import Account


@pytest.fixture(scope="module")
def simulator():
    with QuickBooksSimulator(port=0) as sim:
        yield sim


@pytest.fixture
def realm(simulator):
    return simulator.create_realm("Books Ltd")


@pytest.fixture
def quickbooks(settings, simulator):
    settings.QUICKBOOKS_API_URL = simulator.api_url
    settings.QUICKBOOKS_TOKEN_URL = simulator.token_url
    settings.QUICKBOOKS_AUTHORIZE_URL = simulator.authorize_url
    settings.QUICKBOOKS_REVOKE_URL = simulator.revoke_url
    return simulator


@pytest.fixture
def connection(quickbooks, realm, finance_admin):
    connection = services.create_connection(actor=finance_admin, provider="quickbooks", name="Books")
    granted = quickbooks.issue_tokens(realm)
    now = timezone.now()
    connection.tenant_id, connection.status = realm, Connection.Status.ACTIVE
    connection.save()
    save_tokens(
        connection,
        Tokens(
            access_token=granted["access_token"],
            access_expires_at=now + timezone.timedelta(seconds=granted["expires_in"]),
            refresh_token=granted["refresh_token"],
        ),
    )
    revenue = Account.objects.get(role=Account.Role.REVENUE)
    services.create_mapping_version(
        actor=finance_admin,
        connection=connection,
        accounts={"*": "1", revenue.code: "1"},
        tax_codes={"": "NON"},
        items={"*": "1"},
        payment_methods={"bank_transfer": "1", "cheque": "2", "card": "3", "cash": "4", "other": "5"},
        terms={"30": "3"},
    )
    return connection
