"""Issue 9's acceptance, in a real browser, as the demo's Finance Admin: connect the Xero demo
connection to the Xero simulator (the consent grants two organisations, the admin chooses the one
to sync), run a sync, connect the QuickBooks demo connection too, see one customer synced to both
packages (a badge each), then void the invoice in Xero and see it voided in Concord.

Both simulators are the real ones on ports of their own, reached by Concord's clients and, for
their consent pages, by the browser. Runs are carried out by the real Celery task from the test,
as in issue 8's acceptance (tests/browser/test_sync_acceptance.py).
"""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from billing.models import Invoice
from crm.models import Customer
from crm.roles import Role
from integrations.management.commands.seed_sync_demo import NAME as QUICKBOOKS_CONNECTION
from integrations.management.commands.seed_sync_demo import XERO_NAME as XERO_CONNECTION
from integrations.quickbooks.simulator import QuickBooksSimulator
from integrations.tasks import sync_connection
from integrations.xero.simulator import XeroSimulator
from tests.browser.conftest import log_in, screenshot
from tests.browser.test_sync_acceptance import Worker, run_now
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture(scope="module")
def xero_simulator():
    with XeroSimulator(port=0, demo_tenant=False) as sim:
        yield sim


@pytest.fixture(scope="module")
def quickbooks_simulator():
    with QuickBooksSimulator(port=0, demo_realm=False) as sim:
        yield sim


@pytest.fixture
def xero(settings, xero_simulator):
    settings.XERO_API_URL = xero_simulator.api_url
    settings.XERO_CONNECTIONS_URL = xero_simulator.connections_url
    settings.XERO_AUTHORIZE_URL = xero_simulator.authorize_url
    settings.XERO_TOKEN_URL = xero_simulator.token_url
    settings.XERO_REVOKE_URL = xero_simulator.revoke_url
    return xero_simulator


@pytest.fixture
def quickbooks(settings, quickbooks_simulator):
    settings.QUICKBOOKS_API_URL = quickbooks_simulator.api_url
    settings.QUICKBOOKS_AUTHORIZE_URL = quickbooks_simulator.authorize_url
    settings.QUICKBOOKS_TOKEN_URL = quickbooks_simulator.token_url
    settings.QUICKBOOKS_REVOKE_URL = quickbooks_simulator.revoke_url
    return quickbooks_simulator


@pytest.fixture
def admin(db):
    # The demo's Finance Admin: seed_sync_demo sets the demo connections up in their name.
    return UserFactory(username="admin", role=Role.FINANCE_ADMIN)


@pytest.fixture
def worker(monkeypatch):
    worker = Worker()
    monkeypatch.setattr(sync_connection, "delay", worker.enqueue)
    return worker


def open_connection(page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sync").click()
    page.get_by_role("link", name=name).click()
    expect(page.get_by_text("Not connected yet").first).to_be_visible()


def expect_connected(page, live_server, name: str) -> None:
    expect(page).to_have_url(re.compile("^" + re.escape(live_server.url) + r"/sync/connections/\d+/$"))
    expect(page.get_by_text(f"Connected “{name}”")).to_be_visible()
    expect(page.locator("header .badge")).to_have_text("Active")


def test_an_admin_connects_both_packages_and_sees_one_customer_synced_to_both(
    page, live_server, admin, xero, quickbooks, worker
):
    call_command("seed_sync_demo", stdout=StringIO())
    # Organisations of this test's own, so that the consent page offers exactly these two.
    organisation = xero.create_tenant("Harbour Books NZ")
    xero.create_tenant("Harbour Books AU")
    contact = xero.act(organisation, "Contact", "create", {"Name": "Harbour Cafe"})
    remote_invoice = xero.act(
        organisation,
        "Invoice",
        "create",
        {
            "Type": "ACCREC",
            "Contact": {"ContactID": contact["ContactID"]},
            "InvoiceNumber": "HB-1042",
            "Date": "2026-11-01",
            "DueDate": "2026-12-01",
            "LineItems": [
                {
                    "Description": "Espresso machine service",
                    "Quantity": 1,
                    "UnitAmount": "150.00",
                    "AccountCode": "200",
                    "TaxType": "NONE",
                }
            ],
        },
    )
    xero.act(organisation, "Invoice", "approve", {"InvoiceID": remote_invoice["InvoiceID"]})
    # The same customer already in the QuickBooks company: its first run links the two.
    realm = quickbooks.create_realm("Harbour Books")
    quickbooks_customer = quickbooks.act(
        realm, "Customer", "create", {"DisplayName": "Harbour Cafe", "CurrencyRef": {"value": "USD"}}
    )

    # Connect Xero: the consent grants both organisations, so Concord asks which one this syncs.
    log_in(page, admin.username)
    open_connection(page, XERO_CONNECTION)
    page.get_by_role("button", name=re.compile(r"^Connect to ")).click()
    expect(page).to_have_url(re.compile("^" + re.escape(xero.authorize_url)))
    page.get_by_label("Harbour Books NZ", exact=True).check()
    page.get_by_label("Harbour Books AU", exact=True).check()
    page.get_by_role("button", name="Allow access").click()
    expect(page.get_by_role("heading", name=f"Which organisation does “{XERO_CONNECTION}” sync?")).to_be_visible()
    expect(page.get_by_role("radio")).to_have_count(2)
    screenshot(page, "sync-xero-organisation")
    page.get_by_role("radio", name=re.compile(r"^Harbour Books NZ ")).check()
    page.get_by_role("button", name="Sync this organisation").click()
    expect_connected(page, live_server, XERO_CONNECTION)
    expect(page.get_by_text(f"company {organisation}").first).to_be_visible()

    # The first run brings Xero's contact and invoice into Concord.
    run_now(page, worker, XERO_CONNECTION)
    customer = Customer.objects.get(display_name="Harbour Cafe")
    invoice = Invoice.objects.get(customer=customer)
    page.goto(customer.get_absolute_url())
    row = page.locator(f"#invoice-{invoice.pk}")
    expect(row).to_contain_text("HB-1042")
    expect(row).to_contain_text("2026-12-01")
    expect(row.locator(".badge")).to_have_text("Issued")

    # Connect QuickBooks and run it: its Harbour Cafe is the same customer, now synced to both.
    open_connection(page, QUICKBOOKS_CONNECTION)
    page.get_by_role("button", name=re.compile(r"^Connect to ")).click()
    expect(page).to_have_url(re.compile("^" + re.escape(quickbooks.authorize_url)))
    page.get_by_label("Company", exact=True).select_option(realm)
    page.get_by_role("button", name="Authorize").click()
    expect_connected(page, live_server, QUICKBOOKS_CONNECTION)
    run_now(page, worker, QUICKBOOKS_CONNECTION)
    page.goto(customer.get_absolute_url())
    badges = page.get_by_label("Sync with accounting packages").locator(":scope > span")
    expect(badges).to_have_count(2)
    for name, remote_id in (
        (XERO_CONNECTION, contact["ContactID"]),
        (QUICKBOOKS_CONNECTION, quickbooks_customer["Id"]),
    ):
        badge = badges.filter(has=page.get_by_role("link", name=name, exact=True))
        expect(badge.locator(".badge")).to_have_text(f"synced · #{remote_id}")
    screenshot(page, "sync-two-badges")

    # Voided in Xero, void in Concord after the Xero connection's next run.
    xero.act(organisation, "Invoice", "void", {"InvoiceID": remote_invoice["InvoiceID"]})
    run_now(page, worker, XERO_CONNECTION)
    page.goto(customer.get_absolute_url())
    expect(row.locator(".badge")).to_have_text("Void")
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.VOID
