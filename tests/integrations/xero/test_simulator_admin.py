"""The Xero simulator's state file, acting as a Xero user, and its admin endpoints and page."""

import time

import httpx
import pytest

from integrations.xero.simulator import Invalid, XeroSimulator, wire
from integrations.xero.simulator.testing import TenantClient


@pytest.fixture
def admin(xero_simulator):
    with httpx.Client(base_url=xero_simulator.base_url, timeout=5) as client:
        yield client


def test_data_tokens_and_clock_survive_a_restart(tmp_path):
    path = tmp_path / "xero.json"
    with XeroSimulator(state_path=path, demo_tenant=False) as first:
        tenant = first.create_tenant("Persistent Ltd")
        with TenantClient(first, tenant) as xero:
            contact = xero.contact("Acme Ltd")
            token = xero.access_token
        first.advance_clock(100)

    with XeroSimulator(state_path=path, demo_tenant=False) as second, TenantClient(second, tenant, token) as xero:
        read = xero.get("Contacts", contact["ContactID"])
        offset = second.clock.offset_seconds

    assert (read["Name"], read["UpdatedDateUTC"]) == ("Acme Ltd", contact["UpdatedDateUTC"])
    assert offset >= 100
    assert [entry.name for entry in tmp_path.iterdir()] == ["xero.json"]


def test_changes_are_saved_shortly_without_stopping(tmp_path):
    path = tmp_path / "xero.json"
    with XeroSimulator(state_path=path, save_delay_seconds=0.01, demo_tenant=False) as sim:
        tenant = sim.create_tenant()
        sim.act(tenant, "Contact", "create", {"Name": "Saved Soon"})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "Saved Soon" not in (path.read_text() if path.exists() else ""):
            time.sleep(0.01)
        saved = wire.loads(path.read_text())

    contacts = saved["organisations"][tenant]["objects"]["Contact"]
    assert [row["Name"] for row in contacts.values()] == ["Saved Soon"]


def test_a_demo_tenant_exists_unless_switched_off(xero_simulator):
    with XeroSimulator(demo_tenant=False) as bare:
        assert bare.state.organisations == {}

    assert xero_simulator.config.demo_tenant_id in xero_simulator.state.organisations


def test_acting_as_a_xero_user_changes_what_the_api_reads(xero_simulator, xero_tenant):
    contact = xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})
    invoice = xero_simulator.act(
        xero_tenant,
        "Invoice",
        "create",
        {
            "Type": "ACCREC",
            "Contact": {"ContactID": contact["ContactID"]},
            "DueDate": "2024-05-31",
            "Status": "AUTHORISED",
            "LineItems": [{"Description": "x", "UnitAmount": 5, "AccountCode": "200"}],
        },
    )

    voided = xero_simulator.act(xero_tenant, "Invoice", "void", {"InvoiceID": invoice["InvoiceID"]})
    with TenantClient(xero_simulator, xero_tenant) as xero:
        read = xero.get("Invoices", invoice["InvoiceID"])

    assert voided["Status"] == read["Status"] == "VOIDED"
    assert xero_simulator.get_entity(xero_tenant, "invoices", invoice["InvoiceID"])["Status"] == "VOIDED"


def test_acting_reports_xeros_validation_messages(xero_simulator, xero_tenant):
    xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})

    with pytest.raises(Invalid, match="already assigned"):
        xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})
    with pytest.raises(ValueError, match="never deleted"):
        xero_simulator.act(xero_tenant, "Contact", "delete", {"ContactID": "x"})


def test_records_created_in_xero_are_not_created_by_my_app(xero_simulator, xero_tenant):
    xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Made In Xero"})
    with TenantClient(xero_simulator, xero_tenant) as xero:
        mine = xero.contact("Made By The App")
        listed = xero.list("Contacts", page=1, createdByMyApp="true")

    assert [row["ContactID"] for row in listed] == [mine["ContactID"]]


