"""Xero's webhooks: signature check, the intent-to-receive handshake, and the records named.

Wire contract: shared/contracts/xero.md §12; payload schema: vendor/xero-openapi/xero-webhooks.yaml.
One endpoint receives the events of every connected organisation. Each delivery is signed with
the app's webhook key (`x-xero-signature` = base64 HMAC-SHA256 of the raw body). Before Xero
turns a subscription on, and now and then after, it checks the endpoint ("intent to receive"):
it posts bodies with a correct signature and with a wrong one, and expects 200 for the first and
401 for the second — so a delivery is verified before anything else, and a wrong signature is
answered 401 (`REJECTED_STATUS`), not 400. Events carry ids only; the engine fetches what they
name. Xero sends no payment events: a payment shows as an UPDATE of its invoice, and the
scheduled pull brings the payment itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from integrations.core import canonical
from integrations.core.errors import SyncError

from .oauth import secret_setting

SIGNATURE_HEADER = "x-xero-signature"
# What the webhook view answers a delivery whose signature is wrong (the ITR handshake needs 401).
REJECTED_STATUS = 401
# eventCategory → canonical entity. SUBSCRIPTION events (app-store billing) name no record.
ENTITY_BY_CATEGORY = {
    "CONTACT": canonical.CUSTOMER,
    "INVOICE": canonical.INVOICE,
    "CREDITNOTE": canonical.CREDIT_NOTE,
}
# Credit-note events say which kind they are; supplier credit notes are not Concord's.
CUSTOMER_CREDIT = "ACCRECCREDIT"


class InvalidSignature(SyncError):
    """The body was not signed with our webhook key: answer 401 (and log it), never act on it."""


class MalformedNotification(SyncError):
    """A correctly signed body that is not Xero's event envelope."""


@dataclass(frozen=True)
class Notification:
    # The tenant (organisation) id, named as the engine's services read every provider's.
    realm_id: str
    entity: str  # canonical entity
    remote_id: str
    operation: str  # CREATE or UPDATE (archives, voids and deletes arrive as UPDATE)

    @property
    def tenant_id(self) -> str:
        return self.realm_id


def sign(body: bytes, webhook_key: str) -> str:
    """The header value Xero sends with `body` (for tests and the simulator)."""
    return base64.b64encode(hmac.new(webhook_key.encode(), body, hashlib.sha256).digest()).decode()


def verify_signature(body: bytes, signature: str | None, webhook_key: str) -> None:
    """Raises InvalidSignature unless `signature` is the HMAC of exactly these bytes."""
    if not signature:
        raise InvalidSignature("Webhook without an x-xero-signature header", code="signature")
    if not webhook_key:
        raise InvalidSignature("No Xero webhook key is configured", code="signature")
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("The x-xero-signature header is not base64", code="signature") from exc
    expected = hmac.new(webhook_key.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise InvalidSignature("The x-xero-signature header does not match the body", code="signature")


def parse(body: bytes) -> list[Notification]:
    """Every synced record the events name; an intent-to-receive body (no events) names none."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MalformedNotification("Webhook body is not JSON", code="webhook") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        raise MalformedNotification("Webhook body has no events list", code="webhook")
    notifications = []
    for event in payload["events"]:
        if not isinstance(event, dict):
            continue
        entity = ENTITY_BY_CATEGORY.get(str(event.get("eventCategory") or "").upper())
        tenant_id = str(event.get("tenantId") or "")
        remote_id = str(event.get("resourceId") or "")
        if entity is None or not tenant_id or not remote_id:
            continue
        data = event.get("data")
        if (
            entity == canonical.CREDIT_NOTE
            and isinstance(data, dict)
            and data.get("Type") not in (None, CUSTOMER_CREDIT)
        ):
            continue
        notifications.append(Notification(tenant_id, entity, remote_id, str(event.get("eventType") or "").upper()))
    return notifications


def verified_notifications(
    body: bytes, headers: Mapping[str, str], *, webhook_key: str | None = None
) -> list[Notification]:
    """The notifications of a signed body; InvalidSignature when the signature is wrong."""
    key = (
        webhook_key if webhook_key is not None else secret_setting("XERO_WEBHOOK_KEY", "concord-xero-demo-webhook-key")
    )
    signature = next((value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER), None)
    verify_signature(body, signature, key)
    return parse(body)


def webhook_targets(body: bytes, headers: Mapping[str, str], *, webhook_key: str | None = None):
    """(tenant id, entity, remote id) of every record a verified body names, each once."""
    seen = set()
    for notification in verified_notifications(body, headers, webhook_key=webhook_key):
        target = (notification.realm_id, notification.entity, notification.remote_id)
        if target not in seen:
            seen.add(target)
            yield target
