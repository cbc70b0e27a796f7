"""The simulator's query language, change data capture, batch and requestid replay.

Contract: shared/contracts/quickbooks.md §7, §8, §9 and §12.
"""

from datetime import timedelta

import pytest

from integrations.quickbooks.simulator import QuickBooksSimulator
from integrations.quickbooks.simulator.testing import RealmClient


@pytest.fixture(scope="module")
def sim():
    with QuickBooksSimulator(demo_realm=False) as simulator:
        yield simulator


@pytest.fixture
def qbo(sim):
    sim.reset()
    with RealmClient(sim, sim.create_realm("Read Tests")) as client:
        yield client


def names(rows):
    return [row["DisplayName"] for row in rows]


# --- query ------------------------------------------------------------------------------------


def test_query_pages_with_startposition_and_maxresults(qbo):
    for number in range(7):
        qbo.customer(f"Customer {number}")

    statement = "select * from Customer STARTPOSITION {} MAXRESULTS 3"
    pages = [qbo.query(statement.format(start)) for start in (1, 4, 7, 10)]

    assert [page.get("maxResults") for page in pages] == [3, 3, 1, None]
    assert [page.get("startPosition") for page in pages[:3]] == [1, 4, 7]
    assert pages[3] == {}
    assert names(pages[0]["Customer"] + pages[1]["Customer"] + pages[2]["Customer"]) == [
        f"Customer {number}" for number in range(7)
    ]


def test_count_answers_total_count_only(qbo):
    for number in range(4):
        qbo.customer(f"Customer {number}")

    assert qbo.query("SELECT COUNT(*) FROM Customer") == {"totalCount": 4}


def test_in_like_and_escaped_quotes_filter(qbo):
    for name in ("O'Brien Plumbing", "Acme Ltd", "Acme Holdings", "Beta LLC"):
        qbo.customer(name)

    assert names(qbo.query("select * from Customer where DisplayName LIKE 'Acme%'")["Customer"]) == [
        "Acme Ltd",
        "Acme Holdings",
    ]
    assert names(qbo.query("select * from Customer where Id in ('1', '4')")["Customer"]) == [
        "O'Brien Plumbing",
        "Beta LLC",
    ]
    assert names(qbo.query(r"select * from Customer where DisplayName = 'O\'Brien Plumbing'")["Customer"]) == [
        "O'Brien Plumbing"
    ]


def test_orderby_and_order_by_both_sort(qbo):
    for name in ("Beta", "Alpha", "Gamma"):
        qbo.customer(name)

    one_word = qbo.query("select * from Customer ORDERBY DisplayName DESC")["Customer"]
    two_words = qbo.query("SELECT * FROM Customer ORDER BY DisplayName")["Customer"]

    assert names(one_word) == ["Gamma", "Beta", "Alpha"]
    assert names(two_words) == ["Alpha", "Beta", "Gamma"]


def test_last_updated_time_filters_honour_offsets(qbo, sim):
    qbo.customer("Before")
    sim.advance_clock(1800)
    between = sim.clock.now() - timedelta(minutes=15)
    qbo.customer("After")
    pacific = between.astimezone(qbo.sim.state.company(qbo.realm_id).zone).isoformat(timespec="seconds")
    utc = between.strftime("%Y-%m-%dT%H:%M:%SZ")

    for literal in (pacific, utc):
        statement = "select * from Customer where Metadata.LastUpdatedTime > '{}' ORDERBY Metadata.LastUpdatedTime"
        assert names(qbo.query(statement.format(literal))["Customer"]) == ["After"]


def test_inactive_name_list_objects_are_left_out_unless_asked_for(qbo):
    active = qbo.customer("Active One")
    hidden = qbo.customer("Hidden One")
    qbo.update("Customer", {"Id": hidden["Id"], "SyncToken": "0", "sparse": True, "Active": False})

    default = qbo.query("select * from Customer")
    both = qbo.query("select * from Customer where Active IN (true, false)")
    inactive = qbo.query("select * from Customer where Active = false")

    assert [row["Id"] for row in default["Customer"]] == [active["Id"]]
    assert len(both["Customer"]) == 2
    assert [row["Id"] for row in inactive["Customer"]] == [hidden["Id"]]


def test_balance_filters_compare_numbers(qbo):
    customer = qbo.customer()
    open_invoice = qbo.invoice(customer["Id"], "80.00")
    paid = qbo.invoice(customer["Id"], "20.00")
    qbo.payment(customer["Id"], "20.00", {paid["Id"]: "20.00"})

    statement = "select * from Invoice where Balance > '0' and CustomerRef = '{}'"
    rows = qbo.query(statement.format(customer["Id"]))["Invoice"]

    assert [row["Id"] for row in rows] == [open_invoice["Id"]]


def test_a_query_can_be_sent_as_a_get_parameter(qbo):
    qbo.customer("Acme Ltd")

    response = qbo.request("GET", "/query", params={"query": "select * from Customer"})

    assert names(response.json()["QueryResponse"]["Customer"]) == ["Acme Ltd"]


def test_a_malformed_query_is_a_4000_fault(qbo):
    response = qbo.request("POST", "/query", text="select * form Customer")

    assert response.status_code == 400
    assert response.json()["Fault"]["Error"][0]["code"] == "4000"


def test_or_is_not_part_of_the_language(qbo):
    response = qbo.request("POST", "/query", text="select * from Customer where Id = '1' or Id = '2'")

    assert response.json()["Fault"]["Error"][0]["code"] == "4000"


# --- change data capture ----------------------------------------------------------------------


def cdc(qbo, entities, since):
    response = qbo.request("GET", "/cdc", params={"entities": entities, "changedSince": since.isoformat()})
    return response


