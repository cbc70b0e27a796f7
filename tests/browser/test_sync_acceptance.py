"""Issue 8's acceptance, in a real browser, as a Finance Admin: connect the demo connection to the
QuickBooks simulator, run a sync, edit the same invoice on both sides, see and resolve the
conflict, void the invoice in the simulator and see it voided in Concord at the next run.

The simulator is the real one (its own HTTP server on a free port), reached by Concord's
QuickBooks client and, for its consent and admin pages, by the browser. Runs are carried out by
the real Celery task, driven from the test where a worker would pick them up: the run page is
first seen waiting for a worker, then seen finishing through its own htmx polling.
"""

import queue
import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from billing.models import Invoice
from crm.models import Customer
from crm.roles import Role
from integrations.management.commands.seed_sync_demo import NAME as DEMO_CONNECTION
from integrations.models import SyncRun
from integrations.quickbooks.simulator import QuickBooksSimulator
from integrations.tasks import sync_connection
from tests.browser.conftest import log_in, screenshot
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Longer than the run page's polling interval (integrations.views.RUN_POLL_SECONDS) plus a run.
RUN_FINISHES_WITHIN_MS = 20_000


@pytest.fixture(scope="module")
def simulator():
    with QuickBooksSimulator(port=0, demo_realm=False) as sim:
        yield sim


@pytest.fixture
def admin(db):
    # The demo's Finance Admin: seed_sync_demo sets the demo connection up in their name.
    return UserFactory(username="admin", role=Role.FINANCE_ADMIN)


@pytest.fixture
def quickbooks(settings, simulator):
    settings.QUICKBOOKS_API_URL = simulator.api_url
    settings.QUICKBOOKS_AUTHORIZE_URL = simulator.authorize_url
    settings.QUICKBOOKS_TOKEN_URL = simulator.token_url
    settings.QUICKBOOKS_REVOKE_URL = simulator.revoke_url
    return simulator


@pytest.fixture
def realm(quickbooks):
    # A company of its own, so that the consent page and the admin page show only this test's data.
    return quickbooks.create_realm("Harbour Books")


class Worker:
    """Stands where a Celery worker would: the live server's Run now queues the task here (on
    commit, as in production), and `work_off_one` carries it out with the real task."""

    def __init__(self) -> None:
        self.queued: queue.SimpleQueue[dict] = queue.SimpleQueue()

    def enqueue(self, **kwargs) -> None:
        self.queued.put(kwargs)

    def work_off_one(self) -> str:
        kwargs = self.queued.get_nowait()  # Empty here means Run now queued nothing
        return sync_connection.apply(kwargs=kwargs).get()


@pytest.fixture
def worker(monkeypatch):
    worker = Worker()
    monkeypatch.setattr(sync_connection, "delay", worker.enqueue)
    return worker


def run_now(page, worker: Worker, connection_name: str) -> None:
    """From the connection's page: Run now, the run page waits for a worker, the worker runs it,
    and the page (polling) shows it finished."""
    page.goto("/sync/")
    page.get_by_role("link", name=connection_name).click()
    page.get_by_role("button", name="Run now").click()
    progress = page.locator("[id$='-progress']")
    expect(progress).to_contain_text("Waiting for a worker")
    assert worker.work_off_one() == SyncRun.Status.SUCCEEDED
    expect(progress.locator(".badge")).to_have_text("Succeeded", timeout=RUN_FINISHES_WITHIN_MS)


