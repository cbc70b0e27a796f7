"""The simulator's WSGI application: Intuit's OAuth endpoints, the Accounting API under `/v3`
and the unauthenticated admin endpoints and pages under `/_simulator/`.

Every data-API request passes through the same pipeline: fault decision → (injected token
revocation) → bearer token check (401/403) → per-realm throttle (429) → injected 429/5xx →
latency → the handler, which commits → injected drop or timeout. Replies to writes that carry a
`requestid` are stored per realm and replayed for the same id.
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
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import faults, oauth, pages, wire
from .company import ENTITIES, ENTITY_PATHS, Company, raise_unknown_entity
from .faults import QBOFault

if TYPE_CHECKING:
    from .server import QuickBooksSimulator

logger = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 30
JSON_TYPE = "application/json;charset=UTF-8"
DEFAULT_ZONE = ZoneInfo("America/Los_Angeles")

URL_MAP = Map(
    [
        Rule("/.well-known/openid_configuration", endpoint="discovery"),
        Rule("/.well-known/openid_configuration/", endpoint="discovery"),
        Rule("/.well-known/openid_sandbox_configuration", endpoint="discovery"),
        Rule("/.well-known/openid_sandbox_configuration/", endpoint="discovery"),
        Rule("/connect/oauth2", endpoint="authorize", methods=["GET", "POST"]),
        Rule("/oauth2/v1/tokens/bearer", endpoint="token", methods=["POST"]),
        Rule("/oauth2/v1/tokens/revoke", endpoint="revoke", methods=["POST"]),
        Rule("/v2/oauth2/tokens/revoke", endpoint="revoke", methods=["POST"]),
        Rule("/oauth2/v1/keys", endpoint="jwks"),
        Rule("/v1/openid_connect/userinfo", endpoint="userinfo"),
        Rule("/v3/company/<realm>/query", endpoint="api_query", methods=["GET", "POST"]),
        Rule("/v3/company/<realm>/cdc", endpoint="api_cdc", methods=["GET"]),
        Rule("/v3/company/<realm>/batch", endpoint="api_batch", methods=["POST"]),
        Rule("/v3/company/<realm>/preferences", endpoint="api_preferences", methods=["GET"]),
        Rule("/v3/company/<realm>/companyinfo/<object_id>", endpoint="api_companyinfo", methods=["GET"]),
        Rule("/v3/company/<realm>/<segment>/<object_id>/pdf", endpoint="api_pdf", methods=["GET"]),
        Rule("/v3/company/<realm>/<segment>/<object_id>/send", endpoint="api_send", methods=["POST"]),
        Rule("/v3/company/<realm>/<segment>/<object_id>", endpoint="api_read", methods=["GET"]),
        Rule("/v3/company/<realm>/<segment>", endpoint="api_write", methods=["POST"]),
        Rule("/_simulator/", endpoint="admin_page", methods=["GET"]),
        Rule("/_simulator/ui/<realm>/invoice/<object_id>/void", endpoint="ui_void", methods=["POST"]),
        Rule("/_simulator/ui/<realm>/invoice/<object_id>/edit", endpoint="ui_edit", methods=["POST"]),
        Rule("/_simulator/faults", endpoint="admin_faults", methods=["GET", "PUT", "POST"]),
        Rule("/_simulator/limits", endpoint="admin_limits", methods=["GET", "PUT", "POST"]),
        Rule("/_simulator/webhooks", endpoint="admin_webhooks", methods=["GET", "PUT", "POST"]),
        Rule("/_simulator/webhooks/flush", endpoint="admin_webhooks_flush", methods=["POST"]),
        Rule("/_simulator/reset", endpoint="admin_reset", methods=["POST"]),
        Rule("/_simulator/save", endpoint="admin_save", methods=["POST"]),
        Rule("/_simulator/clock", endpoint="admin_clock", methods=["GET", "POST", "PUT"]),
        Rule("/_simulator/stats", endpoint="admin_stats", methods=["GET"]),
        Rule("/_simulator/log", endpoint="admin_log", methods=["GET"]),
        Rule("/_simulator/tokens/revoke", endpoint="admin_revoke_tokens", methods=["POST"]),
        Rule("/_simulator/realms", endpoint="admin_realms", methods=["GET", "POST"]),
        Rule("/_simulator/realms/<realm>/tokens", endpoint="admin_issue_tokens", methods=["POST"]),
        Rule("/_simulator/realms/<realm>/<segment>", endpoint="admin_entities", methods=["GET", "POST"]),
        Rule("/_simulator/realms/<realm>/<segment>/<object_id>", endpoint="admin_entity", methods=["GET"]),
    ]
)


class _Dropped(ConnectionAbortedError):
    """Raised after the socket was shut: werkzeug treats it as a client that went away."""


class Stats:
    """Counters and a bounded log of recent requests, for `/_simulator/stats` and `/log`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.per_realm: dict[str, Counter[str]] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=2000)

    def count(self, name: str, realm_id: str | None = None) -> None:
        with self._lock:
            self.counters[name] += 1
            if realm_id:
                self.per_realm.setdefault(realm_id, Counter())[name] += 1

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.counters["requests"] += 1
            self.by_status[str(entry["status"])] += 1
            if entry.get("realm"):
                self.per_realm.setdefault(entry["realm"], Counter())["requests"] += 1
            self.log.append(entry)

    def clear(self) -> None:
        with self._lock:
            self.counters.clear()
            self.by_status.clear()
            self.per_realm.clear()
            self.log.clear()

    def snapshot(self, peaks: dict[str, int]) -> dict[str, Any]:
        with self._lock:
            realms = {realm: dict(counter) for realm, counter in self.per_realm.items()}
            for realm, peak in peaks.items():
                realms.setdefault(realm, {})["max_concurrency"] = peak
            counters = dict(self.counters)
            throttled = counters.get("throttled_rate", 0) + counters.get("throttled_concurrency", 0)
            counters["sent_429"] = throttled + counters.get("injected_429", 0)
            return {"counters": counters, "by_status": dict(self.by_status), "realms": realms}

    def recent(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.log)[-limit:]