def test_cdc_returns_changes_and_deleted_stubs_per_requested_entity(qbo, sim):
    customer = qbo.customer()
    kept = qbo.invoice(customer["Id"])
    gone = qbo.invoice(customer["Id"])
    since = sim.clock.now()
    sim.advance_clock(60)
    qbo.update("Invoice", {"Id": kept["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "edited"})
    qbo.request("POST", "/invoice", body={"Id": gone["Id"], "SyncToken": "0"}, params={"operation": "delete"})

    elements = cdc(qbo, "Invoice,Customer", since).json()["CDCResponse"][0]["QueryResponse"]

    invoices = {row["Id"]: row for row in elements[0]["Invoice"]}
    assert invoices[kept["Id"]]["PrivateNote"] == "edited"
    assert invoices[gone["Id"]]["status"] == "Deleted"
    assert "Customer" not in elements[1]
    assert elements[1]["maxResults"] == 0


def test_cdc_refuses_a_changed_since_older_than_30_days(qbo, sim):
    too_old = sim.clock.now() - timedelta(days=30, minutes=1)
    recent_enough = sim.clock.now() - timedelta(days=29)

    refused = cdc(qbo, "Invoice", too_old)
    accepted = cdc(qbo, "Invoice", recent_enough)

    assert refused.status_code == 400
    assert "older than" in refused.json()["Fault"]["Error"][0]["Detail"]
    assert accepted.status_code == 200


def test_cdc_caps_a_response_at_its_object_limit_oldest_first():
    with QuickBooksSimulator(demo_realm=False, cdc_max_objects=5) as small:
        realm = small.create_realm()
        since = small.clock.now()
        with RealmClient(small, realm) as qbo:
            for number in range(8):
                small.advance_clock(1)
                qbo.customer(f"Customer {number}")
            response = cdc(qbo, "Customer", since)

    rows = response.json()["CDCResponse"][0]["QueryResponse"][0]["Customer"]
    assert names(rows) == [f"Customer {number}" for number in range(5)]


# --- batch ------------------------------------------------------------------------------------


def test_batch_runs_each_item_and_reports_faults_per_item(qbo):
    customer = qbo.customer("Acme Ltd")
    invoice = qbo.invoice(customer["Id"])
    qbo.update("Invoice", {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "moved on"})
    items = [
        {"bId": "c1", "operation": "create", "Customer": {"DisplayName": "Beta LLC"}},
        {"bId": "u1", "operation": "update", "Invoice": {"Id": invoice["Id"], "SyncToken": "0", "sparse": True}},
        {"bId": "d1", "operation": "create", "Customer": {"DisplayName": "Acme Ltd"}},
        {"bId": "q1", "Query": "select * from Customer where DisplayName = 'Acme Ltd'"},
    ]

    response = qbo.request("POST", "/batch", body={"BatchItemRequest": items})

    results = {item["bId"]: item for item in response.json()["BatchItemResponse"]}
    assert response.status_code == 200
    assert results["c1"]["Customer"]["DisplayName"] == "Beta LLC"
    assert results["u1"]["Fault"]["Error"][0]["code"] == "5010"
    assert results["d1"]["Fault"]["Error"][0]["code"] == "6240"
    assert results["q1"]["QueryResponse"]["Customer"][0]["Id"] == customer["Id"]
    assert qbo.query("select count(*) from Customer") == {"totalCount": 2}


def test_batch_voids_and_deletes(qbo):
    customer = qbo.customer()
    to_void = qbo.invoice(customer["Id"])
    to_delete = qbo.invoice(customer["Id"])
    items = [
        {"bId": "v", "operation": "update", "optionsData": "void", "Invoice": {"Id": to_void["Id"], "SyncToken": "0"}},
        {"bId": "d", "operation": "delete", "Invoice": {"Id": to_delete["Id"], "SyncToken": "0"}},
    ]

    results = {
        item["bId"]: item
        for item in qbo.request("POST", "/batch", body={"BatchItemRequest": items}).json()["BatchItemResponse"]
    }

    assert results["v"]["Invoice"]["PrivateNote"] == "Voided"
    assert results["d"]["Invoice"]["status"] == "Deleted"


def test_a_batch_of_more_than_30_items_is_rejected_whole(qbo):
    items = [{"bId": str(n), "operation": "create", "Customer": {"DisplayName": f"C{n}"}} for n in range(31)]

    response = qbo.request("POST", "/batch", body={"BatchItemRequest": items})

    assert response.status_code == 400
    assert "Fault" in response.json()
    assert qbo.query("select count(*) from Customer") == {"totalCount": 0}


# --- requestid --------------------------------------------------------------------------------


def test_the_same_requestid_twice_creates_one_object_and_replays_the_answer(qbo):
    first = qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "job-17"})
    again = qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "job-17"})

    assert again.status_code == first.status_code == 200
    assert again.json() == first.json()
    assert qbo.query("select count(*) from Customer") == {"totalCount": 1}


def test_a_different_requestid_is_a_new_request(qbo):
    qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "job-1"})

    second = qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "job-2"})

    assert second.json()["Fault"]["Error"][0]["code"] == "6240"


def test_a_requestid_is_forgotten_after_a_day(qbo, sim):
    qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "job-9"})
    sim.advance_clock(25 * 3600)
    qbo.access_token = sim.issue_tokens(qbo.realm_id)["access_token"]

    again = qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "job-9"})

    assert again.json()["Fault"]["Error"][0]["code"] == "6240"


def test_requestids_are_remembered_per_realm(qbo, sim):
    other_realm = sim.create_realm("Other")
    with RealmClient(sim, other_realm) as other:
        qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "same"})
        other.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "same"})

        assert other.query("select count(*) from Customer") == {"totalCount": 1}
