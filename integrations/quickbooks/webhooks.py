"""Intuit's webhook notifications: signature check and the records they name.

Wire contract: shared/contracts/quickbooks.md §13. One endpoint receives the events of every
connected company. The body is signed with the app's verifier token (`intuit-signature` =
base64 HMAC-SHA256 of the raw bytes); notifications carry ids only, so the engine fetches what
they name. Both shapes are accepted: the legacy `eventNotifications` object and the CloudEvents
array Intuit is moving to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from integrations.core.errors import SyncError

from .mapping import CANONICAL_ENTITY

SIGNATURE_HEADER = "intuit-signature"
# CloudEvents `type` verbs → the legacy operation names.
_CLOUD_EVENT_OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
    "emailed": "Emailed",
}
# The lower-case entity of a CloudEvents type → QBO's entity name.
_QBO_BY_LOWER = {qbo.lower(): qbo for qbo in CANONICAL_ENTITY}


class InvalidSignature(SyncError):
    """The body was not signed with our verifier token: reject it (and log it), never act on it."""


class MalformedNotification(SyncError):
    """A correctly signed body that is not one of the two notification shapes."""


@dataclass(frozen=True)
class Notification:
    realm_id: str
    entity: str  # canonical entity
    remote_id: str
    operation: str  # Create, Update, Delete, Merge, Void, Emailed


def verify_signature(body: bytes, signature: str | None, verifier_token: str) -> None:
    """Raises InvalidSignature unless `signature` is the HMAC of exactly these bytes."""
    if not signature:
        raise InvalidSignature("Webhook without an intuit-signature header", code="signature")
    if not verifier_token:
        raise InvalidSignature("No webhook verifier token is configured", code="signature")
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("The intuit-signature header is not base64", code="signature") from exc
    expected = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        raise InvalidSignature("The intuit-signature header does not match the body", code="signature")


def parse(body: bytes) -> list[Notification]:
    """Every synced record a notification body names (other entities are left out). A Merge also
    names the record merged away, which no longer exists."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MalformedNotification("Webhook body is not JSON", code="webhook") from exc
    if isinstance(payload, dict) and "eventNotifications" in payload:
        return list(_legacy(payload))
    if isinstance(payload, list):
        return list(_cloud_events(payload))
    raise MalformedNotification("Webhook body is neither eventNotifications nor a CloudEvents array", code="webhook")


def _legacy(payload: dict):
    for notification in payload.get("eventNotifications") or []:
        realm_id = str(notification.get("realmId") or "")
        entities = (notification.get("dataChangeEvent") or {}).get("entities") or []
        for event in entities:
            entity = CANONICAL_ENTITY.get(str(event.get("name") or ""))
            if entity is None or not realm_id or not event.get("id"):
                continue
            operation = str(event.get("operation") or "")
            yield Notification(realm_id, entity, str(event["id"]), operation)
            if operation == "Merge" and event.get("deletedId"):
                yield Notification(realm_id, entity, str(event["deletedId"]), "Delete")


def _cloud_events(payload: list):
    for event in payload:
        if not isinstance(event, dict):
            continue
        # type is qbo.<entity>.<verb>.v1
        parts = str(event.get("type") or "").split(".")
        if len(parts) < 3 or parts[0] != "qbo":
            continue
        entity = CANONICAL_ENTITY.get(_QBO_BY_LOWER.get(parts[1], ""))
        realm_id = str(event.get("intuitaccountid") or "")
        remote_id = str(event.get("intuitentityid") or "")
        if entity is None or not realm_id or not remote_id:
            continue
        operation = _CLOUD_EVENT_OPERATIONS.get(parts[2], parts[2].capitalize())
        yield Notification(realm_id, entity, remote_id, operation)
        deleted_id = (event.get("data") or {}).get("deletedId") if isinstance(event.get("data"), dict) else None
        if operation == "Merge" and deleted_id:
            yield Notification(realm_id, entity, str(deleted_id), "Delete")


def verified_notifications(
    body: bytes, headers: Mapping[str, str], *, verifier_token: str | None = None
) -> list[Notification]:
    """The notifications of a signed body; InvalidSignature when the signature is wrong."""
    token = verifier_token if verifier_token is not None else settings.QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN
    signature = next((value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER), None)
    verify_signature(body, signature, token)
    return parse(body)


def sign(body: bytes, verifier_token: str) -> str:
    """The header value Intuit would send with `body` (for tests and the simulator's emitter)."""
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()
