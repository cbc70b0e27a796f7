"""Which adapter serves which provider, and how one is built for a connection and a run.

Adapters are imported here only, by name, so the engine and the pages never import a vendor."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from .core.adapter import Adapter, Mapping

# provider → "module:function" building an Adapter from (connection, mapping, recorder).
BUILDERS = {
    "quickbooks": "integrations.quickbooks.build:build_adapter",
    "xero": "integrations.xero.build:build_adapter",
}


def build_adapter(connection, *, mapping: Mapping, recorder: Callable[[dict], None] | None = None) -> Adapter:
    try:
        path = BUILDERS[connection.provider]
    except KeyError:
        raise ValueError(f"No adapter for provider {connection.provider!r}.") from None
    module, name = path.split(":")
    return getattr(import_module(module), name)(connection, mapping=mapping, recorder=recorder)


def pacing_defaults(provider: str) -> dict[str, int]:
    """A new connection's own pacing, as the provider's builder module states it
    (REQUESTS_PER_MINUTE, MAX_IN_FLIGHT); the model's defaults where it states none."""
    if provider not in BUILDERS:
        return {}
    module = import_module(BUILDERS[provider].split(":")[0])
    pacing = {"requests_per_minute": "REQUESTS_PER_MINUTE", "max_in_flight": "MAX_IN_FLIGHT"}
    return {field: getattr(module, name) for field, name in pacing.items() if hasattr(module, name)}


def authorization_module(provider: str):
    """The provider's OAuth helpers (authorization URL, code exchange, revoke)."""
    return import_module(f"integrations.{provider}.connect")


def webhook_module(provider: str):
    """The provider's webhook reader: `verified_notifications(body, headers)` returns objects with
    realm_id, entity, remote_id and operation, or raises for a bad signature."""
    if provider not in BUILDERS:
        raise LookupError(provider)
    return import_module(f"integrations.{provider}.webhooks")
