"""HTTP to the QuickBooks Online Accounting API v3, in the engine's error vocabulary.

Wire contract: shared/contracts/quickbooks.md. The client owns one realm's requests: the bearer
token (refreshed before expiry and once after a 401), `minorversion` and `requestid`, pacing
through the tenant's limiter, the circuit breaker, the Fault envelopes (capitalised JSON, the
lower-case 401 variant, XML) and an archive record of every exchange. It speaks QBO's JSON
(PascalCase entity names such as "Invoice", "CreditMemo"); canonical records are the adapter's.

Amounts stay `Decimal` both ways: responses are parsed with `parse_float=Decimal` and request
bodies are written with Decimals as plain JSON numbers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings

from integrations.core.errors import (
    AccessTokenExpired,
    RateLimited,
    ReauthorizationRequired,
    RemoteNotFound,
    StaleVersion,
    SyncError,
    TransientError,
    ValidationRejected,
)
from integrations.core.throttle import CircuitBreaker, TenantLimiter, backoff_delay, retry_after_seconds
from integrations.core.tokens import TokenStore

from .oauth import QuickBooksOAuth

MAX_RESULTS = 1000
BATCH_LIMIT = 30
MAX_REQUEST_ID = 50
# Intuit: "wait 60 seconds before retrying" a 429 that names no delay.
DEFAULT_RETRY_AFTER = 60.0
# A request whose response was lost is resent at most this many times, and only when resending
# cannot do the work twice (see QuickBooksClient._call).
LOST_RESPONSE_RETRIES = 2
# Entities whose void is a sparse update with include=void rather than operation=void (§1).
VOID_BY_UPDATE = frozenset({"Payment", "SalesReceipt"})
_QUERY_RESPONSE_COUNTERS = frozenset({"startPosition", "maxResults", "totalCount"})

Recorder = Callable[[dict], None]


class QuickBooksClient:
    def __init__(
        self,
        *,
        realm_id: str,
        tokens: TokenStore,
        oauth: QuickBooksOAuth,
        api_url: str | None = None,
        minor_version: int | None = None,
        limiter: TenantLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        recorder: Recorder | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        slot_timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.realm_id = realm_id
        self.tokens = tokens
        self.oauth = oauth
        self.api_url = (api_url or settings.QUICKBOOKS_API_URL).rstrip("/")
        self.minor_version = minor_version if minor_version is not None else settings.QUICKBOOKS_MINOR_VERSION
        self.limiter = limiter
        self.breaker = breaker
        self.recorder = recorder
        self.slot_timeout = slot_timeout
        self._http = http or httpx.Client(timeout=timeout)
        self._sleep = sleep

    # --- Entities -----------------------------------------------------------------------------

    def get(self, entity: str, remote_id: str) -> dict:
        body = self._call("GET", f"{entity.lower()}/{remote_id}", idempotent=True)
        return _entity(body, entity)

    def create(self, entity: str, body: dict, *, request_id: str) -> dict:
        return self._write(entity, body, request_id=request_id)

    def update(self, entity: str, body: dict, *, request_id: str) -> dict:
        """A full update: every writable field QBO does not receive is cleared (§1)."""
        return self._write(entity, {**body, "sparse": False}, request_id=request_id)

    def sparse_update(self, entity: str, body: dict, *, request_id: str) -> dict:
        return self._write(entity, {**body, "sparse": True}, request_id=request_id)

    def void(self, entity: str, remote_id: str, sync_token: str, *, request_id: str) -> dict:
        if entity in VOID_BY_UPDATE:
            params = {"operation": "update", "include": "void"}
            body = {"Id": remote_id, "SyncToken": sync_token, "sparse": True}
        else:
            params = {"operation": "void"}
            body = {"Id": remote_id, "SyncToken": sync_token}
        return self._write(entity, body, request_id=request_id, params=params)

    def delete(self, entity: str, remote_id: str, sync_token: str, *, request_id: str) -> dict:
        body = {"Id": remote_id, "SyncToken": sync_token}
        return self._write(entity, body, request_id=request_id, params={"operation": "delete"})

    def _write(self, entity: str, body: dict, *, request_id: str, params: dict | None = None) -> dict:
        response = self._call(
            "POST", entity.lower(), json_body=body, params=params, request_id=request_id, idempotent=bool(request_id)
        )
        return _entity(response, entity)

    # --- Reads --------------------------------------------------------------------------------

    def query(self, sql: str) -> dict:
        """The `QueryResponse` object of one query (no entity key when nothing matched)."""
        body = self._call("POST", "query", text_body=sql, idempotent=True)
        return body.get("QueryResponse") or {}

    def query_all(self, sql: str, *, page_size: int = MAX_RESULTS) -> Iterator[dict]:
        """Every row of `sql` (which must not page itself), one page in memory at a time."""
        start = 1
        while True:
            rows = query_rows(self.query(f"{sql} STARTPOSITION {start} MAXRESULTS {page_size}"))
            yield from rows
            if len(rows) < page_size:
                return
            start += page_size

    def cdc(self, entities: Sequence[str], changed_since: datetime) -> dict[str, list[dict]]:
        """Change Data Capture: entity → changed objects (deleted ones are `status: Deleted` stubs)."""
        params = {"entities": ",".join(entities), "changedSince": changed_since.isoformat(timespec="seconds")}
        body = self._call("GET", "cdc", params=params, idempotent=True)
        found: dict[str, list[dict]] = {entity: [] for entity in entities}
        for response in body.get("CDCResponse") or []:
            for element in response.get("QueryResponse") or []:
                for entity in entities:
                    found[entity].extend(element.get(entity) or [])
        return found

    def batch(self, items: Sequence[dict], *, request_id: str = "") -> dict[str, dict]:
        """Up to 30 operations in one call; the answers by `bId` (QBO may reorder them).

        An item's Fault stays in its answer for the caller to map (`fault_error`); a bId missing
        from the answer is the caller's to treat as not done."""
        if len(items) > BATCH_LIMIT:
            raise ValueError(f"QBO takes at most {BATCH_LIMIT} operations per batch, got {len(items)}")
        body = self._call(
            "POST",
            "batch",
            json_body={"BatchItemRequest": list(items)},
            request_id=request_id,
            idempotent=bool(request_id),
        )
        return {str(answer.get("bId")): answer for answer in body.get("BatchItemResponse") or []}

    # --- The exchange -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: dict | None = None,
        text_body: str | None = None,
        request_id: str = "",
        idempotent: bool,
    ) -> dict:
        if len(request_id) > MAX_REQUEST_ID:
            raise ValueError(f"QBO takes request ids of at most {MAX_REQUEST_ID} characters: {request_id!r}")
        url = f"{self.api_url}/company/{self.realm_id}/{path}"
        query: dict[str, Any] = {**(params or {}), "minorversion": self.minor_version}
        if request_id:
            query["requestid"] = request_id
        headers = {"Accept": "application/json"}
        content: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            content = encode_json(json_body).encode()
        elif text_body is not None:
            headers["Content-Type"] = "application/text"
            content = text_body.encode()

        refreshed = False
        lost = 0
        while True:
            access_token = self._access_token()
            try:
                response = self._exchange(method, url, query, headers, content, access_token, request_id)
            except httpx.TransportError as exc:
                # Single requests are otherwise not retried here (the engine retries with backoff
                # and sees every failure). The exception is a response lost to a timeout or a
                # dropped connection, resent only when resending cannot do the work twice: a read,
                # or a write carrying a requestid that QBO answers by replaying the first result.
                if idempotent and lost < LOST_RESPONSE_RETRIES:
                    self._sleep(backoff_delay(lost, base=0.5, cap=5.0))
                    lost += 1
                    continue
                raise TransientError(f"QuickBooks did not answer {method} {path}: {exc!r}", code="network") from exc
            if response.status_code == 401 and not refreshed:
                # Never read the 401 body for logic (§3.3): refresh once, then retry once.
                refreshed = True
                self._refresh(refused=access_token)
                continue
            return self._interpret(response, path)

    def _exchange(
        self,
        method: str,
        url: str,
        query: dict,
        headers: dict[str, str],
        content: bytes | None,
        access_token: str,
        request_id: str,
    ) -> httpx.Response:
        if self.breaker is not None:
            self.breaker.before_call()
        record = {
            "method": method,
            "url": str(httpx.URL(url, params=query)),
            "request_headers": dict(headers),
            "request_body": content.decode() if content else "",
            "request_id": request_id,
        }
        started = time.monotonic()
        try:
            if self.limiter is not None:
                with self.limiter.slot(timeout=self.slot_timeout):
                    response = self._send(method, url, query, headers, content, access_token)
            else:
                response = self._send(method, url, query, headers, content, access_token)
        except httpx.TransportError as exc:
            if self.breaker is not None:
                self.breaker.record_failure()
            self._record(record, started, status=None, headers={}, body="", error=repr(exc))
            raise
        self._record(record, started, status=response.status_code, headers=dict(response.headers), body=response.text)
        if self.limiter is not None:
            self.limiter.observe(response.headers)
        if self.breaker is not None:
            # Any answer below 500, a 429 included, shows the server working as designed.
            if response.status_code >= 500:
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
        return response

    def _send(self, method, url, query, headers, content, access_token) -> httpx.Response:
        return self._http.request(
            method, url, params=query, content=content, headers={**headers, "Authorization": f"Bearer {access_token}"}
        )

    def _record(self, record: dict, started: float, *, status, headers, body, error: str = "") -> None:
        if self.recorder is None:
            return
        self.recorder(
            {
                **record,
                "status": status,
                "response_headers": headers,
                "response_body": body,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
                "error": error,
            }
        )

    def _interpret(self, response: httpx.Response, path: str) -> dict:
        status = response.status_code
        body = parse_json(response.text)
        fault = find_fault(body, response.text)
        if status == 401:
            raise AccessTokenExpired("QuickBooks refused a freshly refreshed access token", code="401", payload=fault)
        if status == 429 or (fault is not None and fault["code"] == "3001"):
            retry_after = retry_after_seconds(response.headers.get("Retry-After")) or DEFAULT_RETRY_AFTER
            if self.limiter is not None:
                self.limiter.pause(retry_after)
            raise RateLimited(
                f"QuickBooks is throttling this company (HTTP {status})",
                retry_after=retry_after,
                code="3001",
                payload=fault,
            )
        if status >= 500:
            detail = _describe(fault) if fault else response.text[:200]
            raise TransientError(f"QuickBooks failed with HTTP {status}: {detail}", code=str(status), payload=fault)
        if status == 403:
            error = ReauthorizationRequired(
                f"QuickBooks refused access to company {self.realm_id} (HTTP 403"
                f"{': ' + _describe(fault) if fault else ''}); reconnect it.",
                code=fault["code"] if fault else "403",
                payload=fault,
            )
            self.tokens.reauthorization_required(str(error))
            raise error
        if fault is not None:
            error = fault_error(fault)
            if isinstance(error, ReauthorizationRequired):
                self.tokens.reauthorization_required(str(error))
            raise error
        if status >= 400:
            raise SyncError(f"QuickBooks answered HTTP {status} to {path}: {response.text[:200]}", code=str(status))
        if not isinstance(body, dict):
            raise TransientError(f"QuickBooks answered {path} with a body that is not JSON: {response.text[:200]!r}")
        return body

    # --- Tokens -------------------------------------------------------------------------------

    def _access_token(self) -> str:
        tokens = self.tokens.current()
        if tokens.access_is_fresh():
            return tokens.access_token
        return self._refresh(refused="")

    def _refresh(self, *, refused: str) -> str:
        try:
            return self.tokens.refresh(self.oauth.refresh, refused=refused).access_token
        except ReauthorizationRequired as exc:
            self.tokens.reauthorization_required(str(exc))
            raise

    def close(self) -> None:
        self._http.close()