def _wants_xml(request: Request) -> bool:
    accept = request.headers.get("Accept", "").lower()
    return "xml" in accept and "json" not in accept


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(wire.dumps(body), status=status, content_type=JSON_TYPE)
    response.headers["intuit_tid"] = str(uuid.uuid4())
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class SimulatorApp:
    def __init__(self, sim: QuickBooksSimulator) -> None:
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
            "realm": None,
            "fault": None,
        }
        environ["qbosim.log"] = entry
        try:
            response = self.dispatch(request)
        except _Dropped:
            entry["status"] = "dropped"
            entry["ms"] = round((time.monotonic() - started) * 1000, 1)
            self.sim.stats.record(entry)
            raise
        entry["status"] = response.status_code
        entry["ms"] = round((time.monotonic() - started) * 1000, 1)
        # The log and counters describe what clients asked of "Intuit", not the admin traffic.
        if not request.path.startswith("/_simulator/"):
            self.sim.stats.record(entry)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = URL_MAP.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except HTTPException as error:
            if isinstance(error, NotFound | MethodNotAllowed) and request.path.startswith("/v3/"):
                return json_response(
                    faults.fault_body(
                        faults.unsupported(f"No resource for {request.method} {request.path}").fault(),
                        self._time_text(None),
                    ),
                    status=error.code or 404,
                )
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
            logger.exception("QuickBooks simulator failed on %s %s", request.method, request.path)
            fault = faults.QBOFault(
                "10000",
                faults.SYSTEM_MESSAGE,
                "System Failure Error: simulator bug",
                status=500,
                fault_type="SystemFault",
            )
            return json_response(faults.fault_body(fault.fault(), self._time_text(None)), status=500)

    # --- helpers ------------------------------------------------------------------------------

    def _time_text(self, company: Company | None) -> str:
        zone = company.zone if company is not None else DEFAULT_ZONE
        return wire.local_text(self.sim.clock.now(), zone, milliseconds=True)

    def _fault(
        self,
        request: Request,
        fault: QBOFault,
        company: Company | None = None,
        *,
        xml: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Response:
        time_text = self._time_text(company)
        if xml or _wants_xml(request):
            response = Response(
                faults.fault_xml(fault.fault(), time_text),
                status=fault.status,
                content_type="application/xml;charset=UTF-8",
            )
            for name, value in (headers or {}).items():
                response.headers[name] = value
            return response
        return json_response(faults.fault_body(fault.fault(), time_text), status=fault.status, headers=headers)

    def _company(self, realm_id: str) -> Company:
        company = self.sim.state.company(realm_id)
        if company is None:
            raise faults.authorization_fault()
        return company

    @staticmethod
    def _json_body(request: Request) -> Any:
        raw = request.get_data(cache=True)
        if not raw.strip():
            return {}
        try:
            return wire.loads(raw)
        except ValueError as error:
            raise faults.invalid("body", f"is not valid JSON ({error})") from error

    @staticmethod
    def _entity(segment: str) -> str:
        entity = ENTITY_PATHS.get(segment.lower())
        if entity is None:
            raise raise_unknown_entity(segment)
        return entity

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.sim.stopping.wait(seconds)

    @staticmethod
    def _drop(request: Request) -> None:
        """Close the connection without answering. The write has already been committed."""
        connection = request.environ.get("werkzeug.socket")
        if connection is None:
            # Not under werkzeug's server (e.g. a WSGI test client): no socket to cut, so the
            # error escapes to the caller, which is as close to "no answer" as it gets.
            raise _Dropped("the simulator dropped the response after committing")
        # Linger 0 makes the close an immediate reset; shutting both directions first makes the
        # server's handler see end-of-input and finish quietly.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
        raise _Dropped("the simulator dropped the connection after committing")

    # --- the data API pipeline ----------------------------------------------------------------

    def api(self, request: Request, endpoint: str, values: dict[str, str]) -> Response:
        sim = self.sim
        realm_id = values["realm"]
        entry = request.environ["qbosim.log"]
        entry["realm"] = realm_id
        target = request.full_path.rstrip("?")
        decision = sim.injector.decide(request.method, target)
        entry["fault"] = decision.kind
        if decision.kind == "revoke":
            with sim.state.lock:
                sim.oauth.revoke_all(realm_id)
                sim.state.changed()
            sim.stats.count("injected_revoke", realm_id)
        with sim.state.lock:
            check = sim.oauth.check_access(request.headers.get("Authorization"), realm_id)
            company = sim.state.company(realm_id)
        if not check.ok:
            sim.stats.count(f"auth_{check.status}", realm_id)
            if check.status == 401:
                epoch_ms = int(sim.clock.now().timestamp() * 1000)
                return json_response(faults.authentication_body(check.detail, epoch_ms), status=401)
            return self._fault(request, faults.authorization_fault(), company)
        admission = sim.limiter.admit(realm_id)
        if not admission.admitted:
            sim.stats.count(f"throttled_{admission.reason}", realm_id)
            return self._throttled(request, company, admission.retry_after)
        try:
            if decision.kind == "429":
                sim.stats.count("injected_429", realm_id)
                return self._throttled(request, company, sim.injector.settings.injected_retry_after_seconds)
            if decision.kind == "error":
                sim.stats.count("injected_5xx", realm_id)
                return self._server_error(request, decision.status, company)
            self._wait(decision.latency_seconds)
            handler = getattr(self, endpoint)
            try:
                response = handler(request, **values)
            except QBOFault as fault:
                response = self._fault(request, fault, company)
            if decision.kind == "drop":
                sim.stats.count("injected_drop", realm_id)
                self._drop(request)
            if decision.kind == "timeout":
                sim.stats.count("injected_timeout", realm_id)
                self._wait(sim.injector.settings.timeout_seconds)
            return response
        finally:
            sim.limiter.release(realm_id)

    def _throttled(self, request: Request, company: Company | None, retry_after: int) -> Response:
        settings = self.sim.limiter.settings
        headers = {"Retry-After": str(retry_after)} if settings.retry_after_header else {}
        return self._fault(request, faults.throttle_fault(), company, xml=settings.throttle_xml, headers=headers)

    def _server_error(self, request: Request, status: int, company: Company | None) -> Response:
        if status in {500, 503}:
            return self._fault(request, faults.system_fault(status), company)
        # 502/504 come from Intuit's gateway, not the API: an HTML page, not a Fault.
        title = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}[status]
        body = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
        return Response(body, status=status, content_type="text/html")

    # --- data API handlers --------------------------------------------------------------------

    def api_read(self, request: Request, realm: str, segment: str, object_id: str) -> Response:
        entity = self._entity(segment)
        with self.sim.state.lock:
            company = self._company(realm)
            body = {entity: company.present(entity, company.get(entity, object_id)), "time": self._time_text(company)}
        return json_response(body)

    def api_write(self, request: Request, realm: str, segment: str) -> Response:
        entity = self._entity(segment)
        body = self._json_body(request)
        if isinstance(body, dict) and len(body) == 1 and isinstance(body.get(entity), dict):
            body = body[entity]
        return self._idempotent(request, realm, lambda company: self._write(request, company, entity, body))

    def _write(self, request: Request, company: Company, entity: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise faults.invalid(entity, "must be a JSON object")
        operation = request.args.get("operation", "").lower()
        include = request.args.get("include", "").lower()
        if operation == "delete":
            return {entity: company.delete(entity, body)}
        if operation == "void" or (operation == "update" and include == "void"):
            stored = company.void(entity, body)
        elif operation in {"", "create", "update"}:
            has_id = body.get("Id") not in (None, "", 0, "0")
            if operation == "update" and not has_id:
                raise faults.required("Id")
            if operation == "create" or not has_id:
                stored = company.create(entity, body)
            else:
                stored = company.update(entity, body, sparse=_truthy(body.get("sparse")))
        else:
            raise faults.unsupported(f"Operation {operation} is not supported")
        return {entity: company.present(entity, stored)}

    def _idempotent(self, request: Request, realm: str, work: Any) -> Response:
        """Run a write under the state lock; with a `requestid`, store and replay its reply."""
        request_id = request.args.get("requestid", "")
        sim = self.sim
        with sim.state.lock:
            company = self._company(realm)
            if request_id:
                cached = company.replay(request_id)
                if cached is not None:
                    sim.stats.count("replayed", realm)
                    response = Response(cached["body"], status=cached["status"], content_type=cached["content_type"])
                    response.headers["intuit_tid"] = str(uuid.uuid4())
                    return response
            try:
                payload = work(company)
                payload["time"] = self._time_text(company)
                response = json_response(payload)
            except QBOFault as fault:
                response = self._fault(request, fault, company)
            if request_id:
                company.remember(
                    request_id,
                    status=response.status_code,
                    body=response.get_data(as_text=True),
                    content_type=response.content_type,
                )
            sim.state.changed()
        return response

    def api_query(self, request: Request, realm: str) -> Response:
        text = request.args.get("query", "") if request.method == "GET" else request.get_data(as_text=True)
        with self.sim.state.lock:
            company = self._company(realm)
            result = company.run_query(text)
            return json_response({"QueryResponse": result, "time": self._time_text(company)})

    def api_cdc(self, request: Request, realm: str) -> Response:
        names = [name.strip() for name in request.args.get("entities", "").split(",") if name.strip()]
        if not names:
            raise faults.required("entities")
        lookup = {name.lower(): name for name in ENTITIES}
        entities = []
        for name in names:
            if name.lower() not in lookup:
                raise faults.invalid("entities", f"{name} is not supported by change data capture")
            entities.append(lookup[name.lower()])
        # An unencoded "+" in a UTC offset arrives as a space; read it as the "+" it was.
        since_text = request.args.get("changedSince", "").strip().replace(" ", "+")
        if not since_text:
            raise faults.required("changedSince")
        with self.sim.state.lock:
            company = self._company(realm)
            try:
                since = wire.parse_datetime(since_text, company.zone)
            except ValueError as error:
                raise faults.invalid("changedSince", f"{since_text!r} is not a date-time") from error
            now = self.sim.clock.now()
            if since < now - wire.days(self.sim.config.cdc_window_days):
                raise faults.unsupported(
                    f"Operation cdc with changedSince date {since_text} which is older than fixed days "
                    "is not supported."
                )
            responses = company.change_data_capture(entities, since, self.sim.config.cdc_max_objects)
            body = {"CDCResponse": [{"QueryResponse": responses}], "time": self._time_text(company)}
        return json_response(body)

    def api_batch(self, request: Request, realm: str) -> Response:
        body = self._json_body(request)
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise faults.required("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise faults.invalid(
                "BatchItemRequest", f"holds {len(items)} items; a batch may hold at most {MAX_BATCH_ITEMS}"
            )

        def work(company: Company) -> dict[str, Any]:
            return {"BatchItemResponse": [self._batch_item(company, item) for item in items]}

        return self._idempotent(request, realm, work)

    def _batch_item(self, company: Company, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            return {"Fault": faults.invalid("BatchItemRequest", "items must be objects").fault()}
        result: dict[str, Any] = {"bId": item.get("bId")}
        try:
            if "Query" in item:
                result["QueryResponse"] = company.run_query(str(item["Query"]))
                return result
            entity = next((name for name in ENTITIES if isinstance(item.get(name), dict)), None)
            if entity is None:
                raise faults.required("entity object")
            body = item[entity]
            operation = str(item.get("operation", "")).lower()
            if operation == "create":
                stored = company.create(entity, body)
            elif operation == "update" and str(item.get("optionsData", "")).lower() == "void":
                stored = company.void(entity, body)
            elif operation == "update":
                stored = company.update(entity, body, sparse=_truthy(body.get("sparse")))
            elif operation == "delete":
                result[entity] = company.delete(entity, body)
                return result
            else:
                raise faults.invalid("operation", f"{operation!r} must be create, update or delete")
            result[entity] = company.present(entity, stored)
        except QBOFault as fault:
            result["Fault"] = fault.fault()
        return result

    def api_send(self, request: Request, realm: str, segment: str, object_id: str) -> Response:
        entity = self._entity(segment)
        send_to = request.args.get("sendTo") or None
        return self._idempotent(
            request, realm, lambda company: {entity: company.present(entity, company.send(entity, object_id, send_to))}
        )

    def api_pdf(self, request: Request, realm: str, segment: str, object_id: str) -> Response:
        entity = self._entity(segment)
        with self.sim.state.lock:
            company = self._company(realm)
            stored = company.get(entity, object_id)
            lines = [
                f"{company.name}",
                f"{entity} {stored.get('DocNumber', stored['Id'])}",
                f"Customer: {(stored.get('CustomerRef') or {}).get('name', '')}",
                f"Date: {stored.get('TxnDate', '')}  Due: {stored.get('DueDate', '')}",
                f"Total: {wire.dumps(stored.get('TotalAmt', wire.ZERO))}  Balance: "
                f"{wire.dumps(stored.get('Balance', wire.ZERO))}",
            ]
        return Response(pages.tiny_pdf(lines), content_type="application/pdf")

    def api_companyinfo(self, request: Request, realm: str, object_id: str) -> Response:
        with self.sim.state.lock:
            company = self._company(realm)
            created = wire.from_utc_text(company.data["created"])
            info = {
                "Id": "1",
                "SyncToken": "0",
                "domain": "QBO",
                "sparse": False,
                "CompanyName": company.name,
                "LegalName": company.name,
                "Country": "US",
                "CompanyStartDate": created.astimezone(company.zone).date().isoformat(),
                "FiscalYearStartMonth": "January",
                "SupportedLanguages": "en",
                "NameValue": [{"Name": "CompanyType", "Value": "Other"}],
                "MetaData": {"CreateTime": company.local_time(created), "LastUpdatedTime": company.local_time(created)},
            }
            return json_response({"CompanyInfo": info, "time": self._time_text(company)})

    def api_preferences(self, request: Request, realm: str) -> Response:
        with self.sim.state.lock:
            company = self._company(realm)
            preferences = company.data["preferences"]
            body = {
                "Preferences": {
                    "Id": "1",
                    "SyncToken": "0",
                    "domain": "QBO",
                    "sparse": False,
                    "SalesFormsPrefs": {
                        "CustomTxnNumbers": False,
                        "DefaultTerms": {"value": "3", "name": f"Net {preferences['default_terms_days']}"},
                        "AllowDeposit": True,
                        "AllowDiscount": True,
                    },
                    "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
                    "OtherPrefs": {
                        "NameValue": [
                            {
                                "Name": "SalesFormsPrefs.WarnDuplicateDocNum",
                                "Value": str(preferences["warn_duplicate_doc_number"]).lower(),
                            }
                        ]
                    },
                },
                "time": self._time_text(company),
            }
            return json_response(body)

    # --- OAuth endpoints ----------------------------------------------------------------------

    def discovery(self, request: Request) -> Response:
        base = request.host_url.rstrip("/")
        return json_response(
            {
                "issuer": f"{base}/op/v1",
                "authorization_endpoint": f"{base}/connect/oauth2",
                "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
                "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
                "revocation_endpoint": f"{base}/oauth2/v1/tokens/revoke",
                "jwks_uri": f"{base}/oauth2/v1/keys",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": [oauth.ACCOUNTING_SCOPE, "openid", "email", "profile", "phone", "address"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )

    def jwks(self, request: Request) -> Response:
        return json_response({"keys": []})

    def userinfo(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        with self.sim.state.lock:
            realm_id = self.sim.oauth.realm_of_access_token(token)
        if realm_id is None:
            return json_response({"error": "invalid_token"}, status=401)
        return json_response(
            {
                "sub": f"sim-user-{realm_id}",
                "email": "owner@sandbox.example",
                "emailVerified": True,
                "givenName": "Sandbox",
                "familyName": "Owner",
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
            return pages.error_page("Unknown application", f"No app is registered with client_id {client_id!r}.")
        if not redirect_uri or not sim.oauth.redirect_allowed(redirect_uri):
            return pages.error_page("Invalid redirect URI", f"{redirect_uri!r} is not registered for this app.")
        if params.get("response_type", "") != "code":
            return _redirect(redirect_uri, {"error": "unsupported_response_type", "state": state_value})
        if oauth.ACCOUNTING_SCOPE not in scope.split():
            return _redirect(redirect_uri, {"error": "invalid_scope", "state": state_value})
        if request.method == "GET":
            with sim.state.lock:
                realms = [(company.realm_id, company.name) for company in sim.state.companies.values()]
            return pages.authorize_page(
                app_name=sim.config.app_name,
                realms=realms,
                hidden={
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                    "state": state_value,
                    "scope": scope,
                    "response_type": "code",
                },
            )
        if request.form.get("decision") != "authorize":
            return _redirect(redirect_uri, {"error": "access_denied", "state": state_value})
        with sim.state.lock:
            realm_id = request.form.get("realm", "")
            if realm_id == "new" or not realm_id:
                name = request.form.get("company_name", "").strip() or "Sandbox Company"
                realm_id = sim.state.create_company(company_name=name, timezone=sim.config.timezone).realm_id
            elif sim.state.company(realm_id) is None:
                return pages.error_page("Unknown company", f"There is no company {realm_id!r}.")
            code = sim.oauth.create_code(client_id=client_id, redirect_uri=redirect_uri, realm_id=realm_id, scope=scope)
            sim.state.changed()
        return _redirect(redirect_uri, {"code": code, "state": state_value, "realmId": realm_id})

    def token(self, request: Request) -> Response:
        sim = self.sim
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            with sim.state.lock:
                client_id = sim.oauth.authenticate_client(request.headers.get("Authorization"))
                body = sim.oauth.token(client_id=client_id, form=request.form.to_dict())
                sim.state.changed()
        except oauth.OAuthError as error:
            sim.stats.count(f"oauth_{error.error}")
            return json_response(error.body(), status=error.status, headers=headers)
        sim.stats.count("tokens_issued")
        return json_response(body, headers=headers)

    def revoke(self, request: Request) -> Response:
        sim = self.sim
        try:
            with sim.state.lock:
                sim.oauth.authenticate_client(request.headers.get("Authorization"))
        except oauth.OAuthError as error:
            return json_response(error.body(), status=error.status)
        token_value = ""
        if request.mimetype == "application/json":
            body = self._json_body_lenient(request)
            token_value = str(body.get("token", "")) if isinstance(body, dict) else ""
        else:
            token_value = request.form.get("token", "")
        if not token_value:
            return json_response({"error": "invalid_request", "error_description": "token is required"}, status=400)
        with sim.state.lock:
            sim.oauth.revoke(token_value)
            sim.state.changed()
        return Response("", status=200)

    @staticmethod
    def _json_body_lenient(request: Request) -> Any:
        try:
            return wire.loads(request.get_data() or b"{}")
        except ValueError:
            return {}

    # --- admin JSON endpoints -----------------------------------------------------------------

    def _admin_changes(self, request: Request) -> dict[str, Any]:
        if request.method == "GET":
            return {}
        body = self._json_body_lenient(request)
        if not isinstance(body, dict):
            raise _AdminError("the body must be a JSON object")
        return body

    def admin_faults(self, request: Request) -> Response:
        try:
            changes = self._admin_changes(request)
            if changes:
                self.sim.set_faults(**changes)
        except (ValueError, TypeError, _AdminError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response(self.sim.fault_status())

    def admin_limits(self, request: Request) -> Response:
        try:
            changes = self._admin_changes(request)
            if changes:
                self.sim.set_limits(**changes)
        except (ValueError, TypeError, _AdminError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response(asdict(self.sim.limiter.settings))

    def admin_webhooks(self, request: Request) -> Response:
        try:
            changes = self._admin_changes(request)
            if changes:
                self.sim.configure_webhooks(**changes)
        except (ValueError, TypeError, _AdminError) as error:
            return json_response({"error": str(error)}, status=400)
        emitter = self.sim.webhooks
        return json_response(
            {
                "settings": asdict(emitter.settings),
                "pending": emitter.pending_count,
                "counters": dict(emitter.counters),
                "deliveries": list(emitter.deliveries)[-20:],
                "recent_events": list(emitter.recent_events)[-50:],
            }
        )

    def admin_webhooks_flush(self, request: Request) -> Response:
        return json_response({"deliveries": self.sim.flush_webhooks()})

    def admin_reset(self, request: Request) -> Response:
        body = self._json_body_lenient(request)
        demo = body.get("demo_realm") if isinstance(body, dict) else None
        self.sim.reset(demo_realm=demo)
        return json_response({"reset": True, "realms": sorted(self.sim.state.companies)})

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
        except (ValueError, TypeError, _AdminError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response({"now": self.sim.clock.now().isoformat(), "offset_seconds": self.sim.clock.offset_seconds})

    def admin_stats(self, request: Request) -> Response:
        return json_response(self.sim.stats_snapshot())

    def admin_log(self, request: Request) -> Response:
        limit = request.args.get("limit", "100")
        return json_response({"requests": self.sim.stats.recent(int(limit) if limit.isdigit() else 100)})

    def admin_revoke_tokens(self, request: Request) -> Response:
        body = self._json_body_lenient(request)
        realm_id = body.get("realm_id") if isinstance(body, dict) else None
        return json_response({"revoked": self.sim.revoke_tokens(realm_id)})

    def admin_realms(self, request: Request) -> Response:
        sim = self.sim
        if request.method == "POST":
            body = self._json_body_lenient(request)
            body = body if isinstance(body, dict) else {}
            try:
                realm_id = sim.create_realm(
                    company_name=str(body.get("company_name", "Sandbox Company")),
                    realm_id=body.get("realm_id"),
                    timezone=str(body.get("timezone", sim.config.timezone)),
                )
            except (ValueError, KeyError) as error:
                return json_response({"error": str(error)}, status=400)
            return json_response({"realm_id": realm_id}, status=201)
        with sim.state.lock:
            realms = [
                {
                    "realm_id": company.realm_id,
                    "company_name": company.name,
                    "timezone": company.data["timezone"],
                    "counts": {entity: len(company.objects(entity)) for entity in ENTITIES},
                }
                for company in sim.state.companies.values()
            ]
        return json_response({"realms": realms})

    def admin_issue_tokens(self, request: Request, realm: str) -> Response:
        try:
            return json_response(self.sim.issue_tokens(realm))
        except KeyError as error:
            return json_response({"error": str(error)}, status=404)

    def admin_entities(self, request: Request, realm: str, segment: str) -> Response:
        entity = ENTITY_PATHS.get(segment.lower())
        if entity is None or self.sim.state.company(realm) is None:
            return json_response({"error": f"unknown realm or entity {realm}/{segment}"}, status=404)
        if request.method == "GET":
            return json_response({entity: self.sim.list_entities(realm, entity)})
        body = self._json_body_lenient(request)
        if not isinstance(body, dict) or "operation" not in body:
            return json_response({"error": 'send {"operation": ..., "data": {...}}'}, status=400)
        try:
            result = self.sim.act(realm, entity, str(body["operation"]), body.get("data") or {})
        except QBOFault as fault:
            return json_response(faults.fault_body(fault.fault(), self._time_text(None)), status=fault.status)
        except (ValueError, KeyError) as error:
            return json_response({"error": str(error)}, status=400)
        return json_response({entity: result})

    def admin_entity(self, request: Request, realm: str, segment: str, object_id: str) -> Response:
        entity = ENTITY_PATHS.get(segment.lower())
        if entity is None or self.sim.state.company(realm) is None:
            return json_response({"error": f"unknown realm or entity {realm}/{segment}"}, status=404)
        found = self.sim.get_entity(realm, entity, object_id)
        if found is None:
            return json_response({"error": f"{entity} {object_id} does not exist (or was deleted)"}, status=404)
        return json_response({entity: found})

    # --- admin HTML page (for people and for the browser acceptance test) -----------------------

    def admin_page(self, request: Request) -> Response:
        sim = self.sim
        with sim.state.lock:
            companies = list(sim.state.companies.values())
            realm_id = request.args.get("realm") or (companies[0].realm_id if companies else "")
            company = sim.state.company(realm_id)
            invoices = []
            if company is not None:
                for stored in sorted(company.objects("Invoice").values(), key=lambda row: int(row["Id"])):
                    invoices.append(company.present("Invoice", stored))
        return pages.admin_page(
            realms=[(item.realm_id, item.name) for item in companies],
            realm_id=realm_id if company else "",
            invoices=invoices,
            message=request.args.get("message", ""),
            api_url=request.host_url.rstrip("/") + "/v3",
        )

    def ui_void(self, request: Request, realm: str, object_id: str) -> Response:
        try:
            self.sim.act(realm, "Invoice", "void", {"Id": object_id})
            message = f"Invoice {object_id} voided."
        except (QBOFault, ValueError) as error:
            message = f"Could not void invoice {object_id}: {getattr(error, 'detail', error)}"
        return _see_other(realm, message)

    def ui_edit(self, request: Request, realm: str, object_id: str) -> Response:
        data: dict[str, Any] = {"Id": object_id}
        for field in ("DueDate", "PrivateNote"):
            if field in request.form:
                data[field] = request.form[field].strip()
        if "CustomerMemo" in request.form:
            memo = request.form["CustomerMemo"].strip()
            data["CustomerMemo"] = {"value": memo} if memo else ""
        try:
            self.sim.act(realm, "Invoice", "update", data)
            message = f"Invoice {object_id} saved."
        except (QBOFault, ValueError) as error:
            message = f"Could not save invoice {object_id}: {getattr(error, 'detail', error)}"
        return _see_other(realm, message)


class _AdminError(ValueError):
    pass


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _redirect(uri: str, params: dict[str, str]) -> Response:
    parts = urlsplit(uri)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    response = Response("", status=302)
    response.headers["Location"] = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    return response


def _see_other(realm: str, message: str) -> Response:
    response = Response("", status=303)
    response.headers["Location"] = "/_simulator/?" + urlencode({"realm": realm, "message": message})
    return response
