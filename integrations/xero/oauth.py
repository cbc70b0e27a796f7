"""Xero's OAuth 2.0 endpoints: the consent redirect, code exchange, refresh, revoke, and the
tenants (organisations) a grant reaches.

Wire contract: shared/contracts/xero.md §2. Token calls are form-encoded with the app's
credentials as HTTP Basic auth. Access tokens live 30 minutes; every refresh answers with a new
refresh token and the old one dies (after a 30-minute grace), so the caller saves the new one
before using the new access token (`TokenStore.refresh` does). A refresh token unused for 60 days
expires. Hosts, credentials and scopes come from settings (which default to the local simulator)
unless the constructor is given others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import httpx
from django.conf import settings
from django.utils import timezone

from integrations.core.errors import RateLimited, ReauthorizationRequired, SyncError, TransientError
from integrations.core.tokens import Tokens

# What Concord needs (§2.1); `offline_access` is what yields a refresh token. Items are settings
# in Xero's scopes: pushing products needs `accounting.settings`, not only its `.read` variant.
DEFAULT_SCOPES = "openid profile email offline_access accounting.transactions accounting.contacts accounting.settings"
# Xero does not say when a refresh token expires; it dies after this long unused (§2.2).
REFRESH_TOKEN_IDLE_LIFETIME = timedelta(days=60)
ACCESS_TOKEN_LIFETIME = 1800

DEFAULT_AUTHORIZE_URL = "http://127.0.0.1:8766/identity/connect/authorize"
DEFAULT_TOKEN_URL = "http://127.0.0.1:8766/connect/token"  # noqa: S105 (an address, not a secret)
DEFAULT_REVOKE_URL = "http://127.0.0.1:8766/connect/revocation"
DEFAULT_CONNECTIONS_URL = "http://127.0.0.1:8766/connections"


def setting(name: str, default: str) -> str:
    """A host or scope setting; unset or empty means the default (the local simulator)."""
    return getattr(settings, name, default) or default


def secret_setting(name: str, default: str) -> str:
    """A credential setting; only an unset one falls back to the demo value, never an empty one."""
    return getattr(settings, name, default)


class InvalidClientCredentials(SyncError):
    """Xero refused the app's own client id or secret (invalid_client).

    Reconnecting cannot fix this: the deployment's XERO_CLIENT_ID / XERO_CLIENT_SECRET are wrong,
    so it is neither transient nor a lost grant."""


@dataclass(frozen=True)
class Tenant:
    """One organisation a grant reaches (an entry of `GET /connections`)."""

    tenant_id: str
    name: str
    tenant_type: str
    # The connection's own id: what `DELETE /connections/{id}` takes to disconnect just this one.
    connection_id: str


class XeroOAuth:
    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        authorize_url: str | None = None,
        token_url: str | None = None,
        revoke_url: str | None = None,
        connections_url: str | None = None,
        scopes: str | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        clock: Callable[[], datetime] = timezone.now,
    ):
        self.client_id = (
            client_id if client_id is not None else secret_setting("XERO_CLIENT_ID", "concord-xero-demo-client")
        )
        self.client_secret = (
            client_secret
            if client_secret is not None
            else secret_setting("XERO_CLIENT_SECRET", "concord-xero-demo-secret")
        )
        self.authorize_url = authorize_url or setting("XERO_AUTHORIZE_URL", DEFAULT_AUTHORIZE_URL)
        self.token_url = token_url or setting("XERO_TOKEN_URL", DEFAULT_TOKEN_URL)
        self.revoke_url = revoke_url or setting("XERO_REVOKE_URL", DEFAULT_REVOKE_URL)
        self.connections_url = connections_url or setting("XERO_CONNECTIONS_URL", DEFAULT_CONNECTIONS_URL)
        self.scopes = " ".join((scopes or setting("XERO_SCOPES", DEFAULT_SCOPES)).split())
        self._http = http or httpx.Client(timeout=timeout)
        self._clock = clock

    def authorization_url(self, *, redirect_uri: str, state: str) -> str:
        """Where to send the browser; Xero comes back to `redirect_uri` with code and state (no
        tenant: the tenants are listed with the new tokens, `tenants`)."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.scopes,
                "state": state,
            }
        )
        separator = "&" if "?" in self.authorize_url else "?"
        return f"{self.authorize_url}{separator}{query}"

    def exchange_code(self, code: str, redirect_uri: str) -> Tokens:
        return self._token_call({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for `refresh_token`, which is spent by this call: the caller must save the
        returned refresh token before using the access token (TokenStore.refresh does)."""
        tokens = self._token_call({"grant_type": "refresh_token", "refresh_token": refresh_token})
        if not tokens.refresh_token:
            # Xero always rotates; an answer without one leaves the old value as the only candidate.
            tokens = Tokens(tokens.access_token, tokens.access_expires_at, refresh_token, tokens.refresh_expires_at)
        return tokens

    def revoke(self, refresh_token: str) -> None:
        """Revoke the grant: every connection it made goes with it."""
        response = self._post(self.revoke_url, {"token": refresh_token})
        if response.status_code == 200:
            return
        error, description = _oauth_error(response)
        if response.status_code == 400 and error in ("invalid_grant", "invalid_token", ""):
            return  # already dead: the end state the caller wants
        self._raise_for(response, error, description)

    def tenants(self, access_token: str) -> list[Tenant]:
        """The organisations this grant reaches, as `GET /connections` lists them."""
        try:
            response = self._http.get(
                self.connections_url,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"Xero's connections endpoint did not answer: {exc}") from exc
        if response.status_code in (401, 403):
            raise ReauthorizationRequired(
                f"Xero refused to list the organisations of this grant (HTTP {response.status_code}); connect again.",
                code=str(response.status_code),
            )
        if response.status_code == 429:
            raise RateLimited("Xero's connections endpoint is throttling", code="429")
        if response.status_code >= 500:
            raise TransientError(f"Xero's connections endpoint failed with HTTP {response.status_code}")
        try:
            rows = response.json()
        except ValueError:
            rows = None
        if response.status_code != 200 or not isinstance(rows, list):
            raise SyncError(
                f"Xero's connections endpoint answered HTTP {response.status_code}: {response.text[:200]}",
                code=str(response.status_code),
            )
        return [
            Tenant(
                tenant_id=str(row.get("tenantId") or ""),
                name=str(row.get("tenantName") or ""),
                tenant_type=str(row.get("tenantType") or ""),
                connection_id=str(row.get("id") or ""),
            )
            for row in rows
            if isinstance(row, dict) and row.get("tenantId")
        ]

    def _token_call(self, form: dict[str, str]) -> Tokens:
        started = self._clock()
        response = self._post(self.token_url, form)
        if response.status_code != 200:
            error, description = _oauth_error(response)
            self._raise_for(response, error, description)
        try:
            body = response.json()
            access_token = body["access_token"]
            expires_in = int(body.get("expires_in", ACCESS_TOKEN_LIFETIME))
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError(f"Xero's token endpoint answered 200 without tokens: {response.text[:200]!r}") from exc
        return Tokens(
            access_token=access_token,
            # Counted from when the request started, so clock skew and latency only shorten it.
            access_expires_at=started + timedelta(seconds=expires_in),
            refresh_token=str(body.get("refresh_token") or ""),
            refresh_expires_at=started + REFRESH_TOKEN_IDLE_LIFETIME,
        )

    def _post(self, url: str, form: dict[str, str]) -> httpx.Response:
        try:
            return self._http.post(
                url,
                headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
                content=urlencode(form).encode(),
                auth=(self.client_id, self.client_secret),
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"Xero's OAuth endpoint did not answer: {exc}") from exc

    def _raise_for(self, response: httpx.Response, error: str, description: str) -> None:
        status = response.status_code
        said = f"{error}: {description}" if description else error or response.text[:200]
        if status == 400 and error == "invalid_grant":
            raise ReauthorizationRequired(
                f"Xero no longer accepts this connection's grant ({said}); reconnect it.", code=error
            )
        if error == "invalid_client" or status == 401:
            raise InvalidClientCredentials(
                "Xero refused the app's client credentials (invalid_client): check XERO_CLIENT_ID and "
                "XERO_CLIENT_SECRET.",
                code="invalid_client",
            )
        if status == 429:
            raise RateLimited(f"Xero's OAuth endpoint is throttling ({said})", code=str(status))
        if status >= 500:
            raise TransientError(f"Xero's OAuth endpoint failed with HTTP {status} ({said})", code=str(status))
        raise SyncError(f"Xero's OAuth endpoint refused the request: HTTP {status} ({said})", code=error or str(status))


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    """The standard OAuth2 error body, or empty strings when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error") or ""), str(body.get("error_description") or "")
