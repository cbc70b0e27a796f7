"""Signed change notifications to one configured URL (contract §13).

Events are aggregated for a short window (1 s by default) and POSTed as one body — the legacy
`eventNotifications` shape or a CloudEvents array — with `intuit-signature` =
base64(HMAC-SHA256(verifier token, raw body)). A failed delivery (network error or non-2xx) is
retried with exponential backoff a few times, then given up and counted.

Delivery runs on its own thread with real (monotonic) time: it is about the network, not about
the simulated clock. `flush()` delivers everything pending now, synchronously, for tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from . import wire

LEGACY = "legacy"
CLOUDEVENTS = "cloudevents"
_VERBS = {
    "Create": "created",
    "Update": "updated",
    "Delete": "deleted",
    "Void": "voided",
    "Merge": "merged",
    "Emailed": "emailed",
}


@dataclass(frozen=True)
class WebhookSettings:
    url: str = ""
    verifier_token: str = ""
    format: str = LEGACY
    window_seconds: float = 1.0
    retries: int = 3
    backoff_seconds: float = 1.0
    timeout_seconds: float = 5.0


def update_settings(current: WebhookSettings, changes: dict[str, Any]) -> WebhookSettings:
    known = set(WebhookSettings.__dataclass_fields__)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown webhook setting(s): {', '.join(unknown)}")
    updated = replace(current, **changes)
    if updated.format not in {LEGACY, CLOUDEVENTS}:
        raise ValueError(f"format must be {LEGACY!r} or {CLOUDEVENTS!r}")
    if updated.window_seconds < 0 or updated.retries < 0 or updated.backoff_seconds < 0:
        raise ValueError("window, retries and backoff must not be negative")
    return updated


def sign(body: bytes, verifier_token: str) -> str:
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


def legacy_body(events: list[dict[str, Any]]) -> dict[str, Any]:
    by_realm: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        entity = {
            "name": event["name"],
            "id": event["id"],
            "operation": event["operation"],
            "lastUpdated": event["lastUpdated"],
        }
        if event.get("deletedId"):
            entity["deletedId"] = event["deletedId"]
        by_realm.setdefault(event["realmId"], []).append(entity)
    return {
        "eventNotifications": [
            {"realmId": realm_id, "dataChangeEvent": {"entities": entities}} for realm_id, entities in by_realm.items()
        ]
    }


def cloudevents_body(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = []
    for event in events:
        verb = _VERBS.get(event["operation"], event["operation"].lower())
        body.append(
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "intuit.quickbooks-simulator",
                "type": f"qbo.{event['name'].lower()}.{verb}.v1",
                "datacontenttype": "application/json",
                "time": event["lastUpdated"],
                "intuitentityid": event["id"],
                "intuitaccountid": event["realmId"],
                "data": {"deletedId": event["deletedId"]} if event.get("deletedId") else {},
            }
        )
    return body


@dataclass
class _Delivery:
    body: bytes
    events: int
    attempt: int = 0
    due: float = 0.0


class WebhookEmitter:
    def __init__(self, settings: WebhookSettings, *, on_result: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.settings = settings
        self._on_result = on_result
        self._condition = threading.Condition()
        self._pending: list[dict[str, Any]] = []
        self._window_started: float | None = None
        self._retries: list[_Delivery] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=200)
        self.recent_events: deque[dict[str, Any]] = deque(maxlen=500)
        self.counters = {"events": 0, "posts": 0, "delivered": 0, "failed_attempts": 0, "given_up": 0}

    # --- configuration and lifecycle ----------------------------------------------------------

    def configure(self, settings: WebhookSettings) -> None:
        with self._condition:
            self.settings = settings
            self._condition.notify_all()

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="qbo-sim-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def clear(self) -> None:
        with self._condition:
            self._pending.clear()
            self._retries.clear()
            self._window_started = None
            self.deliveries.clear()
            self.recent_events.clear()
            for key in self.counters:
                self.counters[key] = 0

    # --- events -------------------------------------------------------------------------------

    def record(
        self, realm_id: str, entity: str, object_id: str, operation: str, when: datetime, deleted_id: str | None
    ) -> None:
        event = {
            "realmId": realm_id,
            "name": entity,
            "id": object_id,
            "operation": operation,
            "lastUpdated": wire.webhook_text(when),
        }
        if deleted_id:
            event["deletedId"] = deleted_id
        with self._condition:
            self.counters["events"] += 1
            self.recent_events.append(event)
            if not self.settings.url:
                return
            # Within one window QBO reports an object's operation once, with the latest time.
            self._pending = [
                pending
                for pending in self._pending
                if (pending["realmId"], pending["name"], pending["id"], pending["operation"])
                != (realm_id, entity, object_id, operation)
            ]
            self._pending.append(event)
            if self._window_started is None:
                self._window_started = time.monotonic()
            self._condition.notify_all()

    @property
    def pending_count(self) -> int:
        with self._condition:
            return len(self._pending)

    def flush(self) -> list[dict[str, Any]]:
        """Deliver pending events and due-or-not retries now; return the attempts' outcomes."""
        with self._condition:
            batch = self._take_batch()
            retries, self._retries = self._retries, []
        deliveries = ([batch] if batch else []) + retries
        return [self._deliver(delivery) for delivery in deliveries]

    # --- internals ----------------------------------------------------------------------------

    def _take_batch(self) -> _Delivery | None:
        if not self._pending:
            self._window_started = None
            return None
        events, self._pending = self._pending, []
        self._window_started = None
        payload: Any = legacy_body(events) if self.settings.format == LEGACY else cloudevents_body(events)
        return _Delivery(body=wire.dumps(payload).encode(), events=len(events))

    def _deliver(self, delivery: _Delivery) -> dict[str, Any]:
        settings = self.settings
        delivery.attempt += 1
        outcome: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "url": settings.url,
            "attempt": delivery.attempt,
            "events": delivery.events,
            "status": None,
            "error": "",
        }
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's configured webhook
            settings.url,
            data=delivery.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "intuit-signature": sign(delivery.body, settings.verifier_token),
                "intuit-t-id": str(uuid.uuid4()),
                "User-Agent": "quickbooks-simulator-webhooks/1.0",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as response:  # noqa: S310
                outcome["status"] = response.status
        except urllib.error.HTTPError as error:
            outcome["status"] = error.code
        except (urllib.error.URLError, OSError, ValueError) as error:
            outcome["error"] = str(error)
        success = outcome["status"] is not None and 200 <= outcome["status"] < 300
        with self._condition:
            self.counters["posts"] += 1
            if success:
                self.counters["delivered"] += 1
            else:
                self.counters["failed_attempts"] += 1
                if delivery.attempt <= settings.retries:
                    delivery.due = time.monotonic() + settings.backoff_seconds * 2 ** (delivery.attempt - 1)
                    self._retries.append(delivery)
                    outcome["retry_in_seconds"] = settings.backoff_seconds * 2 ** (delivery.attempt - 1)
                else:
                    self.counters["given_up"] += 1
            self.deliveries.append(outcome)
            self._condition.notify_all()
        if self._on_result is not None:
            self._on_result(outcome)
        return outcome

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    wait: float | None = None
                    due: list[_Delivery] = []
                    batch = None
                    if self._window_started is not None:
                        ready_at = self._window_started + self.settings.window_seconds
                        if now >= ready_at:
                            batch = self._take_batch()
                        else:
                            wait = ready_at - now
                    for delivery in list(self._retries):
                        if delivery.due <= now:
                            self._retries.remove(delivery)
                            due.append(delivery)
                        else:
                            wait = min(wait, delivery.due - now) if wait is not None else delivery.due - now
                    if batch or due:
                        break
                    self._condition.wait(timeout=wait)
            for delivery in ([batch] if batch else []) + due:
                self._deliver(delivery)
