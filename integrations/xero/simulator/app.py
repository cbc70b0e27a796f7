"""The simulator's WSGI application: Xero's identity endpoints, `/connections`, the Accounting
API under `/api.xro/2.0` and the unauthenticated admin endpoints and pages under `/_simulator/`.

Every Accounting API request passes through the same pipeline: fault decision → (injected token
revocation) → bearer token, `xero-tenant-id` and scope checks (401/403) → the tenant's rate
limits (429) → injected 429/5xx → latency → the handler, which commits → injected drop or
timeout. Every answer past the limiter carries the three remaining-quota headers. Writes that
carry an `Idempotency-Key` store their answer per tenant and replay it for the same key.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import errors, oauth, pages, query, wire
from .errors import Invalid, NotFound, XeroError
from .organisation import ENTITY_PATHS, ID_FIELD, PLURAL, Organisation

if TYPE_CHECKING:
    from .server import XeroSimulator

logger = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
API_PREFIX = "/api.xro/2.0"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
IDEMPOTENCY_KEY_MAX = 128
# Canonical spelling of each Accounting API path segment (Xero's routes ignore case).
_SEGMENTS = {
    name.lower(): name
    for name in ("Contacts", "Items", "Invoices", "Payments", "CreditNotes", "Accounts", "TaxRates", "Organisation")
}
_SEGMENTS["allocations"] = "Allocations"
_FAMILY = {
    "Contacts": "contacts",
    "Items": "settings",
    "Accounts": "settings",
    "TaxRates": "settings",
    "Organisation": "settings",
    "Invoices": "transactions",
    "CreditNotes": "transactions",
    "Payments": "transactions",
}

URL_MAP = Map(
    [
        Rule("/.well-known/openid-configuration", endpoint="discovery"),
        Rule("/identity/connect/authorize", endpoint="authorize", methods=["GET", "POST"]),
        Rule("/connect/token", endpoint="token", methods=["POST"]),
        Rule("/connect/revocation", endpoint="revoke", methods=["POST"]),
        Rule("/connections", endpoint="connections", methods=["GET"]),
        Rule("/connections/<connection_id>", endpoint="delete_connection", methods=["DELETE"]),
        Rule(f"{API_PREFIX}/Organisation", endpoint="api_organisation", methods=["GET"]),
        Rule(f"{API_PREFIX}/TaxRates", endpoint="api_list", methods=["GET"], defaults={"segment": "TaxRates"}),
        Rule(f"{API_PREFIX}/Accounts", endpoint="api_list", methods=["GET"], defaults={"segment": "Accounts"}),
        Rule(
            f"{API_PREFIX}/Accounts/<object_id>", endpoint="api_read", methods=["GET"], defaults={"segment": "Accounts"}
        ),
        Rule(f"{API_PREFIX}/CreditNotes/<object_id>/Allocations", endpoint="api_allocate", methods=["PUT"]),
        Rule(
            f"{API_PREFIX}/CreditNotes/<object_id>/Allocations/<allocation_id>",
            endpoint="api_delete_allocation",
            methods=["DELETE"],
        ),
        Rule(f"{API_PREFIX}/Items/<object_id>", endpoint="api_delete_item", methods=["DELETE"]),
        Rule(f"{API_PREFIX}/Payments", endpoint="api_create_payment", methods=["POST"]),
        Rule(f"{API_PREFIX}/Payments/<object_id>", endpoint="api_delete_payment", methods=["POST"]),
        Rule(
            f"{API_PREFIX}/<any(Contacts,Items,Invoices,Payments,CreditNotes):segment>",
            endpoint="api_list",
            methods=["GET"],
        ),
        Rule(
            f"{API_PREFIX}/<any(Contacts,Items,Invoices,Payments,CreditNotes):segment>",
            endpoint="api_create",
            methods=["PUT"],
        ),
        Rule(
            f"{API_PREFIX}/<any(Contacts,Items,Invoices,CreditNotes):segment>", endpoint="api_upsert", methods=["POST"]
        ),
        Rule(
            f"{API_PREFIX}/<any(Contacts,Items,Invoices,Payments,CreditNotes):segment>/<object_id>",
            endpoint="api_read",
            methods=["GET"],
        ),
        Rule(
            f"{API_PREFIX}/<any(Contacts,Items,Invoices,CreditNotes):segment>/<object_id>",
            endpoint="api_update_one",
            methods=["POST"],
        ),
        Rule("/_simulator/", endpoint="admin_page", methods=["GET"]),
        Rule(
            "/_simulator/ui/<tenant>/invoices/<object_id>/<any(void,delete):action>",
            endpoint="ui_invoice",
            methods=["POST"],
        ),
        Rule("/_simulator/faults", endpoint="admin_faults", methods=["GET", "PUT", "POST"]),
        Rule("/_simulator/limits", endpoint="admin_limits", methods=["GET", "PUT", "POST"]),
        Rule("/_simulator/webhooks", endpoint="admin_webhooks", methods=["GET", "PUT", "POST"]),
        Rule("/_simulator/webhooks/flush", endpoint="admin_webhooks_flush", methods=["POST"]),
        Rule("/_simulator/webhooks/intent-to-receive", endpoint="admin_intent_to_receive", methods=["POST"]),
        Rule("/_simulator/reset", endpoint="admin_reset", methods=["POST"]),
        Rule("/_simulator/save", endpoint="admin_save", methods=["POST"]),
        Rule("/_simulator/clock", endpoint="admin_clock", methods=["GET", "POST", "PUT"]),
        Rule("/_simulator/stats", endpoint="admin_stats", methods=["GET"]),
        Rule("/_simulator/log", endpoint="admin_log", methods=["GET"]),
        Rule("/_simulator/tokens/revoke", endpoint="admin_revoke_tokens", methods=["POST"]),
        Rule("/_simulator/tenants", endpoint="admin_tenants", methods=["GET", "POST"]),
        Rule("/_simulator/tenants/<tenant>/tokens", endpoint="admin_issue_tokens", methods=["POST"]),
        Rule("/_simulator/tenants/<tenant>/<segment>", endpoint="admin_entities", methods=["GET", "POST"]),
        Rule("/_simulator/tenants/<tenant>/<segment>/<object_id>", endpoint="admin_entity", methods=["GET"]),
    ]
)


class _Dropped(ConnectionAbortedError):
    """Raised after the socket was shut: werkzeug treats it as a client that went away."""


class _AdminError(ValueError):
    pass


class Stats:
    """Counters and a bounded log of recent requests, for `/_simulator/stats` and `/log`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.per_tenant: dict[str, Counter[str]] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=2000)

    def count(self, name: str, tenant_id: str | None = None) -> None:
        with self._lock:
            self.counters[name] += 1
            if tenant_id:
                self.per_tenant.setdefault(tenant_id, Counter())[name] += 1

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.counters["requests"] += 1
            self.by_status[str(entry["status"])] += 1
            if entry.get("tenant"):
                self.per_tenant.setdefault(entry["tenant"], Counter())["requests"] += 1
            self.log.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.counters.clear()
            self.by_status.clear()
            self.per_tenant.clear()
            self.log.clear()

    def snapshot(self, peaks: dict[str, int]) -> dict[str, Any]:
        with self._lock:
            tenants = {tenant: dict(counter) for tenant, counter in self.per_tenant.items()}
            for tenant, peak in peaks.items():
                tenants.setdefault(tenant, {})["max_concurrency"] = peak
            counters = dict(self.counters)
            by_problem = {
                problem: counters.get(f"throttled_{problem}", 0)
                for problem in ("minute", "day", "concurrent", "appminute")
            }
            by_problem["injected"] = counters.get("injected_429", 0)
            counters["sent_429"] = sum(by_problem.values())
            return {
                "counters": counters,
                "sent_429_by_problem": by_problem,
                "by_status": dict(self.by_status),
                "tenants": tenants,
            }

    def recent(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.log)[-limit:]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(wire.dumps(body), status=status, content_type=JSON_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _wants_json(request: Request) -> bool:
    return "json" in request.headers.get("Accept", "").lower()


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _canonical_path(path: str) -> str:
    if not path.lower().startswith(API_PREFIX):
        if path.lower().startswith("/connections"):
            return "/connections" + path[len("/connections") :]
        return path
    parts = path[len(API_PREFIX) :].split("/")
    return API_PREFIX + "/".join(_SEGMENTS.get(part.lower(), part) for part in parts)


class SimulatorApp:
    def __init__(self, sim: XeroSimulator) -> None:
        self.sim = sim

    # --- WSGI entry ---------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        started = time.monotonic()
        entry: dict[str, Any] = {
            "at": self.sim.clock.now().isoformat(timespec="milliseconds"),
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode(errors="replace"),
            "tenant": None,
            "fault": None,
        }
        environ["xerosim.log"] = entry
        try:
            response = self.dispatch(request)
        except _Dropped:
            entry["status"] = "dropped"
            entry["ms"] = round((time.monotonic() - started) * 1000, 1)
            self.sim.stats.record(entry)
            raise
        entry["status"] = response.status_code
        entry["ms"] = round((time.monotonic() - started) * 1000, 1)
        # The log and counters describe what clients asked of "Xero", not the admin traffic.
        if not request.path.startswith("/_simulator/"):
            self.sim.stats.record(entry)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = URL_MAP.bind_to_environ(request.environ)
        path = _canonical_path(request.path)
        try:
            endpoint, values = adapter.match(path, method=request.method)
        except HTTPException as error:
            if request.path.lower().startswith(API_PREFIX.lower()) and (error.code or 404) in {404, 405}:
                return Response(errors.NOT_FOUND_TEXT, status=404, content_type="text/plain; charset=utf-8")
            return error.get_response(request.environ)
        try:
            if endpoint.startswith("api_"):
                return self.api(request, endpoint, values)
            return getattr(self, endpoint)(request, **values)
        except _Dropped:
            raise
        except HTTPException as error:
            return error.get_response(request.environ)
        except Exception:
            logger.exception("Xero simulator failed on %s %s", request.method, request.path)
            return json_response(errors.server_error_body(500), status=500)

    # --- the Accounting API pipeline ----------------------------------------------------------

    def api(self, request: Request, endpoint: str, values: dict[str, str]) -> Response:
        sim = self.sim
        tenant_id = request.headers.get("xero-tenant-id", "").strip().lower()
        entry = request.environ["xerosim.log"]
        entry["tenant"] = tenant_id or None
        segment = values.get("segment") or _canonical_path(request.path)[len(API_PREFIX) + 1 :].split("/")[0]
        decision = sim.injector.decide(request.method, request.full_path.rstrip("?"))
        entry["fault"] = decision.kind
        if decision.kind == "revoke" and tenant_id:
            with sim.state.lock:
                sim.oauth.revoke_all(tenant_id)
                sim.state.changed()
            sim.stats.count("injected_revoke", tenant_id)
        with sim.state.lock:
            check = sim.oauth.check_access(
                request.headers.get("Authorization"), tenant_id, _FAMILY[segment], write=request.method != "GET"
            )
            organisation = sim.state.organisation(tenant_id) if tenant_id else None
        if not check.ok or organisation is None:
            status = check.status if not check.ok else 403
            sim.stats.count(f"auth_{status}", tenant_id or None)
            title = "Unauthorized" if status == 401 else "Forbidden"
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else {}
            return json_response(
                errors.problem(status, title, check.detail or "AuthenticationUnsuccessful"), status, headers
            )
        admission = sim.limiter.admit(tenant_id)
        if not admission.admitted:
            sim.stats.count(f"throttled_{admission.problem}", tenant_id)
            return self._throttled(admission.problem, admission.retry_after, admission.headers())
        try:
            if decision.kind == "429":
                sim.stats.count("injected_429", tenant_id)
                settings = sim.injector.settings
                return self._throttled(
                    settings.throttle_problem, settings.injected_retry_after_seconds, admission.headers()
                )
            if decision.kind == "error":
                sim.stats.count("injected_5xx", tenant_id)
                return self._with_headers(self._server_error(decision.status), admission.headers())
            self._wait(decision.latency_seconds)
            handler: Callable[..., Response] = getattr(self, endpoint)
            try:
                response = handler(request, organisation, **values)
            except XeroError as error:
                response = self._error(request, error)
            except NotFound:
                response = Response(errors.NOT_FOUND_TEXT, status=404, content_type="text/plain; charset=utf-8")
            response = self._with_headers(response, admission.headers())
            if decision.kind == "drop":
                sim.stats.count("injected_drop", tenant_id)
                self._drop(request)
            if decision.kind == "timeout":
                sim.stats.count("injected_timeout", tenant_id)
                self._wait(sim.injector.settings.timeout_seconds)
            return response
        finally:
            sim.limiter.release(tenant_id)

    @staticmethod
    def _with_headers(response: Response, headers: dict[str, str]) -> Response:
        for name, value in headers.items():
            response.headers[name] = value
        return response

    def _throttled(self, problem: str, retry_after: int, headers: dict[str, str]) -> Response:
        all_headers = {**headers, "X-Rate-Limit-Problem": problem}
        if self.sim.limiter.settings.retry_after_header:
            all_headers["Retry-After"] = str(retry_after)
        body = errors.problem(429, "Too Many Requests", f"Rate limit exceeded: the {problem} limit was reached")
        return json_response(body, 429, all_headers)

    @staticmethod
    def _server_error(status: int) -> Response:
        if status == 500:
            return json_response(errors.server_error_body(status), status)
        if status == 503:
            return json_response(errors.server_error_body(status), status, {"Retry-After": "1"})
        # 502/504 come from Xero's gateway, not the API: an HTML page.
        title = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}[status]
        body = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
        return Response(body, status=status, content_type="text/html")

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.sim.stopping.wait(seconds)

    @staticmethod
    def _drop(request: Request) -> None:
        """Close the connection without answering. The write has already been committed."""
        connection = request.environ.get("werkzeug.socket")
        if connection is None:
            raise _Dropped("the simulator dropped the response after committing")
        # Linger 0 makes the close an immediate reset; shutting both directions first makes the
        # server's handler see end-of-input and finish quietly.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        raise _Dropped("the simulator dropped the connection after committing")

    # --- answers ------------------------------------------------------------------------------

    def _envelope(self, key: str, records: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": self.sim.config.app_name,
            "DateTimeUTC": wire.ms_datetime(self.sim.clock.now(), offset=False),
        }
        body.update(extra or {})
        body[key] = records
        return body

    @staticmethod
    def _answer(request: Request, body: dict[str, Any], status: int = 200, *, root: str = "Response") -> Response:
        if _wants_json(request):
            return json_response(body, status)
        return Response(wire.to_xml(root, body), status=status, content_type="text/xml; charset=utf-8")

    def _error(self, request: Request, error: XeroError) -> Response:
        return self._answer(request, error.body(), error.status, root="ApiException")

    # --- reads --------------------------------------------------------------------------------

    @staticmethod
    def _unitdp(request: Request) -> int:
        return 4 if request.args.get("unitdp", "").strip() == "4" else 2

    def api_organisation(self, request: Request, organisation: Organisation) -> Response:
        with self.sim.state.lock:
            record = organisation.present_organisation()
        return self._answer(request, self._envelope("Organisations", [record]))

    def api_read(self, request: Request, organisation: Organisation, segment: str, object_id: str) -> Response:
        entity = ENTITY_PATHS[segment.lower()]
        with self.sim.state.lock:
            stored = self._lookup(organisation, entity, object_id)
            record = organisation.present(entity, stored, unitdp=self._unitdp(request), single=True)
        return self._answer(request, self._envelope(PLURAL[entity], [record]))

    @staticmethod
    def _lookup(organisation: Organisation, entity: str, object_id: str) -> dict[str, Any]:
        if entity in ("Invoice", "CreditNote") and not wire.is_guid(object_id):
            number_field = "InvoiceNumber" if entity == "Invoice" else "CreditNoteNumber"
            found = next((row for row in organisation.objects(entity).values() if row[number_field] == object_id), None)
            if found is None:
                raise NotFound(object_id)
            return found
        if entity == "Item" and not wire.is_guid(object_id):
            found = organisation.item_by_code(object_id)
            if found is None:
                raise NotFound(object_id)
            return found
        return organisation.get(entity, object_id)

    def api_list(self, request: Request, organisation: Organisation, segment: str) -> Response:
        entity = ENTITY_PATHS[segment.lower()]
        args = request.args
        try:
            where = query.parse_where(args.get("where", ""))
            order = query.parse_order(args.get("order", ""))
        except query.QueryError as error:
            raise errors.query_parse(str(error)) from error
        since = None
        if request.headers.get("If-Modified-Since"):
            with contextlib.suppress(ValueError, TypeError):
                since = wire.parse_header_datetime(request.headers["If-Modified-Since"])
        page_text = args.get("page", "").strip()
        paged = entity in ("Contact", "Invoice", "CreditNote", "Payment") and bool(page_text)
        page = max(1, int(page_text)) if page_text.isdigit() else 1
        size_text = args.get("pageSize", "").strip()
        page_size = min(MAX_PAGE_SIZE, max(1, int(size_text))) if size_text.isdigit() else DEFAULT_PAGE_SIZE
        unitdp = self._unitdp(request)
        summary_only = _truthy(args.get("summaryOnly"))
        with self.sim.state.lock:
            rows = list(organisation.objects(entity).values())
            rows = [row for row in rows if self._prefilter(entity, row, args, since, organisation)]
            rows.sort(key=lambda row: row.get("_seq", 0))
            # Without `page` Xero returns every invoice but leaves out their line items.
            with_lines = paged and not summary_only
            records = [organisation.present(entity, row, unitdp=unitdp, with_lines=with_lines) for row in rows]
        try:
            records = [record for record in records if where(record)]
        except (TypeError, ValueError) as error:
            raise errors.query_parse(str(error)) from error
        if order:
            records = query.sort_rows(records, order)
        extra: dict[str, Any] = {}
        if paged:
            item_count = len(records)
            page_count = (item_count + page_size - 1) // page_size
            records = records[(page - 1) * page_size : page * page_size]
            extra["pagination"] = {
                "page": page,
                "pageSize": page_size,
                "pageCount": page_count,
                "itemCount": item_count,
            }
        return self._answer(request, self._envelope(PLURAL[entity], records, extra))

    @staticmethod
    def _prefilter(
        entity: str, row: dict[str, Any], args: Any, since: datetime | None, organisation: Organisation
    ) -> bool:
        if since is not None and "_updated" in row and organisation.updated(row) <= since:
            return False
        if entity == "Contact" and row["ContactStatus"] == "ARCHIVED" and not _truthy(args.get("includeArchived")):
            return False
        if _truthy(args.get("createdByMyApp")) and not row.get("_by_app", False):
            return False
        ids = {part.strip().lower() for part in args.get("IDs", "").split(",") if part.strip()}
        if ids and str(row.get(ID_FIELD[entity], "")).lower() not in ids:
            return False
        if entity == "Invoice":
            numbers = {part.strip() for part in args.get("InvoiceNumbers", "").split(",") if part.strip()}
            if numbers and row["InvoiceNumber"] not in numbers:
                return False
            contacts = {part.strip().lower() for part in args.get("ContactIDs", "").split(",") if part.strip()}
            if contacts and row["_contact"] not in contacts:
                return False
            statuses = {part.strip().upper() for part in args.get("Statuses", "").split(",") if part.strip()}
            if statuses and row["Status"] not in statuses:
                return False
        term = args.get("searchTerm", "").strip().lower()
        if term:
            fields = {
                "Contact": ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress", "CompanyNumber"),
                "Invoice": ("InvoiceNumber", "Reference"),
            }.get(entity, ())
            if not any(term in str(row.get(field, "")).lower() for field in fields):
                return False
        return True

    # --- writes -------------------------------------------------------------------------------

    def _body(self, request: Request) -> Any:
        raw = request.get_data(cache=True)
        if not raw.strip():
            raise errors.post_data_invalid("The request body is empty")
        try:
            return wire.loads(raw)
        except ValueError as error:
            raise errors.post_data_invalid(f"Invalid Json data: {error}") from error

    def _records(self, request: Request, key: str) -> list[Any]:
        body = self._body(request)
        if isinstance(body, dict) and isinstance(body.get(key), list):
            return body[key]
        if isinstance(body, dict) and key not in body:
            return [body]
        raise errors.post_data_invalid(f"Expected {{{key!r}: [...]}}")

    def _idempotent(self, request: Request, organisation: Organisation, work: Callable[[], Response]) -> Response:
        """Run a write under the state lock; with an `Idempotency-Key`, store and replay its answer."""
        key = request.headers.get("Idempotency-Key", "")
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise XeroError(errors.VALIDATION, f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX} characters")
        sim = self.sim
        with sim.state.lock:
            if key:
                cached = organisation.replay(key)
                if cached is not None:
                    sim.stats.count("replayed", organisation.tenant_id)
                    return Response(cached["body"], status=cached["status"], content_type=cached["content_type"])
            try:
                response = work()
            except XeroError as error:
                response = self._error(request, error)
            if key:
                organisation.remember(
                    key,
                    status=response.status_code,
                    body=response.get_data(as_text=True),
                    content_type=response.content_type or JSON_TYPE,
                    headers={},
                )
            sim.state.changed()
        return response

    def _batch(
        self,
        request: Request,
        organisation: Organisation,
        entity: str,
        items: list[Any],
        save: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        summarize_default: bool = True,
    ) -> Response:
        """Save each record; report failures per `summarizeErrors` (contract §9)."""
        summarize = request.args.get("summarizeErrors")
        summarize_errors = summarize_default if summarize is None else _truthy(summarize)
        unitdp = self._unitdp(request)
        results: list[dict[str, Any]] = []
        failures: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, dict):
                echo = failure_record(entity, {}, ["Each record must be a JSON object"])
                results.append(echo)
                failures.append(echo)
                continue
            try:
                stored = save(item)
            except Invalid as error:
                echo = failure_record(entity, item, error.messages)
                results.append(echo)
                failures.append(echo)
                continue
            record = organisation.present(entity, stored, unitdp=unitdp)
            if not summarize_errors:
                record["StatusAttributeString"] = "OK"
            results.append(record)
        if failures and summarize_errors:
            raise errors.validation_exception(failures)
        return self._answer(request, self._envelope(PLURAL[entity], results))

    def api_create(self, request: Request, organisation: Organisation, segment: str) -> Response:
        entity = ENTITY_PATHS[segment.lower()]
        items = self._records(request, PLURAL[entity])
        save = self._saver(organisation, entity, create_only=True, unitdp=self._unitdp(request))
        return self._idempotent(request, organisation, lambda: self._batch(request, organisation, entity, items, save))

    def api_upsert(self, request: Request, organisation: Organisation, segment: str) -> Response:
        entity = ENTITY_PATHS[segment.lower()]
        items = self._records(request, PLURAL[entity])
        save = self._saver(organisation, entity, create_only=False, unitdp=self._unitdp(request))
        return self._idempotent(request, organisation, lambda: self._batch(request, organisation, entity, items, save))

    def api_update_one(self, request: Request, organisation: Organisation, segment: str, object_id: str) -> Response:
        entity = ENTITY_PATHS[segment.lower()]
        items = self._records(request, PLURAL[entity])
        with self.sim.state.lock:
            stored = self._lookup(organisation, entity, object_id)
        id_field = ID_FIELD[entity]
        items = [{**item, id_field: stored[id_field]} if isinstance(item, dict) else item for item in items[:1]]
        save = self._saver(organisation, entity, create_only=False, unitdp=self._unitdp(request))
        return self._idempotent(request, organisation, lambda: self._batch(request, organisation, entity, items, save))

    @staticmethod
    def _saver(
        organisation: Organisation, entity: str, *, create_only: bool, unitdp: int
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        if entity == "Contact":
            return lambda body: organisation.save_contact(body, create_only=create_only)
        if entity == "Item":
            return lambda body: organisation.save_item(body, create_only=create_only)
        if entity == "Payment":
            return lambda body: organisation.create_payment(body)
        return lambda body: organisation.save_document(entity, body, create_only=create_only, unitdp=unitdp)

    def api_create_payment(self, request: Request, organisation: Organisation) -> Response:
        """`POST /Payments`: one payment (a bare Payment object per the spec's createPayment)."""
        items = self._records(request, "Payments")[:1]
        return self._idempotent(
            request,
            organisation,
            lambda: self._batch(request, organisation, "Payment", items, organisation.create_payment),
        )

    def api_delete_payment(self, request: Request, organisation: Organisation, object_id: str) -> Response:
        body = self._body(request)
        if isinstance(body, dict) and isinstance(body.get("Payments"), list) and body["Payments"]:
            body = body["Payments"][0]

        def work() -> Response:
            try:
                stored = organisation.delete_payment(object_id, body if isinstance(body, dict) else {})
            except Invalid as error:
                element = failure_record("Payment", {"PaymentID": object_id}, error.messages)
                raise errors.validation_exception([element]) from error
            return self._answer(request, self._envelope("Payments", [organisation.present_payment(stored)]))

        return self._idempotent(request, organisation, work)

    def api_delete_item(self, request: Request, organisation: Organisation, object_id: str) -> Response:
        def work() -> Response:
            try:
                organisation.delete_item(object_id)
            except Invalid as error:
                element = failure_record("Item", {"ItemID": object_id}, error.messages)
                raise errors.validation_exception([element]) from error
            return Response(status=204)

        return self._idempotent(request, organisation, work)

    def api_allocate(self, request: Request, organisation: Organisation, object_id: str) -> Response:
        items = self._records(request, "Allocations")
        with self.sim.state.lock:
            credit_note = organisation.get("CreditNote", object_id)
        summarize = request.args.get("summarizeErrors")
        summarize_errors = True if summarize is None else _truthy(summarize)

        def work() -> Response:
            results, failures = [], []
            for item in items:
                try:
                    allocation = organisation.allocate(
                        credit_note["CreditNoteID"], item if isinstance(item, dict) else {}
                    )
                except Invalid as error:
                    echo = failure_record("Allocation", item if isinstance(item, dict) else {}, error.messages)
                    results.append(echo)
                    failures.append(echo)
                    continue
                record = organisation.present_allocation(credit_note, allocation)
                if not summarize_errors:
                    record["StatusAttributeString"] = "OK"
                results.append(record)
            if failures and summarize_errors:
                raise errors.validation_exception(failures)
            return self._answer(request, self._envelope("Allocations", results))

        return self._idempotent(request, organisation, work)

    def api_delete_allocation(
        self, request: Request, organisation: Organisation, object_id: str, allocation_id: str
    ) -> Response:
        def work() -> Response:
            credit_note = organisation.get("CreditNote", object_id)
            allocation = organisation.delete_allocation(object_id, allocation_id)
            record = organisation.present_allocation(credit_note, allocation)
            if _wants_json(request):
                return json_response(record)
            return Response(wire.to_xml("Allocation", record), content_type="text/xml; charset=utf-8")

        return self._idempotent(request, organisation, work)

    # --- identity -----------------------------------------------------------------------------

    def discovery(self, request: Request) -> Response:
        base = request.host_url.rstrip("/")
        return json_response(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/identity/connect/authorize",
                "token_endpoint": f"{base}/connect/token",
                "revocation_endpoint": f"{base}/connect/revocation",
                "jwks_uri": f"{base}/.well-known/openid-configuration/jwks",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "scopes_supported": oauth.DEFAULT_SCOPE.split(),
            }
        )

    def authorize(self, request: Request) -> Response:
        params = request.form if request.method == "POST" else request.args
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        state_value = params.get("state", "")
        scope = params.get("scope", "")
        sim = self.sim
        if client_id != sim.oauth.settings.client_id:
            return pages.error_page("unauthorized_client", f"No app is registered with client_id {client_id!r}.")
        if not redirect_uri or not sim.oauth.redirect_allowed(redirect_uri):
            return pages.error_page("invalid_redirect_uri", f"{redirect_uri!r} is not registered for this app.")
        if params.get("response_type", "") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", "state": state_value})
        if not any(name.startswith("accounting.") for name in scope.split()):
            return _redirect(redirect_uri, {"error": "invalid_scope", "state": state_value})
        hidden = {
            name: params.get(name, "")
            for name in ("client_id", "redirect_uri", "state", "scope", "response_type", "code_challenge")
        }
        hidden["code_challenge_method"] = params.get("code_challenge_method", "")
        if request.method == "GET":
            with sim.state.lock:
                tenants = [(org.tenant_id, org.name) for org in sim.state.organisations.values()]
            return pages.authorize_page(
                app_name=sim.config.app_name,
                tenants=tenants,
                scope=scope,
                hidden=hidden,
                action="/identity/connect/authorize",
            )
        if request.form.get("decision") != "authorize":
            return _redirect(redirect_uri, {"error": "access_denied", "state": state_value})
        with sim.state.lock:
            tenant_ids = []
            for choice in request.form.getlist("tenant"):
                if choice == "new":
                    name = request.form.get("organisation_name", "").strip() or "Demo Company (US)"
                    tenant_ids.append(sim.state.create_organisation(name=name).tenant_id)
                elif sim.state.organisation(choice) is not None:
                    tenant_ids.append(choice.lower())
                else:
                    return pages.error_page("Unknown organisation", f"There is no organisation {choice!r}.")
            if not tenant_ids:
                return pages.error_page("No organisation", "Choose at least one organisation to connect.")
            code = sim.oauth.create_code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                user_id=sim.config.demo_user_id,
                tenant_ids=tenant_ids,
                scope=scope,
                code_challenge=hidden["code_challenge"],
                code_challenge_method=hidden["code_challenge_method"],
            )
            sim.state.changed()
        return _redirect(redirect_uri, {"code": code, "scope": scope, "state": state_value})

    def token(self, request: Request) -> Response:
        sim = self.sim
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            with sim.state.lock:
                body = sim.oauth.token(authorization=request.headers.get("Authorization"), form=request.form.to_dict())
                sim.state.changed()
        except oauth.OAuthError as error:
            sim.stats.count(f"oauth_{error.error}")
            return json_response(error.body(), status=error.status, headers=headers)
        sim.stats.count("tokens_issued")
        return json_response(body, headers=headers)

    def revoke(self, request: Request) -> Response:
        sim = self.sim
        form = request.form.to_dict()
        try:
            with sim.state.lock:
                sim.oauth.authenticate_client(request.headers.get("Authorization"), form)
        except oauth.OAuthError as error:
            return json_response(error.body(), status=error.status)
        token_value = form.get("token", "")
        if not token_value:
            return json_response({"error": "invalid_request", "error_description": "token is required"}, status=400)
        with sim.state.lock:
            sim.oauth.revoke(token_value)
            sim.state.changed()
        return Response("", status=200)

    def _bearer(self, request: Request) -> tuple[oauth.AccessCheck, Response | None]:
        with self.sim.state.lock:
            check = self.sim.oauth.authenticate(request.headers.get("Authorization"))
        if check.ok:
            return check, None
        body = errors.problem(401, "Unauthorized", check.detail)
        return check, json_response(body, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def connections(self, request: Request) -> Response:
        check, refusal = self._bearer(request)
        if refusal is not None:
            return refusal
        sim = self.sim
        with sim.state.lock:
            rows = []
            for connection in sim.oauth.connections(check.grant_id, request.args.get("authEventId", "")):
                organisation = sim.state.organisation(connection["tenant_id"])
                rows.append(
                    {
                        "id": connection["id"],
                        "authEventId": connection["auth_event_id"],
                        "tenantId": connection["tenant_id"],
                        "tenantType": "ORGANISATION",
                        "tenantName": organisation.name if organisation else "",
                        "createdDateUtc": wire.connection_text(wire.from_utc_text(connection["created"])),
                        "updatedDateUtc": wire.connection_text(wire.from_utc_text(connection["updated"])),
                    }
                )
        return json_response(rows)

    def delete_connection(self, request: Request, connection_id: str) -> Response:
        check, refusal = self._bearer(request)
        if refusal is not None:
            return refusal
        with self.sim.state.lock:
            removed = self.sim.oauth.disconnect(check.grant_id, connection_id.lower())
            self.sim.state.changed()
        if not removed:
            return Response(errors.NOT_FOUND_TEXT, status=404, content_type="text/plain; charset=utf-8")
        return Response(status=204)

    # --- admin JSON endpoints -----------------------------------------------------------------

    @staticmethod
    def _json_lenient(request: Request) -> Any:
        try:
            return wire.loads(request.get_data() or b"{}")
        except ValueError:
            return {}

    def _admin_changes(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            return {}
        body = self._json_lenient(request)
        if not isinstance(body, dict):
            raise _AdminError("the body must be a JSON object")
        return body

    def admin_faults(self, request: Request) -> Response:
        try:
            changes = self._admin_changes(request)
            if changes:
                self.sim.set_faults(**changes)
        except (ValueError, TypeError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response(self.sim.fault_status())

    def admin_limits(self, request: Request) -> Response:
        try:
            changes = self._admin_changes(request)
            if changes:
                self.sim.set_limits(**changes)
        except (ValueError, TypeError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response(asdict(self.sim.limiter.settings))

    def admin_webhooks(self, request: Request) -> Response:
        try:
            changes = self._admin_changes(request)
            if changes:
                self.sim.configure_webhooks(**changes)
        except (ValueError, TypeError) as error:
            return json_response({"error": str(error)}, status=400)
        emitter = self.sim.webhooks
        settings = asdict(emitter.settings)
        settings["key"] = "…" if settings["key"] else ""
        return json_response(
            {
                "settings": settings,
                "pending": emitter.pending_count,
                "counters": dict(emitter.counters),
                "deliveries": list(emitter.deliveries)[-20:],
                "recent_events": list(emitter.recent_events)[-50:],
            }
        )

    def admin_webhooks_flush(self, request: Request) -> Response:
        return json_response({"deliveries": self.sim.flush_webhooks()})

    def admin_intent_to_receive(self, request: Request) -> Response:
        body = self._json_lenient(request)
        url = body.get("url") if isinstance(body, dict) else None
        try:
            return json_response(self.sim.intent_to_receive(url))
        except ValueError as error:
            return json_response({"error": str(error)}, status=400)

    def admin_reset(self, request: Request) -> Response:
        body = self._json_lenient(request)
        demo = body.get("demo_tenant") if isinstance(body, dict) else None
        self.sim.reset(demo_tenant=demo)
        return json_response({"reset": True, "tenants": sorted(self.sim.state.organisations)})

    def admin_save(self, request: Request) -> Response:
        if self.sim.state_file is None:
            return json_response({"error": "the simulator runs without a state file"}, status=400)
        self.sim.save()
        return json_response({"saved": str(self.sim.state_file.path)})

    def admin_clock(self, request: Request) -> Response:
        try:
            changes = self._admin_changes(request)
            if "advance_seconds" in changes:
                self.sim.advance_clock(float(changes["advance_seconds"]))
            if "set" in changes:
                self.sim.set_clock(datetime.fromisoformat(str(changes["set"])))
        except (ValueError, TypeError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response({"now": self.sim.clock.now().isoformat(), "offset_seconds": self.sim.clock.offset_seconds})

    def admin_stats(self, request: Request) -> Response:
        return json_response(self.sim.stats_snapshot())

    def admin_log(self, request: Request) -> Response:
        limit = request.args.get("limit", "100")
        return json_response({"requests": self.sim.request_log(int(limit) if limit.isdigit() else 100)})

    def admin_revoke_tokens(self, request: Request) -> Response:
        body = self._json_lenient(request)
        tenant_id = body.get("tenant_id") if isinstance(body, dict) else None
        return json_response({"revoked": self.sim.revoke_tokens(tenant_id)})

    def admin_tenants(self, request: Request) -> Response:
        sim = self.sim
        if request.method == "POST":
            body = self._json_lenient(request)
            body = body if isinstance(body, dict) else {}
            try:
                tenant_id = sim.create_tenant(
                    str(body.get("name", "Demo Company (US)")), tenant_id=body.get("tenant_id")
                )
            except ValueError as error:
                return json_response({"error": str(error)}, status=400)
            return json_response({"tenant_id": tenant_id}, status=201)
        with sim.state.lock:
            tenants = [
                {
                    "tenant_id": org.tenant_id,
                    "name": org.name,
                    "counts": {entity: len(org.objects(entity)) for entity in ENTITY_PATHS.values()},
                }
                for org in sim.state.organisations.values()
            ]
        return json_response({"tenants": tenants})

    def admin_issue_tokens(self, request: Request, tenant: str) -> Response:
        try:
            return json_response(self.sim.issue_tokens(tenant))
        except KeyError as error:
            return json_response({"error": str(error)}, status=404)

    def admin_entities(self, request: Request, tenant: str, segment: str) -> Response:
        entity = ENTITY_PATHS.get(segment.lower())
        if entity is None or self.sim.state.organisation(tenant) is None:
            return json_response({"error": f"unknown tenant or entity {tenant}/{segment}"}, status=404)
        if request.method == "GET":
            return json_response({PLURAL[entity]: self.sim.list_entities(tenant, entity)})
        body = self._json_lenient(request)
        if not isinstance(body, dict) or "operation" not in body:
            return json_response({"error": 'send {"operation": ..., "data": {...}}'}, status=400)
        try:
            result = self.sim.act(tenant, entity, str(body["operation"]), body.get("data") or {})
        except Invalid as error:
            return json_response({"error": "validation", "ValidationErrors": error.messages}, status=400)
        except (ValueError, LookupError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response({PLURAL[entity]: [result]})

    def admin_entity(self, request: Request, tenant: str, segment: str, object_id: str) -> Response:
        entity = ENTITY_PATHS.get(segment.lower())
        if entity is None or self.sim.state.organisation(tenant) is None:
            return json_response({"error": f"unknown tenant or entity {tenant}/{segment}"}, status=404)
        found = self.sim.get_entity(tenant, entity, object_id)
        if found is None:
            return json_response({"error": f"{entity} {object_id} does not exist"}, status=404)
        return json_response({PLURAL[entity]: [found]})

    # --- admin HTML page ----------------------------------------------------------------------

    def admin_page(self, request: Request) -> Response:
        sim = self.sim
        with sim.state.lock:
            organisations = list(sim.state.organisations.values())
            tenant_id = request.args.get("tenant") or (organisations[0].tenant_id if organisations else "")
            organisation = sim.state.organisation(tenant_id)
            invoices = []
            if organisation is not None:
                rows = sorted(organisation.objects("Invoice").values(), key=lambda row: row["_seq"])
                invoices = [organisation.present("Invoice", row) for row in rows]
        return pages.admin_page(
            tenants=[(org.tenant_id, org.name) for org in organisations],
            tenant_id=tenant_id if organisation else "",
            invoices=invoices,
            message=request.args.get("message", ""),
            api_url=request.host_url.rstrip("/") + API_PREFIX,
        )

    def ui_invoice(self, request: Request, tenant: str, object_id: str, action: str) -> Response:
        try:
            self.sim.act(tenant, "Invoice", action, {"InvoiceID": object_id})
            message = f"Invoice {object_id} {'voided' if action == 'void' else 'deleted'}."
        except (ValueError, LookupError) as error:
            message = f"Could not {action} invoice {object_id}: {error}"
        response = Response("", status=303)
        response.headers["Location"] = "/_simulator/?" + urlencode({"tenant": tenant, "message": message})
        return response


# --- records that failed validation ---------------------------------------------------------

_ECHO_TEXT = {
    "Contact": {"Name": 255, "ContactNumber": 50, "EmailAddress": 255, "FirstName": 255, "LastName": 255},
    "Item": {"Code": 30, "Name": 50},
    "Invoice": {"InvoiceNumber": 255, "Reference": 0},
    "CreditNote": {"CreditNoteNumber": 0, "Reference": 0},
    "Payment": {"Reference": 0},
    "Allocation": {},
}
_ECHO_ENUMS = {
    "Contact": {"ContactStatus": ("ACTIVE", "ARCHIVED", "GDPRREQUEST")},
    "Invoice": {
        "Type": ("ACCREC", "ACCPAY"),
        "Status": ("DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED"),
    },
    "CreditNote": {
        "Type": ("ACCRECCREDIT", "ACCPAYCREDIT"),
        "Status": ("DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED"),
    },
}


def failure_record(entity: str, item: dict[str, Any], messages: list[str]) -> dict[str, Any]:
    """A record that failed, as Xero echoes it: what it was sent (where that is well-formed),
    a nil id for a new record, and its `ValidationErrors`."""
    record: dict[str, Any] = {}
    for field, allowed in _ECHO_ENUMS.get(entity, {}).items():
        if item.get(field) in allowed:
            record[field] = item[field]
    id_field = ID_FIELD.get(entity)
    if id_field:
        given = item.get(id_field)
        record[id_field] = given.lower() if wire.is_guid(given) else wire.NIL_GUID
    for field, limit in _ECHO_TEXT[entity].items():
        value = item.get(field)
        if isinstance(value, str) and (not limit or len(value) <= limit):
            record[field] = value
    if entity == "Item":
        record.setdefault("Code", "")
    if entity in ("Invoice", "CreditNote", "Payment", "Allocation"):
        contact = item.get("Contact")
        if isinstance(contact, dict) and entity != "Payment":
            echo = {}
            if wire.is_guid(contact.get("ContactID")):
                echo["ContactID"] = contact["ContactID"].lower()
            if isinstance(contact.get("Name"), str) and len(contact["Name"]) <= 255:
                echo["Name"] = contact["Name"]
            record["Contact"] = echo
    if entity in ("Payment", "Allocation"):
        with contextlib.suppress(ValueError):
            amount = wire.to_decimal(item.get("Amount"))
            if amount is not None:
                record["Amount"] = amount
        invoice = item.get("Invoice")
        if isinstance(invoice, dict):
            echo = {}
            if wire.is_guid(invoice.get("InvoiceID")):
                echo["InvoiceID"] = invoice["InvoiceID"].lower()
            if isinstance(invoice.get("InvoiceNumber"), str) and len(invoice["InvoiceNumber"]) <= 255:
                echo["InvoiceNumber"] = invoice["InvoiceNumber"]
            record["Invoice"] = echo
    if entity == "Invoice":
        record.update({"LineItems": [], "Payments": [], "CreditNotes": [], "Prepayments": [], "Overpayments": []})
    if entity == "CreditNote":
        record.update({"LineItems": [], "Allocations": [], "Payments": []})
    if entity in ("Invoice", "CreditNote"):
        record["HasErrors"] = True
    elif entity in ("Contact", "Payment"):
        record["HasValidationErrors"] = True
    record["StatusAttributeString"] = "ERROR"
    record["ValidationErrors"] = [{"Message": message} for message in messages]
    return record


def _redirect(uri: str, params: dict[str, str]) -> Response:
    parts = urlsplit(uri)
    query_text = "&".join(part for part in (parts.query, urlencode(params)) if part)
    response = Response("", status=302)
    response.headers["Location"] = urlunsplit((parts.scheme, parts.netloc, parts.path, query_text, parts.fragment))
    return response