def test_list_entities_includes_archived_records(xero_simulator, xero_tenant):
    contact = xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})
    xero_simulator.act(xero_tenant, "Contact", "archive", {"ContactID": contact["ContactID"]})

    rows = xero_simulator.list_entities(xero_tenant, "Contact")

    assert [(row["Name"], row["ContactStatus"]) for row in rows] == [("Acme Ltd", "ARCHIVED")]


def test_tenants_tokens_and_records_through_the_admin_api(xero_simulator, admin):
    created = admin.post("/_simulator/tenants", json={"name": "Made Remotely"}).json()
    tokens = admin.post(f"/_simulator/tenants/{created['tenant_id']}/tokens").json()
    acted = admin.post(
        f"/_simulator/tenants/{created['tenant_id']}/contacts", json={"operation": "create", "data": {"Name": "Acme"}}
    )

    with TenantClient(xero_simulator, created["tenant_id"], tokens["access_token"]) as xero:
        assert xero.list("Contacts", page=1)[0]["Name"] == "Acme"
    assert acted.json()["Contacts"][0]["Name"] == "Acme"
    names = [row["name"] for row in admin.get("/_simulator/tenants").json()["tenants"]]
    assert "Made Remotely" in names


def test_the_admin_entity_endpoint_reports_validation_errors(xero_simulator, xero_tenant, admin):
    response = admin.post(f"/_simulator/tenants/{xero_tenant}/invoices", json={"operation": "create", "data": {}})

    assert response.status_code == 400
    assert response.json()["ValidationErrors"]


def test_the_admin_page_voids_an_invoice_as_a_xero_user(xero_simulator, xero_tenant, admin):
    with TenantClient(xero_simulator, xero_tenant) as xero:
        invoice = xero.invoice(xero.contact()["ContactID"], "10.00")

    page = admin.get("/_simulator/", params={"tenant": xero_tenant})
    response = admin.post(f"/_simulator/ui/{xero_tenant}/invoices/{invoice['InvoiceID']}/void")
    after = admin.get(response.headers["Location"])

    assert f'aria-label="Void invoice {invoice["InvoiceID"]}"' in page.text
    assert f"Invoice {invoice['InvoiceID']} voided." in after.text
    assert xero_simulator.get_entity(xero_tenant, "Invoice", invoice["InvoiceID"])["Status"] == "VOIDED"


def test_the_revoke_endpoint_disconnects_a_tenant(xero_simulator, xero_tenant, admin):
    with TenantClient(xero_simulator, xero_tenant) as xero:
        response = admin.post("/_simulator/tokens/revoke", json={"tenant_id": xero_tenant})

        assert response.json() == {"revoked": 1}
        assert xero.request("GET", "/Organisation").status_code == 401


def test_the_clock_endpoint_moves_simulated_time(xero_simulator, admin):
    before = xero_simulator.clock.now()

    admin.post("/_simulator/clock", json={"advance_seconds": 3600})

    assert (xero_simulator.clock.now() - before).total_seconds() >= 3600


def test_the_stats_and_log_describe_api_traffic_only(xero_simulator, xero_tenant, admin):
    with TenantClient(xero_simulator, xero_tenant) as xero:
        xero.request("GET", "/Organisation")
    admin.get("/_simulator/stats")

    log = admin.get("/_simulator/log", params={"limit": 1}).json()["requests"]

    assert [(entry["path"], entry["status"], entry["tenant"]) for entry in log] == [
        ("/api.xro/2.0/Organisation", 200, xero_tenant)
    ]
    assert xero_simulator.stats_snapshot()["tenants"][xero_tenant]["requests"] >= 1


def test_reset_forgets_everything_but_the_demo_tenant():
    with XeroSimulator() as sim:
        tenant = sim.create_tenant()
        sim.set_limits(calls_per_minute=1)

        with httpx.Client(base_url=sim.base_url) as admin:
            response = admin.post("/_simulator/reset")

        assert response.json()["tenants"] == [sim.config.demo_tenant_id]
        assert sim.state.organisation(tenant) is None
        assert sim.limiter.settings.calls_per_minute == 60
