"""OAuth tokens as the HTTP clients see them, and where they are kept.

A client asks its `TokenStore` for the current access token and, when that is refused or about
to expire, asks it to refresh. The store makes refreshing single-flight per tenant and saves a
rotated refresh token *before* anyone uses it, so two workers never spend the same one and a
crash after the vendor rotated it cannot lose it. `Connection` (integrations/models.py) provides
the database-backed store; `MemoryTokenStore` serves tests and one-off scripts.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

# Refresh this long before the access token's stated expiry, so a request never starts with a
# token that dies in flight.
REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime | None = None

    def access_is_fresh(self, *, now: datetime | None = None) -> bool:
        return bool(self.access_token) and (now or timezone.now()) < self.access_expires_at - REFRESH_MARGIN


# Called with the refresh token in use; returns the new tokens or raises ReauthorizationRequired.
Refresher = Callable[[str], Tokens]


class TokenStore(ABC):
    @abstractmethod
    def current(self) -> Tokens:
        """The tokens as last saved."""

    @abstractmethod
    def refresh(self, refresher: Refresher, *, refused: str = "") -> Tokens:
        """Fresh tokens, refreshing at most once across every worker.

        `refused` is an access token the vendor just refused: if the saved one differs, another
        worker has refreshed meanwhile and its tokens are returned without a new refresh."""

    @abstractmethod
    def reauthorization_required(self, reason: str) -> None:
        """The grant is gone: stop using it and tell a person (the connection's banner)."""


class MemoryTokenStore(TokenStore):
    """Tokens in this process only."""

    def __init__(self, tokens: Tokens):
        self._tokens = tokens
        self._lock = threading.Lock()
        self.refreshes = 0
        self.revoked_reason = ""

    def current(self) -> Tokens:
        return self._tokens

    def refresh(self, refresher: Refresher, *, refused: str = "") -> Tokens:
        with self._lock:
            saved = self._tokens
            if refused and saved.access_token != refused and saved.access_is_fresh():
                return saved
            if not refused and saved.access_is_fresh():
                return saved
            self._tokens = refresher(saved.refresh_token)
            self.refreshes += 1
            return self._tokens

    def reauthorization_required(self, reason: str) -> None:
        self.revoked_reason = reason
