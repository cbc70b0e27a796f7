"""The simulator's state file and its admin endpoints and page (changes "as a QuickBooks user")."""

import time
from decimal import Decimal

import httpx
import pytest

from integrations.quickbooks.simulator import QuickBooksSimulator, wire
from integrations.quickbooks.simulator.state import write_atomically
from integrations.quickbooks.simulator.testing import RealmClient


@pytest.fixture(scope="module")
def sim():
    with QuickBooksSimulator(demo_realm=False) as simulator:
        yield simulator


@pytest.fixture
def admin(sim):
    sim.reset()
    with httpx.Client(base_url=sim.base_url, timeout=5) as client:
        yield client


@pytest.fixture
def qbo(sim, admin):
    with RealmClient(sim, sim.create_realm("Admin Tests")) as client:
        yield client


def open_invoice(qbo, amount="100.00"):
    customer = qbo.customer()
    return qbo.invoice(customer["Id"], amount)


# --- the state file ---------------------------------------------------------------------------


def test_data_tokens_and_clock_survive_a_restart(tmp_path):
    path = tmp_path / "qbo.json"
    with QuickBooksSimulator(state_path=path, demo_realm=False) as first:
        realm = first.create_realm("Persistent Co")
        with RealmClient(first, realm) as qbo:
            customer = qbo.customer("Acme Ltd")
            token = qbo.access_token
        first.advance_clock(100)

    with QuickBooksSimulator(state_path=path, demo_realm=False) as second, RealmClient(second, realm, token) as qbo:
        read = qbo.read("Customer", customer["Id"])
        offset = second.clock.offset_seconds

    assert read["DisplayName"] == "Acme Ltd"
    assert read["MetaData"] == customer["MetaData"]
    assert offset >= 100
    assert [entry.name for entry in tmp_path.iterdir()] == ["qbo.json"]


def test_changes_are_saved_shortly_without_stopping(tmp_path):
    path = tmp_path / "qbo.json"
    with QuickBooksSimulator(state_path=path, save_delay_seconds=0.01, demo_realm=False) as sim:
        realm = sim.create_realm()
        sim.act(realm, "Customer", "create", {"DisplayName": "Saved Soon"})

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "Saved Soon" not in (path.read_text() if path.exists() else ""):
            time.sleep(0.01)

        saved = wire.loads(path.read_text())
    customers = saved["companies"][realm]["objects"]["Customer"]
    assert [row["DisplayName"] for row in customers.values()] == ["Saved Soon"]


def test_amounts_round_trip_through_the_file_as_exact_decimals(tmp_path):
    path = tmp_path / "qbo.json"
    with QuickBooksSimulator(state_path=path, demo_realm=False) as first:
        realm = first.create_realm()
        customer = first.act(realm, "Customer", "create", {"DisplayName": "Acme Ltd"})
        line = {
            "DetailType": "SalesItemLineDetail",
            "Amount": "0.10",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}},
        }
        invoice = first.act(realm, "Invoice", "create", {"CustomerRef": {"value": customer["Id"]}, "Line": [line] * 3})

    with QuickBooksSimulator(state_path=path, demo_realm=False) as second:
        total = second.get_entity(realm, "Invoice", invoice["Id"])["TotalAmt"]

    assert total == Decimal("0.30") and isinstance(total, Decimal)


def test_an_atomic_write_replaces_the_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "state.json"

    write_atomically(path, "first")
    write_atomically(path, "second")

    assert path.read_text() == "second"
    assert [entry.name for entry in tmp_path.iterdir()] == ["state.json"]


# --- acting as a QuickBooks user --------------------------------------------------------------


def test_a_change_made_as_a_quickbooks_user_makes_the_clients_copy_stale(qbo, admin):
    invoice = open_invoice(qbo)

    edited = admin.post(
        f"/_simulator/realms/{qbo.realm_id}/invoice",
        json={"operation": "update", "data": {"Id": invoice["Id"], "PrivateNote": "changed in QBO"}},
    )
    stale = qbo.request("POST", "/invoice", body={"Id": invoice["Id"], "SyncToken": "0", "sparse": True})

    assert edited.json()["Invoice"]["SyncToken"] == "1"
    assert stale.json()["Fault"]["Error"][0]["code"] == "5010"


