"""A QuickBooks adapter for one connection and one run: client, tokens, pacing, breaker."""

from __future__ import annotations

from django.conf import settings

from integrations.core.adapter import Mapping
from integrations.core.throttle import CircuitBreaker, TenantLimiter
from integrations.tokens import ConnectionTokenStore

from .adapter import QuickBooksAdapter
from .client import QuickBooksClient
from .oauth import QuickBooksOAuth

# Intuit allows 10 requests a second per realm; Concord keeps below it with headroom.
REQUESTS_PER_SECOND = 8


def build_adapter(connection, *, mapping: Mapping, recorder=None) -> QuickBooksAdapter:
    key = f"quickbooks:{connection.tenant_id}"
    client = QuickBooksClient(
        realm_id=connection.tenant_id,
        tokens=ConnectionTokenStore(connection.pk),
        oauth=QuickBooksOAuth(),
        limiter=TenantLimiter(
            key,
            per_minute=connection.requests_per_minute,
            max_in_flight=connection.max_in_flight,
            per_second=REQUESTS_PER_SECOND,
            redis_url=settings.SYNC_REDIS_URL or None,
        ),
        breaker=CircuitBreaker(key, redis_url=settings.SYNC_REDIS_URL or None),
        recorder=recorder,
    )
    return QuickBooksAdapter(client=client, mapping=mapping)
