"""`XeroSimulator`: the simulator as an object tests and the management command drive.

    with XeroSimulator(port=0) as sim:
        tenant_id = sim.create_tenant("Acme Books")
        tokens = sim.issue_tokens(tenant_id)
        httpx.get(f"{sim.api_url}/Contacts", params={"page": 1},
                  headers={"Authorization": f"Bearer {tokens['access_token']}",
                           "xero-tenant-id": tenant_id, "Accept": "application/json"})

It serves on a werkzeug threaded server in a background thread (or in the foreground with
`serve_forever()`), keeps its state in memory behind one lock and, with `state_path`, in a
JSON file.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import oauth, webhooks
from .app import SimulatorApp, Stats
from .clock import SimulatedClock
from .errors import Invalid
from .limits import (
    FaultInjector,
    FaultSettings,
    LimitSettings,
    TenantLimiter,
    update_faults,
    update_limits,
)
from .organisation import ENTITIES, ID_FIELD, Organisation
from .state import SimulatorState, StateFile

DEFAULT_CLIENT_ID = "concord-xero-demo-client"
DEFAULT_CLIENT_SECRET = "concord-xero-demo-secret"  # noqa: S105 - a public demo value
DEFAULT_WEBHOOK_KEY = "concord-xero-demo-webhook-key"
DEMO_TENANT_ID = "fe79f7dd-b6d4-4a92-ba7b-538af6289c58"
DEMO_TENANT_NAME = "Demo Company (US)"
# The person who consents on the simulator's authorize page (issue_tokens uses a fresh user).
DEMO_USER_ID = "7a8f4e1c-3b2d-4c5e-9f60-1a2b3c4d5e6f"

_WEBHOOK_SHORTCUTS = {
    "webhook_url": "url",
    "webhook_key": "key",
    "webhook_window_seconds": "window_seconds",
    "webhook_retries": "retries",
    "webhook_backoff_seconds": "backoff_seconds",
    "webhook_timeout_seconds": "timeout_seconds",
    "webhook_categories": "categories",
}


@dataclass(frozen=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    state_path: Path | None = None
    save_delay_seconds: float = 0.5
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    redirect_uris: tuple[str, ...] = ()
    app_name: str = "Concord"
    access_token_ttl: int = 1800
    refresh_token_ttl: int = 5_184_000
    refresh_grace_seconds: int = 1800
    limits: LimitSettings = field(default_factory=LimitSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    seed: int | None = None
    webhook: webhooks.WebhookSettings = field(default_factory=lambda: webhooks.WebhookSettings(key=DEFAULT_WEBHOOK_KEY))
    demo_tenant: bool = True
    demo_tenant_id: str = DEMO_TENANT_ID
    demo_tenant_name: str = DEMO_TENANT_NAME
    demo_user_id: str = DEMO_USER_ID
    # Per-request log lines from werkzeug (errors are always logged).
    log_requests: bool = False

    @classmethod
    def build(cls, base: SimulatorConfig | None = None, **options: Any) -> SimulatorConfig:
        """Accept flat keyword options: config fields, `faults`/`limits` as dicts, webhook shortcuts."""
        webhook_changes = {
            _WEBHOOK_SHORTCUTS[name]: options.pop(name) for name in list(options) if name in _WEBHOOK_SHORTCUTS
        }
        config = base or cls()
        if isinstance(options.get("faults"), dict):
            options["faults"] = update_faults(config.faults, options["faults"])
        if isinstance(options.get("limits"), dict):
            options["limits"] = update_limits(config.limits, options["limits"])
        if isinstance(options.get("webhook"), dict):
            webhook_changes = {**options.pop("webhook"), **webhook_changes}
        if webhook_changes:
            options["webhook"] = webhooks.update_settings(options.get("webhook", config.webhook), webhook_changes)
        if options.get("state_path") is not None:
            options["state_path"] = Path(options["state_path"])
        if "redirect_uris" in options:
            options["redirect_uris"] = tuple(options["redirect_uris"] or ())
        return dataclasses.replace(config, **options)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Per-request lines are noise in tests; the simulator keeps its own request log."""


