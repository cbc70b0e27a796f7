"""A Xero adapter for one connection and one run: client, tokens, pacing, breaker."""

from __future__ import annotations

from django.conf import settings

from integrations.core.adapter import Mapping
from integrations.core.throttle import CircuitBreaker, TenantLimiter
from integrations.tokens import ConnectionTokenStore

from .adapter import XeroAdapter
from .client import XeroClient
from .oauth import XeroOAuth

# Xero allows 60 calls a minute and 5 at once per organisation (§11); Concord keeps a little below
# the minute limit, since Xero's window and Concord's are not measured from the same instant.
# A Xero connection's own pacing (Connection.requests_per_minute, max_in_flight) starts at these.
REQUESTS_PER_MINUTE = 57
MAX_IN_FLIGHT = 5


def build_adapter(connection, *, mapping: Mapping, recorder=None) -> XeroAdapter:
    key = f"xero:{connection.tenant_id}"
    redis_url = getattr(settings, "SYNC_REDIS_URL", "") or None
    client = XeroClient(
        tenant_id=connection.tenant_id,
        tokens=ConnectionTokenStore(connection.pk),
        oauth=XeroOAuth(),
        limiter=TenantLimiter(
            key,
            # The connection's pacing, as QuickBooks' is: a simulator whose limit is raised (the
            # chaos test) is paced by raising the connection's.
            per_minute=connection.requests_per_minute,
            max_in_flight=connection.max_in_flight,
            redis_url=redis_url,
        ),
        breaker=CircuitBreaker(key, redis_url=redis_url),
        recorder=recorder,
    )
    return XeroAdapter(client=client, mapping=mapping)
