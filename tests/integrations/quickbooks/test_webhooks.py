"""Webhook bodies from Intuit: the signature over the raw bytes, and both payload shapes (§13)."""

import base64
import hashlib
import hmac
import json

import pytest

from integrations.core.adapter import Mapping
from integrations.quickbooks import webhooks
from integrations.quickbooks.adapter import QuickBooksAdapter
from integrations.quickbooks.webhooks import InvalidSignature, MalformedNotification, Notification

TOKEN = "verifier-token"
REALM = "9130357766900456"

LEGACY = {
    "eventNotifications": [
        {
            "realmId": REALM,
            "dataChangeEvent": {
                "entities": [
                    {"name": "Invoice", "id": "130", "operation": "Update", "lastUpdated": "2024-05-21T14:02:17.000Z"},
                    {
                        "name": "Customer",
                        "id": "58",
                        "operation": "Merge",
                        "lastUpdated": "2024-05-21T14:02:18.000Z",
                        "deletedId": "61",
                    },
                    {"name": "Vendor", "id": "9", "operation": "Create", "lastUpdated": "2024-05-21T14:02:19.000Z"},
                ]
            },
        }
    ]
}

CLOUD_EVENTS = [
    {
        "specversion": "1.0",
        "id": "88cd52aa-33b6-4351-9aa4-47572edbd068",
        "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
        "type": "qbo.invoice.voided.v1",
        "datacontenttype": "application/json",
        "time": "2024-05-21T14:02:17.179Z",
        "intuitentityid": "130",
        "intuitaccountid": REALM,
        "data": {},
    },
    {
        "specversion": "1.0",
        "id": "99",
        "type": "qbo.creditmemo.deleted.v1",
        "intuitentityid": "140",
        "intuitaccountid": REALM,
    },
    {"specversion": "1.0", "id": "100", "type": "qbo.bill.created.v1", "intuitentityid": "1", "intuitaccountid": REALM},
]


def signed(payload, token=TOKEN):
    body = json.dumps(payload).encode()
    return body, {
        "intuit-signature": base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()
    }


def test_a_correctly_signed_legacy_body_names_its_records_and_the_merged_away_one():
    body, headers = signed(LEGACY)
    assert webhooks.verified_notifications(body, headers, verifier_token=TOKEN) == [
        Notification(REALM, "invoice", "130", "Update"),
        Notification(REALM, "customer", "58", "Merge"),
        Notification(REALM, "customer", "61", "Delete"),
    ]


def test_a_cloud_events_array_is_read_like_the_legacy_shape():
    body, headers = signed(CLOUD_EVENTS)
    assert webhooks.verified_notifications(body, headers, verifier_token=TOKEN) == [
        Notification(REALM, "invoice", "130", "Void"),
        Notification(REALM, "credit_note", "140", "Delete"),
    ]


def test_a_body_signed_with_another_token_is_rejected():
    body, headers = signed(LEGACY, token="someone-else")
    with pytest.raises(InvalidSignature):
        webhooks.verified_notifications(body, headers, verifier_token=TOKEN)


def test_a_body_changed_after_signing_is_rejected():
    body, headers = signed(LEGACY)
    with pytest.raises(InvalidSignature):
        webhooks.verified_notifications(body.replace(b"130", b"131"), headers, verifier_token=TOKEN)


def test_the_signature_covers_the_raw_bytes_not_the_parsed_json():
    body, headers = signed(LEGACY)
    reformatted = json.dumps(json.loads(body), indent=2).encode()
    with pytest.raises(InvalidSignature):
        webhooks.verified_notifications(reformatted, headers, verifier_token=TOKEN)


def test_a_missing_or_garbled_signature_is_rejected():
    body, _ = signed(LEGACY)
    with pytest.raises(InvalidSignature):
        webhooks.verified_notifications(body, {}, verifier_token=TOKEN)
    with pytest.raises(InvalidSignature):
        webhooks.verified_notifications(body, {"intuit-signature": "not base64!"}, verifier_token=TOKEN)


def test_the_header_name_is_matched_without_regard_to_case():
    body, headers = signed(LEGACY)
    assert webhooks.verified_notifications(
        body, {"Intuit-Signature": headers["intuit-signature"]}, verifier_token=TOKEN
    )


def test_the_verifier_token_defaults_to_settings(settings):
    settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN = "from-settings"
    body, headers = signed(LEGACY, token="from-settings")
    assert len(webhooks.verified_notifications(body, headers)) == 3


def test_a_signed_body_of_another_shape_is_malformed():
    body, headers = signed({"hello": "world"})
    with pytest.raises(MalformedNotification):
        webhooks.verified_notifications(body, headers, verifier_token=TOKEN)


def test_the_adapter_yields_each_target_once():
    payload = {"eventNotifications": LEGACY["eventNotifications"] * 2}
    body, headers = signed(payload)
    adapter = QuickBooksAdapter(client=None, mapping=Mapping(version=1), verifier_token=TOKEN)
    assert list(adapter.webhook_targets(body, headers)) == [
        (REALM, "invoice", "130"),
        (REALM, "customer", "58"),
        (REALM, "customer", "61"),
    ]


def test_the_adapter_refuses_a_bad_signature_before_reading_anything():
    body, _ = signed(LEGACY)
    adapter = QuickBooksAdapter(client=None, mapping=Mapping(version=1), verifier_token=TOKEN)
    with pytest.raises(InvalidSignature):
        list(adapter.webhook_targets(body, {"intuit-signature": webhooks.sign(body, "wrong")}))