class XeroSimulator:
    """A local Xero: identity (OAuth 2), connections, the Accounting API, webhooks, limits, chaos."""

    def __init__(self, config: SimulatorConfig | None = None, **options: Any) -> None:
        self.config = SimulatorConfig.build(config, **options) if options or config is None else config
        self.clock = SimulatedClock()
        self.stats = Stats()
        self.stopping = threading.Event()
        self.webhooks = webhooks.WebhookEmitter(self.config.webhook)
        self.state = SimulatorState(self.clock, self.webhooks.record)
        self.oauth = oauth.OAuthServer(
            self.state.oauth,
            oauth.OAuthSettings(
                client_id=self.config.client_id,
                client_secret=self.config.client_secret,
                access_token_ttl=self.config.access_token_ttl,
                refresh_token_ttl=self.config.refresh_token_ttl,
                refresh_grace_seconds=self.config.refresh_grace_seconds,
                redirect_uris=self.config.redirect_uris,
            ),
            self.clock.now,
        )
        self.limiter = TenantLimiter(self.config.limits, self.clock.now)
        self.injector = FaultInjector(self.config.faults, self.config.seed)
        self.state_file: StateFile | None = None
        if self.config.state_path is not None:
            self.state_file = StateFile(
                self.config.state_path, self.state, delay_seconds=self.config.save_delay_seconds
            )
            self.state.on_change = self.state_file.schedule
        self.app = SimulatorApp(self)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def _prepare(self) -> BaseWSGIServer:
        loaded = self.state_file.load() if self.state_file is not None else False
        if not loaded and self.config.demo_tenant:
            self._create_demo_tenant()
        server = make_server(
            self.config.host,
            self.config.port,
            self.app,
            threaded=True,
            request_handler=None if self.config.log_requests else _QuietHandler,
        )
        self._server = server
        self.stopping.clear()
        self.webhooks.start()
        if self.state_file is not None:
            self.state_file.start()
        return server

    def start(self) -> XeroSimulator:
        """Serve in a background thread; returns once the port is bound."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        server = self._prepare()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="xero-sim-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl-C), then save and stop."""
        server = self._prepare()
        try:
            server.serve_forever()
        finally:
            self._shutdown_components()
            self._server = None

    def stop(self) -> None:
        if self._server is None:
            return
        self.stopping.set()
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._server = None
        self._shutdown_components()

    def _shutdown_components(self) -> None:
        self.stopping.set()
        self.webhooks.stop()
        if self.state_file is not None:
            self.state_file.stop()

    def __enter__(self) -> XeroSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return self._server.port

    @property
    def base_url(self) -> str:
        host = self.config.host
        if host in {"0.0.0.0", "::", ""}:  # noqa: S104 - naming the wildcard, not binding to it
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api.xro/2.0"

    @property
    def connections_url(self) -> str:
        return f"{self.base_url}/connections"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/connect/token"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/identity/connect/authorize"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/connect/revocation"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid-configuration"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/_simulator/"

    # --- tenants and tokens -------------------------------------------------------------------

    def _create_demo_tenant(self) -> None:
        if self.state.organisation(self.config.demo_tenant_id) is None:
            self.state.create_organisation(name=self.config.demo_tenant_name, tenant_id=self.config.demo_tenant_id)

    def create_tenant(self, name: str = "Demo Company (US)", *, tenant_id: str | None = None) -> str:
        """A new organisation with the seeded chart of accounts and tax rates; returns its id."""
        return self.state.create_organisation(name=name, tenant_id=tenant_id).tenant_id

    def issue_tokens(self, tenant_id: str, *, scope: str = oauth.DEFAULT_SCOPE) -> dict[str, Any]:
        """Tokens as the token endpoint returns them after a consent connecting this one tenant
        (for a user of its own, so they grant no other tenant), without the browser."""
        with self.state.lock:
            if self.state.organisation(tenant_id) is None:
                raise KeyError(f"no tenant {tenant_id}")
            tokens = self.oauth.issue(
                user_id=str(uuid.uuid4()),
                tenant_ids=[tenant_id.lower()],
                client_id=self.config.client_id,
                scope=scope,
            )
            self.state.changed()
        return tokens

    def revoke_tokens(self, tenant_id: str | None = None) -> int:
        """Disconnect every grant (connected to one tenant, or all): access → 401, refresh →
        invalid_grant, the connections gone."""
        with self.state.lock:
            count = self.oauth.revoke_all(tenant_id.lower() if tenant_id else None)
            self.state.changed()
        return count

    def _organisation(self, tenant_id: str) -> Organisation:
        organisation = self.state.organisation(tenant_id)
        if organisation is None:
            raise KeyError(f"no tenant {tenant_id}")
        return organisation

    # --- acting as a Xero user ----------------------------------------------------------------

    def act(self, tenant_id: str, entity: str, operation: str, data: dict[str, Any]) -> dict[str, Any]:
        """Change the organisation the way a person in Xero's screens would, with Xero's field
        names. Operations: create, update (partial; the record's id field names it), archive and
        unarchive (Contact), approve, void and delete (Invoice, CreditNote; delete also Item and
        Payment), allocate (CreditNote; data = CreditNoteID, Invoice, Amount, Date). Returns the
        record as the API would; raises `Invalid` (a ValueError) with Xero's messages."""
        entity = _entity_name(entity)
        operation = operation.lower()
        with self.state.lock:
            organisation = self._organisation(tenant_id)
            stored = self._act(organisation, entity, operation, dict(data))
            self.state.changed()
            if entity == "CreditNote" and operation == "allocate":
                credit_note = organisation.objects("CreditNote")[str(data["CreditNoteID"]).lower()]
                return organisation.present_allocation(credit_note, stored)
            if stored is None:
                return {}
            return organisation.present(entity, stored, single=True)

    @staticmethod
    def _act(organisation: Organisation, entity: str, operation: str, data: dict[str, Any]) -> Any:
        id_field = ID_FIELD[entity]
        if operation == "create":
            data.pop(id_field, None)
        elif operation != "allocate" and not data.get(id_field):
            raise ValueError(f"{operation} needs the record's {id_field}")
        if entity == "Contact":
            statuses = {"archive": "ARCHIVED", "unarchive": "ACTIVE"}
            if operation in statuses:
                data["ContactStatus"] = statuses[operation]
            elif operation not in {"create", "update"}:
                raise ValueError("contacts can be created, updated, archived or unarchived (never deleted)")
            return organisation.save_contact(data, create_only=operation == "create", by_app=False)
        if entity == "Item":
            if operation == "delete":
                organisation.delete_item(str(data[id_field]))
                return None
            if operation not in {"create", "update"}:
                raise ValueError("items can be created, updated or deleted")
            return organisation.save_item(data, create_only=operation == "create", by_app=False)
        if entity == "Payment":
            if operation == "create":
                return organisation.create_payment(data, by_app=False)
            if operation == "delete":
                return organisation.delete_payment(str(data[id_field]), {"Status": "DELETED"})
            raise ValueError("payments can only be created or deleted")
        if entity in ("Invoice", "CreditNote"):
            if operation == "allocate" and entity == "CreditNote":
                return organisation.allocate(str(data.pop("CreditNoteID")), data, by_app=False)
            statuses = {"approve": "AUTHORISED", "void": "VOIDED", "delete": "DELETED"}
            if operation in statuses:
                data["Status"] = statuses[operation]
                operation = "update"
            if operation == "update" and id_field in data:
                organisation.get(entity, str(data[id_field]))
            if operation not in {"create", "update"}:
                raise ValueError(f"unknown operation {operation!r} for {entity}")
            return organisation.save_document(entity, data, create_only=operation == "create", by_app=False)
        raise ValueError(f"{entity} cannot be changed here")

    def get_entity(self, tenant_id: str, entity: str, object_id: str) -> dict[str, Any] | None:
        """The record as the API would return it (GET by id), or None when unknown."""
        entity = _entity_name(entity)
        with self.state.lock:
            organisation = self.state.organisation(tenant_id)
            if organisation is None:
                return None
            stored = organisation.objects(entity).get(str(object_id).lower())
            if stored is None:
                stored = organisation.objects(entity).get(str(object_id))
            return organisation.present(entity, stored, single=True) if stored is not None else None

    def list_entities(self, tenant_id: str, entity: str) -> list[dict[str, Any]]:
        """Every record of a type — archived, voided, deleted ones too — in creation order."""
        entity = _entity_name(entity)
        with self.state.lock:
            organisation = self._organisation(tenant_id)
            rows = sorted(organisation.objects(entity).values(), key=lambda row: row.get("_seq", 0))
            return [organisation.present(entity, row) for row in rows]

    # --- faults, limits, clock, webhooks ------------------------------------------------------

    def set_faults(self, **changes: Any) -> FaultSettings:
        """Change fault injection, e.g. `set_faults(error_rate=0.2, seed=7)` or
        `set_faults(script=["503", "drop"])`; `seed` re-seeds the RNG."""
        seed_given = "seed" in changes
        seed = changes.pop("seed", None)
        settings = update_faults(self.injector.settings, changes)
        self.injector.configure(settings, new_script="script" in changes)
        if seed_given:
            self.injector.reseed(None if seed is None else int(seed))
        return settings

    def clear_faults(self) -> FaultSettings:
        self.injector.configure(FaultSettings())
        return self.injector.settings

    def fault_status(self) -> dict[str, Any]:
        status = asdict(self.injector.settings)
        status["seed"] = self.injector.seed
        status["remaining_script"] = self.injector.remaining_script
        return status

    def set_limits(self, **changes: Any) -> LimitSettings:
        """e.g. `set_limits(calls_per_minute=5, calls_per_day=20, max_concurrent=2)`."""
        settings = update_limits(self.limiter.settings, changes)
        self.limiter.configure(settings)
        return settings

    def advance_clock(self, seconds: float) -> datetime:
        """Move simulated time (token expiry, the rate-limit windows, UpdatedDateUTC)."""
        moment = self.clock.advance(seconds)
        self.state.changed()
        return moment

    def set_clock(self, moment: datetime) -> datetime:
        moment = self.clock.set(moment)
        self.state.changed()
        return moment

    def configure_webhooks(self, **changes: Any) -> webhooks.WebhookSettings:
        """e.g. `configure_webhooks(url=..., key=..., window_seconds=0)`; `webhook_`-prefixed
        names are accepted too."""
        renamed = {_WEBHOOK_SHORTCUTS.get(name, name): value for name, value in changes.items()}
        settings = webhooks.update_settings(self.webhooks.settings, renamed)
        self.webhooks.configure(settings)
        return settings

    def flush_webhooks(self) -> list[dict[str, Any]]:
        """Deliver pending events (and pending retries) now; returns each attempt."""
        return self.webhooks.flush()

    def intent_to_receive(self, url: str | None = None) -> dict[str, Any]:
        """Send Xero's intent-to-receive probes (one good, one bad signature) and report."""
        return self.webhooks.intent_to_receive(url)

    # --- observation and housekeeping ---------------------------------------------------------

    def stats_snapshot(self) -> dict[str, Any]:
        snapshot = self.stats.snapshot(dict(self.limiter.peak_concurrency))
        snapshot["webhooks"] = dict(self.webhooks.counters)
        snapshot["now"] = self.clock.now().isoformat()
        return snapshot

    def request_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.stats.recent(limit)

    def reset(self, *, demo_tenant: bool | None = None) -> None:
        """Back to a fresh start: no data but the demo tenant (if configured), default clock,
        faults, limits and webhook settings from the configuration, empty counters."""
        with self.state.lock:
            self.state.clear()
            self.clock.reset()
            self.limiter.configure(self.config.limits)
            self.limiter.reset()
            self.injector.configure(self.config.faults)
            self.injector.reseed(self.config.seed)
            self.webhooks.configure(self.config.webhook)
            self.webhooks.clear()
            self.stats.clear()
            if self.config.demo_tenant if demo_tenant is None else demo_tenant:
                self._create_demo_tenant()
            self.state.changed()

    def save(self) -> None:
        if self.state_file is None:
            raise RuntimeError("the simulator runs without a state file")
        self.state_file.save_now()


def _entity_name(name: str) -> str:
    for entity in ENTITIES:
        if name.lower() in {entity.lower(), f"{entity.lower()}s"}:
            return entity
    raise ValueError(f"unknown entity {name!r}; one of {', '.join(ENTITIES)}")


__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_WEBHOOK_KEY",
    "DEMO_TENANT_ID",
    "Invalid",
    "SimulatorConfig",
    "XeroSimulator",
]