def test_an_admin_connects_the_demo_syncs_resolves_a_conflict_and_sees_a_remote_void(
    page, live_server, admin, quickbooks, realm, worker
):
    call_command("seed_sync_demo", stdout=StringIO())
    remote_customer = quickbooks.act(
        realm, "Customer", "create", {"DisplayName": "Harbour Cafe", "CurrencyRef": {"value": "USD"}}
    )
    remote_invoice = quickbooks.act(
        realm,
        "Invoice",
        "create",
        {
            "CustomerRef": {"value": remote_customer["Id"]},
            "DocNumber": "1037",
            "TxnDate": "2026-11-01",
            "DueDate": "2026-12-01",
            "Line": [
                {
                    "Amount": "150.00",
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": "150.00"},
                }
            ],
        },
    )
    simulator_invoices = f"{quickbooks.admin_url}?realm={realm}"

    # Connect: Sync → the demo connection → the simulator's consent page → back, active.
    log_in(page, admin.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Sync").click()
    page.get_by_role("link", name=DEMO_CONNECTION).click()
    expect(page.get_by_text("Not connected yet").first).to_be_visible()
    page.get_by_role("button", name=re.compile(r"^Connect to ")).click()
    expect(page).to_have_url(re.compile("^" + re.escape(quickbooks.authorize_url)))
    page.get_by_label("Company", exact=True).select_option(realm)
    page.get_by_role("button", name="Authorize").click()
    expect(page).to_have_url(re.compile("^" + re.escape(live_server.url) + r"/sync/connections/\d+/$"))
    expect(page.get_by_text(f"Connected “{DEMO_CONNECTION}”")).to_be_visible()
    expect(page.locator("header .badge")).to_have_text("Active")
    expect(page.get_by_text(f"company {realm}").first).to_be_visible()

    # The first run brings the simulator's customer and invoice into Concord.
    run_now(page, worker, DEMO_CONNECTION)
    expect(page.get_by_role("row", name="Invoices")).to_be_visible()
    screenshot(page, "sync-run")
    page.get_by_role("navigation", name="Sync").get_by_role("link", name="Connections").click()
    expect(page.get_by_role("row", name=re.compile(re.escape(DEMO_CONNECTION)))).to_contain_text("Succeeded")
    screenshot(page, "sync-connections")

    customer = Customer.objects.get(display_name="Harbour Cafe")
    invoice = Invoice.objects.get(customer=customer)
    page.goto(customer.get_absolute_url())
    row = page.locator(f"#invoice-{invoice.pk}")
    expect(row).to_contain_text("1037")
    expect(row).to_contain_text("2026-12-01")
    expect(row.locator(".badge")).to_have_text("Issued")

    # The same invoice edited on both sides: in Concord, from the invoice's row on the customer
    # page, and on the simulator's admin page.
    row.get_by_role("link", name=f"Edit the due date and memo of invoice {invoice.number}").click()
    terms = page.locator(f"#terms-{invoice.pk}")
    expect(terms.get_by_label("Due date")).to_have_value("2026-12-01")
    terms.get_by_label("Due date").fill("2026-12-15")
    terms.get_by_role("button", name=f"Save invoice {invoice.number}").click()
    expect(page.locator("#billing-panel").get_by_role("status")).to_contain_text(
        f"Invoice {invoice.number}: now due 2026-12-15."
    )
    expect(row).to_contain_text("2026-12-15")
    assert Invoice.objects.get(pk=invoice.pk).history.latest().history_user == admin
    page.goto(simulator_invoices)
    remote_row = page.locator(f"#invoice-{remote_invoice['Id']}")
    remote_row.get_by_label("Due").fill("2026-12-20")
    page.get_by_role("button", name=f"Save invoice {remote_invoice['Id']}").click()
    expect(page.get_by_role("status")).to_have_text(f"Invoice {remote_invoice['Id']} saved.")

    # The next run finds the conflict; the admin sees both versions and the base, and keeps the package's.
    run_now(page, worker, DEMO_CONNECTION)
    page.locator("[id$='-progress']").get_by_role("link", name="Conflicts").click()
    page.get_by_role("link", name=re.compile(r"^Invoice .*1037")).click()
    conflicting = page.get_by_role("row", name=re.compile(r"^due_date"))
    expect(conflicting).to_contain_text("conflict")
    expect(conflicting.locator("td").nth(0)).to_have_text("2026-12-01")  # last agreed
    expect(conflicting.locator("td").nth(1)).to_have_text("2026-12-15")  # Concord
    expect(conflicting.locator("td").nth(2)).to_contain_text("2026-12-20")  # the package
    screenshot(page, "sync-conflict")
    conflicting.get_by_label("The package's value").check()
    page.get_by_role("button", name="Resolve").click()
    expect(page.get_by_text("Conflict resolved.")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^Invoice .*1037"))).to_contain_text(
        f"Resolved by {admin.get_full_name()}"
    )

    run_now(page, worker, DEMO_CONNECTION)
    page.goto(customer.get_absolute_url())
    expect(row).to_contain_text("2026-12-20")
    assert quickbooks.get_entity(realm, "Invoice", remote_invoice["Id"])["DueDate"] == "2026-12-20"

    # Voided in the simulator, void in Concord after the next run.
    page.goto(simulator_invoices)
    page.get_by_role("button", name=f"Void invoice {remote_invoice['Id']}").click()
    expect(page.get_by_role("status")).to_have_text(f"Invoice {remote_invoice['Id']} voided.")
    run_now(page, worker, DEMO_CONNECTION)
    page.goto(customer.get_absolute_url())
    expect(row.locator(".badge")).to_have_text("Void")
    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.VOID
