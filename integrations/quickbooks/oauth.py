"""Intuit's OAuth 2.0 endpoints: the connect redirect, code exchange, refresh and revoke.

Wire contract: shared/contracts/quickbooks.md §3. Token calls are form-encoded with the app's
credentials as HTTP Basic auth; the revoke call takes a JSON body. Hosts and credentials come from
settings (which default to the local simulator) unless the constructor is given others.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from urllib.parse import urlencode

import httpx
from django.conf import settings
from django.utils import timezone

from integrations.core.errors import RateLimited, ReauthorizationRequired, SyncError, TransientError
from integrations.core.tokens import Tokens

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"


class InvalidClientCredentials(SyncError):
    """Intuit refused the app's own client id or secret (401 invalid_client).

    Reconnecting cannot fix this: the deployment's QUICKBOOKS_CLIENT_ID / QUICKBOOKS_CLIENT_SECRET
    are wrong, so it is neither transient nor a lost grant."""


class QuickBooksOAuth:
    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        authorize_url: str | None = None,
        token_url: str | None = None,
        revoke_url: str | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        clock: Callable[[], datetime] = timezone.now,
    ):
        self.client_id = client_id if client_id is not None else settings.QUICKBOOKS_CLIENT_ID
        self.client_secret = client_secret if client_secret is not None else settings.QUICKBOOKS_CLIENT_SECRET
        self.authorize_url = authorize_url or settings.QUICKBOOKS_AUTHORIZE_URL
        self.token_url = token_url or settings.QUICKBOOKS_TOKEN_URL
        self.revoke_url = revoke_url or settings.QUICKBOOKS_REVOKE_URL
        self._http = http or httpx.Client(timeout=timeout)
        self._clock = clock

    def authorization_url(self, *, redirect_uri: str, state: str, scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,)) -> str:
        """Where to send the browser; Intuit comes back to `redirect_uri` with code, state and realmId."""
        query = urlencode(
            {
                "client_id": self.client_id,
                "response_type": "code",
                "scope": " ".join(scopes),
                "redirect_uri": redirect_uri,
                "state": state,
            }
        )
        separator = "&" if "?" in self.authorize_url else "?"
        return f"{self.authorize_url}{separator}{query}"

    def exchange_code(self, code: str, redirect_uri: str) -> Tokens:
        return self._token_call({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    def refresh(self, refresh_token: str) -> Tokens:
        """New tokens for `refresh_token`. The refresh token in the result may differ (rotation):
        the caller must save it before using it (TokenStore.refresh does)."""
        tokens = self._token_call({"grant_type": "refresh_token", "refresh_token": refresh_token})
        if not tokens.refresh_token:
            # Intuit always returns one today; keeping the old value is the only sane fallback.
            tokens = Tokens(tokens.access_token, tokens.access_expires_at, refresh_token, tokens.refresh_expires_at)
        return tokens

    def revoke(self, token: str) -> None:
        """Revoke a refresh or access token (the whole grant goes with it)."""
        response = self._post(
            self.revoke_url,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
            content=json.dumps({"token": token}).encode(),
        )
        if response.status_code == 200:
            return
        error, description = _oauth_error(response)
        if response.status_code == 400 and error in ("invalid_grant", "invalid_token", ""):
            # The token was already dead: the end state the caller wants.
            return
        self._raise_for(response, error, description)

    def _token_call(self, form: dict[str, str]) -> Tokens:
        started = self._clock()
        response = self._post(
            self.token_url,
            headers={"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"},
            content=urlencode(form).encode(),
        )
        if response.status_code != 200:
            error, description = _oauth_error(response)
            self._raise_for(response, error, description)
        try:
            body = response.json()
            access_token = body["access_token"]
            expires_in = int(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError(
                f"Intuit's token endpoint answered 200 without tokens: {response.text[:200]!r}"
            ) from exc
        refresh_life = body.get("x_refresh_token_expires_in")
        return Tokens(
            access_token=access_token,
            # Counted from when the request started, so clock skew and latency only shorten it.
            access_expires_at=started + timedelta(seconds=expires_in),
            refresh_token=body.get("refresh_token", ""),
            refresh_expires_at=started + timedelta(seconds=int(refresh_life)) if refresh_life else None,
        )

    def _post(self, url: str, *, headers: dict[str, str], content: bytes) -> httpx.Response:
        try:
            return self._http.post(url, headers=headers, content=content, auth=(self.client_id, self.client_secret))
        except httpx.HTTPError as exc:
            raise TransientError(f"Intuit's OAuth endpoint did not answer: {exc}") from exc

    def _raise_for(self, response: httpx.Response, error: str, description: str) -> None:
        status = response.status_code
        said = f"{error}: {description}" if description else error or response.text[:200]
        if status == 400 and error == "invalid_grant":
            raise ReauthorizationRequired(
                f"QuickBooks no longer accepts this connection's grant ({said}); reconnect it.", code=error
            )
        if status == 401 or error == "invalid_client":
            raise InvalidClientCredentials(
                "Intuit refused the app's client credentials (invalid_client): check QUICKBOOKS_CLIENT_ID "
                "and QUICKBOOKS_CLIENT_SECRET.",
                code="invalid_client",
            )
        if status == 429:
            raise RateLimited(f"Intuit's OAuth endpoint is throttling ({said})", code=str(status))
        if status >= 500:
            raise TransientError(f"Intuit's OAuth endpoint failed with HTTP {status} ({said})", code=str(status))
        raise SyncError(
            f"Intuit's OAuth endpoint refused the request: HTTP {status} ({said})", code=error or str(status)
        )


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    """The standard OAuth2 error body, or empty strings when the body is not one (HTML, XML, empty)."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error") or ""), str(body.get("error_description") or "")
