"""The Xero simulator's webhooks: signed event batches, payments seen as invoice updates,
retries, and the intent-to-receive check of a receiver (contract §12)."""

import json

import httpx

from integrations.xero.simulator import DEFAULT_WEBHOOK_KEY, sign
from integrations.xero.simulator.testing import TenantClient


def test_deliveries_are_signed_with_the_webhook_key(xero_simulator, xero_tenant, xero_webhook_receiver):
    xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})

    outcome = xero_simulator.flush_webhooks()
    headers, body = xero_webhook_receiver.received[0]

    assert outcome[0]["status"] == 200
    assert headers["x-xero-signature"] == sign(body, DEFAULT_WEBHOOK_KEY)
    assert headers["content-type"].startswith("application/json")


def test_an_event_names_the_resource_its_tenant_and_what_happened(xero_simulator, xero_tenant, xero_webhook_receiver):
    contact = xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})

    xero_simulator.flush_webhooks()
    payload = xero_webhook_receiver.payloads()[0]

    assert payload["events"] == [
        {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{contact['ContactID']}",
            "resourceId": contact["ContactID"],
            "eventDateUtc": payload["events"][0]["eventDateUtc"],
            "eventType": "CREATE",
            "eventCategory": "CONTACT",
            "tenantId": xero_tenant,
            "tenantType": "ORGANISATION",
        }
    ]
    assert payload["firstEventSequence"] == payload["lastEventSequence"] >= 1
    assert len(payload["entropy"]) == 20


def test_a_payment_arrives_as_an_update_of_its_invoice(xero_simulator, xero_tenant, xero_webhook_receiver):
    with TenantClient(xero_simulator, xero_tenant) as xero:
        invoice = xero.invoice(xero.contact()["ContactID"], "10.00")
        xero_simulator.flush_webhooks()
        xero.payment(invoice["InvoiceID"], "10.00")

    xero_simulator.flush_webhooks()
    events = xero_webhook_receiver.payloads()[-1]["events"]

    assert [(event["eventCategory"], event["eventType"], event["resourceId"]) for event in events] == [
        ("INVOICE", "UPDATE", invoice["InvoiceID"])
    ]


def test_archive_void_and_credit_notes_are_reported_as_xero_does(xero_simulator, xero_tenant, xero_webhook_receiver):
    contact = xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})
    xero_simulator.flush_webhooks()
    xero_simulator.act(xero_tenant, "Contact", "archive", {"ContactID": contact["ContactID"]})
    credit = xero_simulator.act(
        xero_tenant,
        "CreditNote",
        "create",
        {
            "Type": "ACCRECCREDIT",
            "Contact": {"Name": "Globex"},
            "Status": "AUTHORISED",
            "LineItems": [{"Description": "x", "UnitAmount": 5, "AccountCode": "200"}],
        },
    )

    xero_simulator.flush_webhooks()
    events = {event["resourceId"]: event for event in xero_webhook_receiver.payloads()[-1]["events"]}

    assert events[contact["ContactID"]]["eventType"] == "UPDATE"
    assert events[credit["CreditNoteID"]]["data"] == {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}


def test_changes_within_a_window_collapse_into_one_event_per_resource(
    xero_simulator, xero_tenant, xero_webhook_receiver
):
    contact = xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})
    xero_simulator.act(xero_tenant, "Contact", "update", {"ContactID": contact["ContactID"], "FirstName": "Ada"})

    xero_simulator.flush_webhooks()
    events = xero_webhook_receiver.payloads()[0]["events"]

    assert [(event["resourceId"], event["eventType"]) for event in events] == [(contact["ContactID"], "CREATE")]


def test_a_failed_delivery_is_retried(xero_simulator, xero_tenant, xero_webhook_receiver):
    xero_webhook_receiver.statuses = [500]
    xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})

    first = xero_simulator.flush_webhooks()
    second = xero_simulator.flush_webhooks()

    assert [outcome["status"] for outcome in first + second] == [500, 200]
    assert xero_webhook_receiver.received[0][1] == xero_webhook_receiver.received[1][1]


def test_intent_to_receive_passes_a_receiver_that_checks_the_signature(xero_simulator, xero_webhook_receiver):
    report = xero_simulator.intent_to_receive()

    assert report["passed"] is True
    assert (report["correctly_signed"]["status"], report["incorrectly_signed"]["status"]) == (200, 401)
    probes = xero_webhook_receiver.payloads()
    assert [probe["events"] for probe in probes] == [[], []]


def test_intent_to_receive_fails_a_receiver_that_accepts_everything(xero_simulator, xero_webhook_receiver):
    xero_webhook_receiver.verify = False

    report = xero_simulator.intent_to_receive()

    assert report["passed"] is False
    assert report["incorrectly_signed"] == {**report["incorrectly_signed"], "status": 200, "ok": False}


def test_intent_to_receive_can_be_triggered_by_the_admin_endpoint(xero_simulator, xero_webhook_receiver):
    with httpx.Client(base_url=xero_simulator.base_url) as admin:
        report = admin.post("/_simulator/webhooks/intent-to-receive", json={"url": xero_webhook_receiver.url}).json()

    assert report["passed"] is True
    headers, body = xero_webhook_receiver.received[1]
    assert headers["x-xero-signature"] != sign(body, DEFAULT_WEBHOOK_KEY)
    assert json.loads(body)["events"] == []


def test_events_outside_the_subscribed_categories_are_not_sent(xero_simulator, xero_tenant, xero_webhook_receiver):
    xero_simulator.configure_webhooks(categories=["INVOICE"])
    xero_simulator.act(xero_tenant, "Contact", "create", {"Name": "Acme Ltd"})

    assert xero_simulator.flush_webhooks() == []
