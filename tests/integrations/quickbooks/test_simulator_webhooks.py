"""The simulator's webhooks: signed, aggregated, legacy or CloudEvents, retried (contract §13)."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from quickbooks import QuickBooks

from integrations.quickbooks.simulator import DEFAULT_VERIFIER_TOKEN, QuickBooksSimulator


class Receiver:
    """A tiny HTTP endpoint that records what it is sent and answers from a script of statuses."""

    def __init__(self):
        self.received = []
        self.statuses = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((self.headers, body))  # case-insensitive, as HTTP is
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/quickbooks"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sim():
    with QuickBooksSimulator(demo_realm=False) as simulator:
        yield simulator


@pytest.fixture
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def realm(sim, receiver):
    sim.reset()
    # A window longer than any test: notifications leave only when the test flushes them.
    sim.configure_webhooks(url=receiver.url, window_seconds=3600)
    return sim.create_realm("Webhook Tests")


def customer_and_invoice(sim, realm):
    customer = sim.act(realm, "Customer", "create", {"DisplayName": "Acme Ltd"})
    line = {"DetailType": "SalesItemLineDetail", "Amount": 100, "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}
    invoice = sim.act(realm, "Invoice", "create", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]})
    return customer, invoice


def test_changes_in_a_window_arrive_as_one_signed_post(sim, realm, receiver):
    customer_and_invoice(sim, realm)

    outcomes = sim.flush_webhooks()

    ((headers, body),) = receiver.received
    expected = base64.b64encode(hmac.new(DEFAULT_VERIFIER_TOKEN.encode(), body, hashlib.sha256).digest()).decode()
    assert [outcome["status"] for outcome in outcomes] == [200]
    assert headers["Content-Type"] == "application/json"
    assert headers["intuit-signature"] == expected


def test_python_quickbooks_accepts_the_signature(sim, realm, receiver):
    customer_and_invoice(sim, realm)

    sim.flush_webhooks()

    ((headers, body),) = receiver.received
    client = QuickBooks(minorversion=75)
    assert client.validate_webhook_signature(body.decode(), headers["intuit-signature"], DEFAULT_VERIFIER_TOKEN)
    assert not client.validate_webhook_signature(body.decode(), headers["intuit-signature"], "another-token")


def test_the_legacy_body_lists_entities_per_realm(sim, realm, receiver):
    customer, invoice = customer_and_invoice(sim, realm)

    sim.flush_webhooks()

    notification = json.loads(receiver.received[0][1])["eventNotifications"][0]
    entities = notification["dataChangeEvent"]["entities"]
    assert notification["realmId"] == realm
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [
        ("Customer", customer["Id"], "Create"),
        ("Invoice", invoice["Id"], "Create"),
    ]
    assert entities[0]["lastUpdated"].endswith("Z")


def test_side_effects_voids_deletes_and_merges_are_notified(sim, realm, receiver):
    customer, invoice = customer_and_invoice(sim, realm)
    other = sim.act(realm, "Customer", "create", {"DisplayName": "Acme (duplicate)"})
    sim.flush_webhooks()
    payment = sim.act(
        realm,
        "Payment",
        "create",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": 10,
            "Line": [{"Amount": 10, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
        },
    )
    sim.act(realm, "Payment", "delete", {"Id": payment["Id"]})
    sim.act(realm, "Invoice", "void", {"Id": invoice["Id"]})
    sim.act(realm, "Customer", "merge", {"source_id": other["Id"], "target_id": customer["Id"]})

    sim.flush_webhooks()

    entities = json.loads(receiver.received[1][1])["eventNotifications"][0]["dataChangeEvent"]["entities"]
    seen = {(e["name"], e["operation"]) for e in entities}
    assert {("Payment", "Create"), ("Invoice", "Update"), ("Payment", "Delete"), ("Invoice", "Void")} <= seen
    merge = next(e for e in entities if e["operation"] == "Merge")
    assert (merge["id"], merge["deletedId"]) == (customer["Id"], other["Id"])


def test_the_cloudevents_body_is_an_array_of_typed_events(sim, realm, receiver):
    sim.configure_webhooks(format="cloudevents")
    _, invoice = customer_and_invoice(sim, realm)

    sim.flush_webhooks()

    events = json.loads(receiver.received[0][1])
    assert [event["type"] for event in events] == ["qbo.customer.created.v1", "qbo.invoice.created.v1"]
    assert {event["specversion"] for event in events} == {"1.0"}
    assert events[1]["intuitentityid"] == invoice["Id"]
    assert events[1]["intuitaccountid"] == realm


def test_a_failed_delivery_is_retried_with_backoff(sim, realm, receiver):
    receiver.statuses = [500]
    sim.configure_webhooks(window_seconds=0, backoff_seconds=0.01)

    sim.act(realm, "Customer", "create", {"DisplayName": "Acme Ltd"})

    deadline = time.monotonic() + 5
    while sim.webhooks.counters["delivered"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.webhooks.counters["failed_attempts"] == 1
    assert sim.webhooks.counters["delivered"] == 1
    first, second = receiver.received
    assert first[1] == second[1]


def test_a_delivery_that_keeps_failing_is_given_up(sim, realm, receiver):
    receiver.statuses = [500, 500, 500]
    # Retries fall due only after a minute, so only the test's flushes deliver them.
    sim.configure_webhooks(retries=2, backoff_seconds=60)
    customer_and_invoice(sim, realm)

    attempts = [outcome["status"] for _ in range(3) for outcome in sim.flush_webhooks()]

    assert attempts == [500, 500, 500]
    assert sim.webhooks.counters["given_up"] == 1
    assert sim.flush_webhooks() == []