# --- Envelopes ------------------------------------------------------------------------------------


def parse_json(text: str) -> Any:
    """The body as JSON with exact Decimals, or None when it is not JSON (XML, HTML, empty)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        return None


_XML_FAULT = re.compile(r"<Fault\b(?P<attrs>[^>]*)>(?P<inner>.*?)</Fault>", re.S)
_XML_ERROR = re.compile(r"<Error\b(?P<attrs>[^>]*)>(?P<inner>.*?)</Error>", re.S)
_XML_TAG = "<{0}>(.*?)</{0}>"


def _xml_attribute(attrs: str, name: str) -> str:
    found = re.search(rf'\b{name}="([^"]*)"', attrs)
    return found.group(1) if found else ""


def find_fault(body: Any, text: str = "") -> dict | None:
    """The first error of a Fault envelope as {type, code, message, detail, element}, whatever shape
    it came in: `Fault`/`Error` (capitalised keys), the 401 `fault`/`error` variant, or XML. The
    XML is read with patterns rather than a parser: only these few fields are needed, and a
    pattern cannot be made to expand entities."""
    if isinstance(body, dict):
        for fault_key, error_key, keys in (
            ("Fault", "Error", ("Message", "Detail")),
            ("fault", "error", ("message", "detail")),
        ):
            fault = body.get(fault_key)
            if isinstance(fault, dict):
                errors = fault.get(error_key) or [{}]
                first = errors[0] if isinstance(errors[0], dict) else {}
                return {
                    "type": str(fault.get("type") or ""),
                    "code": str(first.get("code") or ""),
                    "message": str(first.get(keys[0]) or ""),
                    "detail": str(first.get(keys[1]) or ""),
                    "element": str(first.get("element") or ""),
                    "errors": errors,
                }
        return None
    match = _XML_FAULT.search(text or "")
    if match is None:
        return None
    error = _XML_ERROR.search(match.group("inner"))
    inner = error.group("inner") if error else ""

    def tag(name: str) -> str:
        found = re.search(_XML_TAG.format(name), inner, re.S)
        return _xml_text(found.group(1)) if found else ""

    return {
        "type": _xml_attribute(match.group("attrs"), "type"),
        "code": _xml_attribute(error.group("attrs"), "code") if error else "",
        "message": tag("Message") or _xml_text(re.sub(r"<[^>]+>", "", inner)),
        "detail": tag("Detail"),
        "element": "",
        "errors": [],
    }


def _xml_text(value: str) -> str:
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        value = value.replace(entity, char)
    return value.strip()


def _describe(fault: dict) -> str:
    parts = [part for part in (fault["code"], fault["message"]) if part]
    text = " ".join(parts)
    if fault["detail"] and fault["detail"] != fault["message"]:
        text = f"{text}: {fault['detail']}" if text else fault["detail"]
    return text or fault["type"] or "unknown fault"


# Codes whose meaning is not "the content was refused" (§10).
_FAULTS_BY_CODE: dict[str, type[SyncError]] = {
    "5010": StaleVersion,
    "610": RemoteNotFound,
    "3200": AccessTokenExpired,
    "100": AccessTokenExpired,
    "3100": ReauthorizationRequired,
    "120": ReauthorizationRequired,
}


def fault_error(fault: dict) -> SyncError:
    """The engine's error for one Fault (also used for a batch item's Fault)."""
    message = f"QuickBooks {_describe(fault)}"
    code = fault["code"]
    if code == "3001":
        return RateLimited(message, retry_after=DEFAULT_RETRY_AFTER, code=code, payload=fault)
    if code in _FAULTS_BY_CODE:
        return _FAULTS_BY_CODE[code](message, code=code, payload=fault)
    if fault["type"] == "SystemFault" or (code.isdigit() and int(code) >= 10000):
        # Intuit's own failure, not our content: worth retrying as it is.
        return TransientError(message, code=code, payload=fault)
    return ValidationRejected(message, code=code, payload=fault)


def _entity(body: dict, entity: str) -> dict:
    found = body.get(entity)
    if not isinstance(found, dict):
        raise TransientError(f"QuickBooks answered without a {entity}: {str(body)[:200]}")
    return found


def query_rows(query_response: dict) -> list[dict]:
    """The rows of a QueryResponse, whatever the entity key (absent when nothing matched)."""
    for key, value in query_response.items():
        if key not in _QUERY_RESPONSE_COUNTERS and isinstance(value, list):
            return value
    return []


def encode_json(value: Any) -> str:
    """JSON with Decimals written as exact numbers (the standard encoder would need floats)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent to QuickBooks")
        return format(value, "f")
    if isinstance(value, datetime | date):
        return json.dumps(value.isoformat())
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(key))}:{encode_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode_json(item) for item in value) + "]"
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    raise TypeError(f"cannot encode {type(value).__name__} for QuickBooks")
