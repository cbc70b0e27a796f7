"""Signed webhook deliveries to one configured URL, and the intent-to-receive check (contract §12).

Events (CONTACT, INVOICE, CREDITNOTE × CREATE/UPDATE; archive, void, delete and payments arrive
as UPDATE) are aggregated for a short window (1 s by default) and POSTed as one
`{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}` body with
`x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)). Xero expects 200 with an empty
body within 5 seconds; anything else is a failed attempt, retried with exponential backoff a
few times, then given up and counted.

Intent to receive: `intent_to_receive()` sends one correctly and one wrongly signed POST with
no events and reports whether the receiver answered 200 and 401 as Xero requires.

Delivery runs on its own thread with real (monotonic) time: it is about the network, not the
simulated clock. `flush()` delivers everything pending now, synchronously, for tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from . import wire

CATEGORIES = ("CONTACT", "INVOICE", "CREDITNOTE")
_PATHS = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "CreditNotes"}
RESOURCE_BASE = "https://api.xero.com/api.xro/2.0"


@dataclass(frozen=True)
class WebhookSettings:
    url: str = ""
    key: str = ""
    categories: tuple[str, ...] = CATEGORIES
    window_seconds: float = 1.0
    retries: int = 3
    backoff_seconds: float = 1.0
    timeout_seconds: float = 5.0


def update_settings(current: WebhookSettings, changes: dict[str, Any]) -> WebhookSettings:
    known = set(WebhookSettings.__dataclass_fields__)
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown webhook setting(s): {', '.join(unknown)}")
    if "categories" in changes:
        changes = {**changes, "categories": tuple(str(item).upper() for item in changes["categories"])}
    updated = replace(current, **changes)
    if set(updated.categories) - set(CATEGORIES):
        raise ValueError(f"categories must be chosen from {', '.join(CATEGORIES)}")
    if updated.window_seconds < 0 or updated.retries < 0 or updated.backoff_seconds < 0:
        raise ValueError("window, retries and backoff must not be negative")
    return updated


def sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def _entropy() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))


def payload(events: list[dict[str, Any]], first_sequence: int, last_sequence: int) -> dict[str, Any]:
    return {
        "events": events,
        "firstEventSequence": first_sequence,
        "lastEventSequence": last_sequence,
        "entropy": _entropy(),
    }


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
        self._sequence = 0
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
        self._thread = threading.Thread(target=self._run, name="xero-sim-webhooks", daemon=True)
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
            self._sequence = 0
            self.deliveries.clear()
            self.recent_events.clear()
            for key in self.counters:
                self.counters[key] = 0

    # --- events -------------------------------------------------------------------------------

    def record(
        self,
        tenant_id: str,
        category: str,
        resource_id: str,
        event_type: str,
        when: datetime,
        data: dict[str, Any] | None = None,
    ) -> None:
        event: dict[str, Any] = {
            "resourceUrl": f"{RESOURCE_BASE}/{_PATHS[category]}/{resource_id}",
            "resourceId": resource_id,
            "eventDateUtc": wire.webhook_text(when),
            "eventType": event_type,
            "eventCategory": category,
            "tenantId": tenant_id,
            "tenantType": "ORGANISATION",
        }
        if data is not None:
            event["data"] = dict(data)
        with self._condition:
            self.counters["events"] += 1
            self.recent_events.append(event)
            if not self.settings.url or category not in self.settings.categories:
                return
            # Within one window a resource's CREATE absorbs its UPDATEs, and UPDATEs collapse
            # into the latest one.
            earlier = next(
                (
                    pending
                    for pending in self._pending
                    if (pending["tenantId"], pending["resourceId"]) == (tenant_id, resource_id)
                ),
                None,
            )
            if earlier is not None:
                self._pending.remove(earlier)
                if earlier["eventType"] == "CREATE":
                    event["eventType"] = "CREATE"
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

    # --- intent to receive --------------------------------------------------------------------

    def intent_to_receive(self, url: str | None = None) -> dict[str, Any]:
        """Xero's validation of a webhook URL: one correctly signed and one wrongly signed POST
        with no events. Passes when the receiver answers 200 (empty body) and 401."""
        settings = self.settings
        target = url or settings.url
        if not target:
            raise ValueError("no webhook URL is configured")
        with self._condition:
            self._sequence += 1
            sequence = self._sequence
        results = {}
        for kind in ("correctly_signed", "incorrectly_signed"):
            body = wire.dumps(payload([], sequence, sequence)).encode()
            signature = sign(body, settings.key)
            if kind == "incorrectly_signed":
                signature = sign(body, settings.key + "-not-the-key")
            results[kind] = self._post(target, body, signature)
        good, bad = results["correctly_signed"], results["incorrectly_signed"]
        good["expected"], bad["expected"] = 200, 401
        good["ok"] = good["status"] == 200 and good["empty_body"] and good["seconds"] < settings.timeout_seconds
        bad["ok"] = bad["status"] == 401
        return {"url": target, "passed": good["ok"] and bad["ok"], **results}

    # --- internals ----------------------------------------------------------------------------

    def _take_batch(self) -> _Delivery | None:
        if not self._pending:
            self._window_started = None
            return None
        events, self._pending = self._pending, []
        self._window_started = None
        first = self._sequence + 1
        self._sequence += len(events)
        body = wire.dumps(payload(events, first, self._sequence)).encode()
        return _Delivery(body=body, events=len(events))

    def _post(self, url: str, body: bytes, signature: str) -> dict[str, Any]:
        outcome: dict[str, Any] = {"status": None, "empty_body": False, "error": "", "seconds": 0.0}
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's configured webhook
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "x-xero-signature": signature,
                "User-Agent": "xero-simulator-webhooks/1.0",
            },
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_seconds) as response:  # noqa: S310
                outcome["status"] = response.status
                outcome["empty_body"] = response.read() == b""
        except urllib.error.HTTPError as error:
            outcome["status"] = error.code
        except (urllib.error.URLError, OSError, ValueError) as error:
            outcome["error"] = str(error)
        outcome["seconds"] = round(time.monotonic() - started, 3)
        return outcome

    def _deliver(self, delivery: _Delivery) -> dict[str, Any]:
        settings = self.settings
        delivery.attempt += 1
        outcome: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "url": settings.url,
            "attempt": delivery.attempt,
            "events": delivery.events,
        }
        outcome.update(self._post(settings.url, delivery.body, sign(delivery.body, settings.key)))
        success = outcome["status"] == 200
        with self._condition:
            self.counters["posts"] += 1
            if success:
                self.counters["delivered"] += 1
            else:
                self.counters["failed_attempts"] += 1
                if delivery.attempt <= settings.retries:
                    delay = settings.backoff_seconds * 2 ** (delivery.attempt - 1)
                    delivery.due = time.monotonic() + delay
                    self._retries.append(delivery)
                    outcome["retry_in_seconds"] = delay
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
