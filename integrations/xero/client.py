"""HTTP to Xero's Accounting API (api.xro/2.0), in the engine's error vocabulary.

Wire contract: shared/contracts/xero.md; shapes: vendor/xero-openapi/xero_accounting.yaml. The
client owns one tenant's requests: the bearer token (refreshed before expiry and once after a
401) and the `xero-tenant-id` header, `Accept: application/json` (Xero answers XML without it),
the `Idempotency-Key` of every write, pacing through the tenant's limiter (60 calls a minute, 5 at
once, 5,000 a day), the circuit breaker, Xero's error bodies and an archive record of every
exchange. It speaks Xero's JSON (plural collections such as "Invoices"); canonical records are
the adapter's.

Amounts stay `Decimal` both ways: responses are parsed with `parse_float=Decimal` and request
bodies are written with Decimals as plain JSON numbers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from django.utils import timezone

from integrations.core.errors import (
    AccessTokenExpired,
    DayLimitReached,
    RateLimited,
    ReauthorizationRequired,
    RemoteNotFound,
    SyncError,
    TransientError,
    ValidationRejected,
)
from integrations.core.throttle import CircuitBreaker, TenantLimiter, backoff_delay, retry_after_seconds
from integrations.core.tokens import TokenStore

from .oauth import XeroOAuth, setting

DEFAULT_API_URL = "http://127.0.0.1:8766/api.xro/2.0"
TENANT_HEADER = "xero-tenant-id"
# Xero's longest Idempotency-Key (§9).
MAX_IDEMPOTENCY_KEY = 128
# Records per page Xero serves unless told otherwise (§8).
PAGE_SIZE = 100
# Collections that take `unitdp=4`: unit prices keep four decimals there, as Concord's do.
FOUR_DECIMAL_COLLECTIONS = frozenset({"Items", "Invoices", "CreditNotes"})
# Waits when a 429 names none (Xero always sends Retry-After; these are the fallbacks).
DEFAULT_RETRY_AFTER = {"minute": 60.0, "appminute": 60.0, "concurrent": 1.0, "day": 3600.0}
# A request whose response was lost is resent at most this many times, and only when resending
# cannot do the work twice (a read, or a write with an Idempotency-Key).
LOST_RESPONSE_RETRIES = 2

Recorder = Callable[[dict], None]


class XeroClient:
    def __init__(
        self,
        *,
        tenant_id: str,
        tokens: TokenStore,
        oauth: XeroOAuth,
        api_url: str | None = None,
        limiter: TenantLimiter | None = None,
        breaker: CircuitBreaker | None = None,
        recorder: Recorder | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        slot_timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = timezone.now,
    ):
        self.tenant_id = tenant_id
        self.tokens = tokens
        self.oauth = oauth
        self.api_url = (api_url or setting("XERO_API_URL", DEFAULT_API_URL)).rstrip("/")
        self.limiter = limiter
        self.breaker = breaker
        self.recorder = recorder
        self.slot_timeout = slot_timeout
        self._http = http or httpx.Client(timeout=timeout)
        self._sleep = sleep
        self._clock = clock

    # --- Reads --------------------------------------------------------------------------------

    def get(self, collection: str, remote_id: str) -> dict:
        """One record; RemoteNotFound when Xero has none by that id."""
        body = self._call("GET", f"{collection}/{remote_id}", params=self._unitdp(collection))
        rows = body.get(collection)
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            raise RemoteNotFound(f"Xero answered {collection}/{remote_id} without the record", code="404")
        return rows[0]

    def page(
        self,
        collection: str,
        *,
        page: int | None = None,
        page_size: int = PAGE_SIZE,
        modified_since: datetime | None = None,
        where: str = "",
        order: str = "",
        params: dict | None = None,
    ) -> list[dict]:
        """One page of a collection (`page=None` for collections Xero does not page: Items)."""
        query: dict[str, Any] = {**(params or {}), **self._unitdp(collection)}
        if page is not None:
            query["page"] = page
            query["pageSize"] = page_size
        if where:
            query["where"] = where
        if order:
            query["order"] = order
        headers = {"If-Modified-Since": format_modified_since(modified_since)} if modified_since else {}
        body = self._call("GET", collection, params=query, headers=headers)
        rows = body.get(collection)
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    # --- Writes -------------------------------------------------------------------------------

    def save(self, collection: str, records: Sequence[dict], *, creating: bool, idempotency_key: str) -> list[dict]:
        """Create (PUT, create only) or update (POST) several records in one call, with
        `summarizeErrors=false`: the answer holds every record in request order, each failing one
        carrying its own ValidationErrors (`item_error`), and the call itself succeeds."""
        body = self._call(
            "PUT" if creating else "POST",
            collection,
            params={"summarizeErrors": "false", **self._unitdp(collection)},
            json_body={collection: list(records)},
            idempotency_key=idempotency_key,
        )
        rows = body.get(collection)
        return [row if isinstance(row, dict) else {} for row in rows] if isinstance(rows, list) else []

    def update(self, collection: str, remote_id: str, record: dict, *, idempotency_key: str) -> dict:
        """Update one record (`POST /{collection}/{id}`)."""
        body = self._call(
            "POST",
            f"{collection}/{remote_id}",
            params=self._unitdp(collection),
            json_body={collection: [record]},
            idempotency_key=idempotency_key,
        )
        rows = body.get(collection)
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            raise TransientError(f"Xero answered the update of {collection}/{remote_id} without it", code="answer")
        return rows[0]

    def delete_payment(self, payment_id: str, *, idempotency_key: str) -> dict:
        """Xero's only change to a payment: `POST /Payments/{id}` with Status DELETED (§6)."""
        body = self._call(
            "POST", f"Payments/{payment_id}", json_body={"Status": "DELETED"}, idempotency_key=idempotency_key
        )
        rows = body.get("Payments")
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            raise TransientError(f"Xero answered the delete of payment {payment_id} without it", code="answer")
        return rows[0]

    def delete_item(self, item_id: str) -> None:
        """Items are deleted outright. Deleting twice finds nothing the second time: done."""
        try:
            self._call("DELETE", f"Items/{item_id}", idempotent=True)
        except RemoteNotFound:
            return

    def allocate_credit(self, credit_note_id: str, allocations: Sequence[dict], *, idempotency_key: str) -> list[dict]:
        """Apply a credit note to invoices (`PUT /CreditNotes/{id}/Allocations`, §7)."""
        body = self._call(
            "PUT",
            f"CreditNotes/{credit_note_id}/Allocations",
            params={"summarizeErrors": "false"},
            json_body={"Allocations": list(allocations)},
            idempotency_key=idempotency_key,
        )
        rows = body.get("Allocations")
        return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []

    @staticmethod
    def _unitdp(collection: str) -> dict:
        return {"unitdp": 4} if collection in FOUR_DECIMAL_COLLECTIONS else {}

    # --- The exchange -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: dict | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str = "",
        idempotent: bool | None = None,
    ) -> dict:
        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
            raise ValueError(f"Xero takes idempotency keys of at most {MAX_IDEMPOTENCY_KEY} characters")
        if method != "GET" and method != "DELETE" and not idempotency_key:
            # Every write is keyed, so that a retry after a lost answer is replayed, not repeated.
            raise ValueError(f"A {method} to Xero needs an Idempotency-Key")
        if idempotent is None:
            idempotent = method == "GET" or bool(idempotency_key)
        url = f"{self.api_url}/{path}"
        request_headers = {"Accept": "application/json", TENANT_HEADER: self.tenant_id, **(headers or {})}
        if idempotency_key:
            request_headers["Idempotency-Key"] = idempotency_key
        content: bytes | None = None
        if json_body is not None:
            request_headers["Content-Type"] = "application/json"
            content = encode_json(json_body).encode()

        refreshed = False
        lost = 0
        while True:
            access_token = self._access_token()
            try:
                response = self._exchange(method, url, params or {}, request_headers, content, access_token)
            except httpx.TransportError as exc:
                if idempotent and lost < LOST_RESPONSE_RETRIES:
                    self._sleep(backoff_delay(lost, base=0.5, cap=5.0))
                    lost += 1
                    continue
                raise TransientError(f"Xero did not answer {method} {path}: {exc!r}", code="network") from exc
            if response.status_code == 401 and not refreshed:
                # TokenExpired or a token revoked meanwhile: refresh once, then retry once.
                refreshed = True
                self._refresh(refused=access_token)
                continue
            return self._interpret(response, method, path)

    def _exchange(self, method, url, query, headers, content, access_token) -> httpx.Response:
        if self.breaker is not None:
            self.breaker.before_call()
        record = {
            "method": method,
            "url": str(httpx.URL(url, params=query)),
            "request_headers": dict(headers),
            "request_body": content.decode() if content else "",
            "request_id": headers.get("Idempotency-Key", ""),
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
            # X-MinLimit-Remaining / X-DayLimit-Remaining at 0, or a Retry-After, pause every worker.
            self.limiter.observe(response.headers)
        if self.breaker is not None:
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

    def _interpret(self, response: httpx.Response, method: str, path: str) -> dict:
        status = response.status_code
        if status == 304:
            return {}  # Not Modified: nothing changed since If-Modified-Since
        if status == 204 or (method == "DELETE" and status == 200 and not response.text.strip()):
            return {}  # a delete answered without a body
        body = parse_json(response.text)
        if status == 429:
            raise self._rate_limited(response)
        if status == 401:
            raise AccessTokenExpired(
                f"Xero refused a freshly refreshed access token: {_problem_detail(body) or 'HTTP 401'}",
                code="401",
                payload=body,
            )
        if status == 403:
            error = ReauthorizationRequired(
                f"Xero refused access to organisation {self.tenant_id} (HTTP 403"
                f"{': ' + _problem_detail(body) if _problem_detail(body) else ''}); reconnect it.",
                code="403",
                payload=body,
            )
            self.tokens.reauthorization_required(str(error))
            raise error
        if status == 404:
            raise RemoteNotFound(f"Xero has no {path}", code="404", payload=body)
        if status >= 500:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after and self.limiter is not None:
                self.limiter.pause(retry_after)
            detail = _api_exception_message(body) if isinstance(body, dict) else response.text[:200]
            raise TransientError(f"Xero failed with HTTP {status}: {detail}", code=str(status), payload=body)
        if status == 400:
            raise api_exception_error(body, response.text)
        if status >= 400:
            raise SyncError(f"Xero answered HTTP {status} to {method} {path}: {response.text[:200]}", code=str(status))
        if not isinstance(body, dict):
            raise TransientError(f"Xero answered {path} with a body that is not JSON: {response.text[:200]!r}")
        return body

    def _rate_limited(self, response: httpx.Response) -> RateLimited:
        """A 429, by what X-Rate-Limit-Problem names: a day limit stops the tenant until it
        resets; a minute, app-minute or concurrency limit pauses every worker briefly."""
        problem = (response.headers.get("X-Rate-Limit-Problem") or "").strip().lower()
        if problem not in DEFAULT_RETRY_AFTER:
            problem = "minute"  # unknown names are treated as the commonest limit (§11)
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if retry_after is None:
            retry_after = DEFAULT_RETRY_AFTER[problem]
        if self.limiter is not None:
            self.limiter.pause(retry_after)
        if problem == "day":
            resume_at = self._clock() + timedelta(seconds=retry_after)
            return DayLimitReached(
                f"Xero's daily limit of calls for organisation {self.tenant_id} is reached; calls resume at "
                f"{resume_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC.",
                resume_at=resume_at,
                retry_after=retry_after,
                code="day",
            )
        return RateLimited(
            f"Xero is throttling organisation {self.tenant_id} ({problem} limit)",
            retry_after=retry_after,
            code=problem,
        )

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
    """The body as JSON with exact Decimals, or None when it is not JSON (XML, text, empty)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        return None


def validation_messages(element: dict) -> list[str]:
    return [
        str(error.get("Message") or "")
        for error in element.get("ValidationErrors") or []
        if isinstance(error, dict) and error.get("Message")
    ]


def item_error(row: dict) -> ValidationRejected | None:
    """The refusal of one record in a `summarizeErrors=false` answer, or None when it was saved."""
    messages = validation_messages(row)
    failed = (
        row.get("HasErrors") is True
        or row.get("HasValidationErrors") is True
        or str(row.get("StatusAttributeString") or "").upper() == "ERROR"
        or bool(messages)
    )
    if not failed:
        return None
    return ValidationRejected(
        f"Xero refused it: {'; '.join(messages) or 'a validation error without a message'}",
        code="ValidationException",
        payload=row,
    )


def _api_exception_message(body: dict) -> str:
    messages = [
        message
        for element in body.get("Elements") or []
        if isinstance(element, dict)
        for message in validation_messages(element)
    ]
    return "; ".join(messages) or str(body.get("Message") or body.get("Detail") or "")


def api_exception_error(body: Any, text: str) -> SyncError:
    """The engine's error for a 400: Xero's ApiException envelope (§10)."""
    if not isinstance(body, dict):
        return ValidationRejected(f"Xero refused the request: {text[:200]}", code="400")
    kind = str(body.get("Type") or "")
    message = _api_exception_message(body) or text[:200]
    if kind == "ObjectNotFoundException":
        return RemoteNotFound(f"Xero: {message}", code=kind, payload=body)
    return ValidationRejected(f"Xero refused it: {message}", code=kind or "400", payload=body)


def _problem_detail(body: Any) -> str:
    """The `Detail` of Xero's problem-details bodies (401/403), e.g. "TokenExpired: …"."""
    return str(body.get("Detail") or body.get("Title") or "") if isinstance(body, dict) else ""


def format_modified_since(moment: datetime) -> str:
    """If-Modified-Since as the SDK sends it: a UTC datetime without a zone, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def encode_json(value: Any) -> str:
    """JSON with Decimals written as exact numbers (the standard encoder would need floats)."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be sent to Xero")
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(key))}:{encode_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode_json(item) for item in value) + "]"
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    raise TypeError(f"cannot encode {type(value).__name__} for Xero")
