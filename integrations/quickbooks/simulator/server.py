"""`QuickBooksSimulator`: the simulator as an object tests and the management command drive.

    with QuickBooksSimulator(port=0) as sim:
        realm = sim.create_realm(company_name="Acme Books")
        tokens = sim.issue_tokens(realm)
        httpx.get(f"{sim.api_url}/company/{realm}/item/1",
                  headers={"Authorization": f"Bearer {tokens['access_token']}",
                           "Accept": "application/json"})

It serves on a werkzeug threaded server in a background thread (or in the foreground with
`serve_forever()`), keeps its state in memory behind one lock and, with `state_path`, in a
JSON file.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from . import oauth, webhooks
from .app import SimulatorApp, Stats
from .clock import SimulatedClock
from .company import ENTITIES
from .faults import QBOFault
from .limits import (
    FaultInjector,
    FaultSettings,
    LimitSettings,
    RealmLimiter,
    update_faults,
    update_limits,
)
from .state import SimulatorState, StateFile

# The same defaults as Concord's settings (QUICKBOOKS_CLIENT_ID, …_SECRET, …_WEBHOOK_VERIFIER_TOKEN);
# the simulator stands in for Intuit and so does not read Concord's settings itself.
DEFAULT_CLIENT_ID = "concord-demo-client"
DEFAULT_CLIENT_SECRET = "concord-demo-secret"  # noqa: S105 - the public demo value, as in settings
DEFAULT_VERIFIER_TOKEN = "concord-demo-verifier"  # noqa: S105 - the public demo value, as in settings
DEMO_REALM_ID = "9130357766900456"
DEMO_COMPANY_NAME = "Sandbox Company_US_1"

_WEBHOOK_SHORTCUTS = {
    "webhook_url": "url",
    "verifier_token": "verifier_token",
    "webhook_format": "format",
    "webhook_window_seconds": "window_seconds",
    "webhook_retries": "retries",
    "webhook_backoff_seconds": "backoff_seconds",
    "webhook_timeout_seconds": "timeout_seconds",
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
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 8_726_400
    refresh_grace_seconds: int = 60
    rotate_refresh_tokens: bool = True
    limits: LimitSettings = field(default_factory=LimitSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    seed: int | None = None
    webhook: webhooks.WebhookSettings = field(
        default_factory=lambda: webhooks.WebhookSettings(verifier_token=DEFAULT_VERIFIER_TOKEN)
    )
    demo_realm: bool = True
    demo_realm_id: str = DEMO_REALM_ID
    demo_company_name: str = DEMO_COMPANY_NAME
    timezone: str = "America/Los_Angeles"
    cdc_max_objects: int = 1000
    cdc_window_days: int = 30
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


class QuickBooksSimulator:
    """A local QuickBooks Online: OAuth, the Accounting API v3, webhooks, limits and chaos."""

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
                rotate_refresh_tokens=self.config.rotate_refresh_tokens,
                redirect_uris=self.config.redirect_uris,
            ),
            self.clock.now,
        )
        self.limiter = RealmLimiter(self.config.limits, self.clock.now)
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
        if not loaded and self.config.demo_realm:
            self._create_demo_realm()
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

    def start(self) -> QuickBooksSimulator:
        """Serve in a background thread; returns once the port is bound."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        server = self._prepare()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="qbo-sim-server", daemon=True
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

    def __enter__(self) -> QuickBooksSimulator:
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
        return f"{self.base_url}/v3"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth2/v1/tokens/bearer"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/connect/oauth2"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/oauth2/v1/tokens/revoke"

    @property
    def discovery_url(self) -> str:
        return f"{self.base_url}/.well-known/openid_configuration"

    @property
    def admin_url(self) -> str:
        return f"{self.base_url}/_simulator/"

    # --- realms and tokens --------------------------------------------------------------------

    def _create_demo_realm(self) -> None:
        if self.state.company(self.config.demo_realm_id) is None:
            self.state.create_company(
                company_name=self.config.demo_company_name,
                realm_id=self.config.demo_realm_id,
                timezone=self.config.timezone,
            )

    def create_realm(
        self, company_name: str = "Sandbox Company", *, realm_id: str | None = None, timezone: str | None = None
    ) -> str:
        """A new company with the seeded chart of accounts and the "Services" item (Id "1")."""
        company = self.state.create_company(
            company_name=company_name,
            realm_id=str(realm_id) if realm_id is not None else None,
            timezone=timezone or self.config.timezone,
        )
        return company.realm_id

    def issue_tokens(self, realm_id: str) -> dict[str, Any]:
        """Tokens as the token endpoint would return them after a consent, without the browser."""
        with self.state.lock:
            if self.state.company(realm_id) is None:
                raise KeyError(f"no realm {realm_id}")
            tokens = self.oauth.issue(realm_id=realm_id, client_id=self.config.client_id)
            self.state.changed()
        return tokens

    def revoke_tokens(self, realm_id: str | None = None) -> int:
        """Disconnect every grant (of one realm, or all): access → 401, refresh → invalid_grant."""
        with self.state.lock:
            count = self.oauth.revoke_all(realm_id)
            self.state.changed()
        return count

    # --- acting as a QuickBooks user ----------------------------------------------------------

    def act(self, realm_id: str, entity: str, operation: str, data: dict[str, Any]) -> dict[str, Any]:
        """Change the company the way a person in QBO's screens would: no OAuth, no SyncToken
        needed (one given is still checked). Operations: create, update (sparse), replace (full),
        void, delete, send, merge (Customer; data = {"source_id", "target_id"})."""
        entity = _entity_name(entity)
        with self.state.lock:
            company = self.state.company(realm_id)
            if company is None:
                raise ValueError(f"no realm {realm_id}")
            check = "SyncToken" in data
            operation = operation.lower()
            if operation == "create":
                stored = company.create(entity, data)
            elif operation in {"update", "sparse"}:
                stored = company.update(entity, data, sparse=True, check_sync_token=check)
            elif operation in {"replace", "full"}:
                stored = company.update(entity, data, sparse=False, check_sync_token=check)
            elif operation == "void":
                stored = company.void(entity, data, check_sync_token=check)
            elif operation == "delete":
                result = company.delete(entity, data, check_sync_token=check)
                self.state.changed()
                return result
            elif operation == "send":
                stored = company.send(entity, str(data.get("Id", "")), data.get("sendTo"))
            elif operation == "merge":
                if entity != "Customer":
                    raise ValueError("only customers can be merged")
                stored = company.merge_customers(source_id=str(data["source_id"]), target_id=str(data["target_id"]))
            else:
                raise ValueError(f"unknown operation {operation!r}")
            self.state.changed()
            return company.present(entity, stored)

    def get_entity(self, realm_id: str, entity: str, object_id: str) -> dict[str, Any] | None:
        """The object as the API would return it, or None when unknown or deleted."""
        entity = _entity_name(entity)
        with self.state.lock:
            company = self.state.company(realm_id)
            if company is None:
                return None
            stored = company.objects(entity).get(str(object_id))
            return company.present(entity, stored) if stored is not None else None

    def list_entities(self, realm_id: str, entity: str) -> list[dict[str, Any]]:
        """Every object of a type, inactive and voided ones included, in Id order."""
        entity = _entity_name(entity)
        with self.state.lock:
            company = self.state.company(realm_id)
            if company is None:
                raise KeyError(f"no realm {realm_id}")
            rows = sorted(company.objects(entity).values(), key=lambda row: int(row["Id"]))
            return company.present_many(entity, rows)

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
        settings = update_limits(self.limiter.settings, changes)
        self.limiter.configure(settings)
        return settings

    def advance_clock(self, seconds: float) -> datetime:
        """Move simulated time (token expiry, the throttle bucket, CDC's window, MetaData)."""
        moment = self.clock.advance(seconds)
        self.state.changed()
        return moment

    def set_clock(self, moment: datetime) -> datetime:
        moment = self.clock.set(moment)
        self.state.changed()
        return moment

    def configure_webhooks(self, **changes: Any) -> webhooks.WebhookSettings:
        renamed = {_WEBHOOK_SHORTCUTS.get(name, name): value for name, value in changes.items()}
        settings = webhooks.update_settings(self.webhooks.settings, renamed)
        self.webhooks.configure(settings)
        return settings

    def flush_webhooks(self) -> list[dict[str, Any]]:
        """Deliver pending notifications (and pending retries) now; returns each attempt."""
        return self.webhooks.flush()

    # --- observation and housekeeping ---------------------------------------------------------

    def stats_snapshot(self) -> dict[str, Any]:
        snapshot = self.stats.snapshot(dict(self.limiter.peak_concurrency))
        snapshot["webhooks"] = dict(self.webhooks.counters)
        snapshot["now"] = self.clock.now().isoformat()
        return snapshot

    def request_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.stats.recent(limit)

    def reset(self, *, demo_realm: bool | None = None) -> None:
        """Back to a fresh start: no data but the demo realm (if configured), default clock,
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
            if self.config.demo_realm if demo_realm is None else demo_realm:
                self._create_demo_realm()
            self.state.changed()

    def save(self) -> None:
        if self.state_file is None:
            raise RuntimeError("the simulator runs without a state file")
        self.state_file.save_now()


def _entity_name(name: str) -> str:
    for entity in ENTITIES:
        if entity.lower() == name.lower():
            return entity
    raise ValueError(f"unknown entity {name!r}; one of {', '.join(ENTITIES)}")


__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_VERIFIER_TOKEN",
    "QBOFault",
    "QuickBooksSimulator",
    "SimulatorConfig",
]
