"""Webhook bodies from Xero: the signature over the raw bytes, the intent-to-receive handshake,
and the records the events name (contract §12)."""

import base64
import hashlib
import hmac
import json

import pytest

from integrations.core import canonical
from integrations.core.adapter import Mapping
from integrations.xero import webhooks
from integrations.xero.adapter import XeroAdapter
from integrations.xero.webhooks import InvalidSignature, MalformedNotification, Notification

KEY = "webhook-key"
TENANT = "fe79f7dd-b6d4-4a92-ba7b-538af6289c58"
INVOICE_ID = "d4956132-ed94-4dd7-9eaa-aa22dfdf06f2"


def event(category, resource_id, *, event_type="UPDATE", tenant=TENANT, **extra):
    collection = {"INVOICE": "Invoices", "CONTACT": "Contacts", "CREDITNOTE": "CreditNotes"}.get(category, "X")
    return {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/{collection}/{resource_id}",
        "resourceId": resource_id,
        "eventDateUtc": "2024-05-21T06:10:02.713",
        "eventType": event_type,
        "eventCategory": category,
        "tenantId": tenant,
        "tenantType": "ORGANISATION",
        **extra,
    }


def body_of(*events):
    payload = {"events": list(events), "firstEventSequence": 12, "lastEventSequence": 12, "entropy": "S0m3r4Nd0m"}
    return json.dumps(payload).encode()


def signed(body, key=KEY):
    return {"x-xero-signature": base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()}


INTENT_TO_RECEIVE = body_of()


def test_sign_is_base64_hmac_sha256_of_the_raw_body():
    assert webhooks.sign(INTENT_TO_RECEIVE, KEY) == signed(INTENT_TO_RECEIVE)["x-xero-signature"]


def test_a_correctly_signed_intent_to_receive_body_is_accepted_and_names_nothing():
    assert webhooks.verified_notifications(INTENT_TO_RECEIVE, signed(INTENT_TO_RECEIVE), webhook_key=KEY) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-xero-signature": ""},
        {"x-xero-signature": "not base64!"},
        signed(INTENT_TO_RECEIVE, key="another-key"),
        signed(INTENT_TO_RECEIVE + b" "),
    ],
    ids=["missing", "empty", "not-base64", "wrong-key", "other-bytes"],
)
def test_a_wrongly_signed_body_is_refused(headers):
    with pytest.raises(InvalidSignature):
        webhooks.verified_notifications(INTENT_TO_RECEIVE, headers, webhook_key=KEY)


def test_a_wrongly_signed_body_is_answered_401_as_the_handshake_requires():
    assert webhooks.REJECTED_STATUS == 401


def test_the_signature_header_is_found_whatever_its_case():
    headers = {"X-Xero-Signature": signed(INTENT_TO_RECEIVE)["x-xero-signature"]}
    assert webhooks.verified_notifications(INTENT_TO_RECEIVE, headers, webhook_key=KEY) == []


def test_without_a_configured_key_nothing_is_accepted():
    with pytest.raises(InvalidSignature, match="configured"):
        webhooks.verified_notifications(INTENT_TO_RECEIVE, signed(INTENT_TO_RECEIVE), webhook_key="")


def test_the_key_comes_from_settings(settings):
    settings.XERO_WEBHOOK_KEY = "from-settings"
    assert webhooks.verified_notifications(INTENT_TO_RECEIVE, signed(INTENT_TO_RECEIVE, "from-settings")) == []


def test_events_name_contacts_invoices_and_customer_credit_notes():
    body = body_of(
        event("INVOICE", INVOICE_ID),
        event("CONTACT", "c1", event_type="CREATE"),
        event("CREDITNOTE", "cn1", data={"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}),
        event("CREDITNOTE", "cn2", data={"Type": "ACCPAYCREDIT", "Status": "AUTHORISED"}),
        event("SUBSCRIPTION", "s1", tenant="app"),
    )
    assert webhooks.verified_notifications(body, signed(body), webhook_key=KEY) == [
        Notification(TENANT, canonical.INVOICE, INVOICE_ID, "UPDATE"),
        Notification(TENANT, canonical.CUSTOMER, "c1", "CREATE"),
        Notification(TENANT, canonical.CREDIT_NOTE, "cn1", "UPDATE"),
    ]


def test_a_notification_names_its_tenant_as_the_services_read_it():
    (notification,) = webhooks.parse(body_of(event("CONTACT", "c1")))
    assert notification.realm_id == notification.tenant_id == TENANT


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"entropy": "x"}'], ids=["text", "array", "no-events"])
def test_a_signed_body_that_is_not_an_event_envelope_is_malformed(body):
    with pytest.raises(MalformedNotification):
        webhooks.verified_notifications(body, signed(body), webhook_key=KEY)


def test_the_adapter_yields_each_named_record_once():
    body = body_of(event("INVOICE", INVOICE_ID), event("INVOICE", INVOICE_ID), event("CONTACT", "c1"))
    adapter = XeroAdapter(client=None, mapping=Mapping(version=1), webhook_key=KEY)
    assert list(adapter.webhook_targets(body, signed(body))) == [
        (TENANT, canonical.INVOICE, INVOICE_ID),
        (TENANT, canonical.CUSTOMER, "c1"),
    ]


def test_the_adapter_refuses_a_wrongly_signed_body():
    body = body_of(event("INVOICE", INVOICE_ID))
    adapter = XeroAdapter(client=None, mapping=Mapping(version=1), webhook_key=KEY)
    with pytest.raises(InvalidSignature):
        list(adapter.webhook_targets(body, signed(body, key="other")))