def test_the_admin_entity_endpoint_reports_business_faults(qbo, admin):
    response = admin.post(
        f"/_simulator/realms/{qbo.realm_id}/customer", json={"operation": "delete", "data": {"Id": "1"}}
    )
    unknown = admin.post(f"/_simulator/realms/{qbo.realm_id}/customer", json={"operation": "explode", "data": {}})

    assert response.status_code == 400 and "Fault" in response.json()
    assert unknown.status_code == 400


def test_a_deleted_object_is_gone_from_the_admin_view(sim, qbo, admin):
    invoice = open_invoice(qbo)
    sim.act(qbo.realm_id, "Invoice", "delete", {"Id": invoice["Id"]})

    response = admin.get(f"/_simulator/realms/{qbo.realm_id}/invoice/{invoice['Id']}")

    assert response.status_code == 404


# --- the admin page ---------------------------------------------------------------------------


def test_the_admin_page_lists_a_realms_invoices_with_their_buttons(qbo, admin):
    invoice = open_invoice(qbo)

    page = admin.get("/_simulator/", params={"realm": qbo.realm_id})

    assert page.status_code == 200
    assert f'id="invoice-{invoice["Id"]}"' in page.text
    assert f'aria-label="Void invoice {invoice["Id"]}"' in page.text
    assert f'aria-label="Save invoice {invoice["Id"]}"' in page.text


def test_voiding_from_the_admin_page_voids_the_invoice(sim, qbo, admin):
    invoice = open_invoice(qbo)

    response = admin.post(f"/_simulator/ui/{qbo.realm_id}/invoice/{invoice['Id']}/void")
    page = admin.get(response.headers["Location"])

    voided = qbo.read("Invoice", invoice["Id"])
    assert response.status_code == 303
    assert f"Invoice {invoice['Id']} voided." in page.text
    assert (voided["TotalAmt"], voided["PrivateNote"], voided["SyncToken"]) == (0, "Voided", "1")


def test_editing_memo_and_due_date_from_the_admin_page(qbo, admin):
    invoice = open_invoice(qbo)

    admin.post(
        f"/_simulator/ui/{qbo.realm_id}/invoice/{invoice['Id']}/edit",
        data={"DueDate": "2031-01-31", "PrivateNote": "call first", "CustomerMemo": "Thank you"},
    )

    edited = qbo.read("Invoice", invoice["Id"])
    assert (edited["DueDate"], edited["PrivateNote"]) == ("2031-01-31", "call first")
    assert edited["CustomerMemo"] == {"value": "Thank you"}


# --- other admin endpoints --------------------------------------------------------------------


def test_the_clock_endpoint_moves_simulated_time(sim, admin):
    before = sim.clock.now()

    response = admin.post("/_simulator/clock", json={"advance_seconds": 86400})

    assert response.json()["offset_seconds"] >= 86400
    assert (sim.clock.now() - before).total_seconds() >= 86400


def test_realms_and_tokens_can_be_made_through_the_admin_api(sim, admin):
    created = admin.post("/_simulator/realms", json={"company_name": "Made Remotely"}).json()
    tokens = admin.post(f"/_simulator/realms/{created['realm_id']}/tokens").json()

    with RealmClient(sim, created["realm_id"], tokens["access_token"]) as qbo:
        assert qbo.read("Item", "1")["Name"] == "Services"
    listed = admin.get("/_simulator/realms").json()["realms"]
    assert [realm["company_name"] for realm in listed] == ["Made Remotely"]


def test_the_revoke_endpoint_disconnects_a_realm(qbo, admin):
    response = admin.post("/_simulator/tokens/revoke", json={"realm_id": qbo.realm_id})

    assert response.json() == {"revoked": 1}
    assert qbo.request("GET", "/item/1").status_code == 401


def test_reset_forgets_every_realm(sim, qbo, admin):
    response = admin.post("/_simulator/reset", json={"demo_realm": False})

    assert response.json()["realms"] == []
    assert sim.state.company(qbo.realm_id) is None
