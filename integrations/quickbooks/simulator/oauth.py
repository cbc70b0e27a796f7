"""Intuit's OAuth 2.0 server, as a connector sees it (contract §3).

Authorization codes (single use, 5 minutes), opaque access tokens (3600 s by default),
refresh tokens with a rolling expiry that rotate on every refresh (the previous value keeps
working for a short grace so two workers racing on one refresh both succeed), revocation of a
whole grant, and `invalid_grant` / `invalid_client` answers in the standard OAuth error shape.

Everything lives in one JSON-able dict so it is saved with the rest of the state; the caller
holds the state lock.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import wire

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
CODE_LIFETIME = timedelta(minutes=5)
# An expired access token is still recognised (to answer "Token expired" rather than "invalid")
# for a day, then forgotten.
EXPIRED_TOKEN_MEMORY = timedelta(days=1)


@dataclass(frozen=True)
class OAuthSettings:
    client_id: str
    client_secret: str
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 8_726_400
    refresh_grace_seconds: int = 60
    rotate_refresh_tokens: bool = True
    redirect_uris: tuple[str, ...] = ()


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


@dataclass(frozen=True)
class AccessCheck:
    """Outcome of checking a bearer token for a realm: ok, or why not."""

    ok: bool
    status: int = 200
    detail: str = ""


def empty_state() -> dict[str, Any]:
    return {"codes": {}, "grants": {}, "access_tokens": {}, "refresh_tokens": {}, "next_grant": 1}


def _opaque(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(40)


def _refresh_value() -> str:
    # Intuit's refresh tokens look like "AB11730000000abcdef…"; the shape helps recognise them in logs.
    return "AB11" + str(secrets.randbelow(10**10)).zfill(10) + secrets.token_hex(16)


class OAuthServer:
    def __init__(self, state: dict[str, Any], settings: OAuthSettings, clock: Callable[[], datetime]) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock

    # --- client authentication --------------------------------------------------------------

    def authenticate_client(self, authorization: str | None) -> str:
        """Check `Authorization: Basic base64(id:secret)`; return the client id."""
        if not authorization or not authorization.lower().startswith("basic "):
            raise OAuthError(401, "invalid_client", "Basic client authentication is required")
        try:
            decoded = base64.b64decode(authorization.split(None, 1)[1], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, IndexError) as error:
            raise OAuthError(401, "invalid_client", "malformed Basic credentials") from error
        client_id, _, secret = decoded.partition(":")
        if not (
            hmac.compare_digest(client_id, self.settings.client_id)
            and hmac.compare_digest(secret, self.settings.client_secret)
        ):
            raise OAuthError(401, "invalid_client")
        return client_id

    def redirect_allowed(self, redirect_uri: str) -> bool:
        return not self.settings.redirect_uris or redirect_uri in self.settings.redirect_uris

    # --- authorization codes -----------------------------------------------------------------

    def create_code(self, *, client_id: str, redirect_uri: str, realm_id: str, scope: str) -> str:
        code = _opaque("AB1")
        self.state["codes"][code] = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "realm_id": realm_id,
            "scope": scope,
            "expires": wire.utc_text(self.clock() + CODE_LIFETIME),
        }
        return code

    # --- token endpoint -----------------------------------------------------------------------

    def token(self, *, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            return self._exchange_code(client_id, form)
        if grant_type == "refresh_token":
            return self._refresh(client_id, form.get("refresh_token", ""))
        if not grant_type:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        raise OAuthError(400, "unsupported_grant_type")

    def _exchange_code(self, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        code = form.get("code", "")
        entry = self.state["codes"].pop(code, None)
        if entry is None:
            raise OAuthError(400, "invalid_grant", "the authorization code is unknown or was already used")
        if wire.from_utc_text(entry["expires"]) < self.clock():
            raise OAuthError(400, "invalid_grant", "the authorization code has expired")
        if entry["client_id"] != client_id or entry["redirect_uri"] != form.get("redirect_uri", ""):
            raise OAuthError(400, "invalid_grant", "redirect_uri or client does not match the authorization")
        return self.issue(realm_id=entry["realm_id"], client_id=client_id, scope=entry["scope"])

    def issue(self, *, realm_id: str, client_id: str, scope: str = ACCOUNTING_SCOPE) -> dict[str, Any]:
        """Create a new grant (a connection of the app to a realm) and its first tokens."""
        now = self.clock()
        grant_id = str(self.state["next_grant"])
        self.state["next_grant"] += 1
        refresh_token = _refresh_value()
        self.state["grants"][grant_id] = {
            "realm_id": realm_id,
            "client_id": client_id,
            "scope": scope,
            "refresh_token": refresh_token,
            "refresh_expires": wire.utc_text(now + timedelta(seconds=self.settings.refresh_token_ttl)),
            "revoked": False,
            "created": wire.utc_text(now),
        }
        self.state["refresh_tokens"][refresh_token] = {"grant": grant_id, "current": True}
        return self._token_response(grant_id, refresh_token, now)

    def _refresh(self, client_id: str, refresh_token: str) -> dict[str, Any]:
        now = self.clock()
        entry = self.state["refresh_tokens"].get(refresh_token)
        if entry is None:
            raise OAuthError(400, "invalid_grant")
        grant = self.state["grants"].get(entry["grant"])
        if grant is None or grant["revoked"] or grant["client_id"] != client_id:
            raise OAuthError(400, "invalid_grant")
        if wire.from_utc_text(grant["refresh_expires"]) < now:
            raise OAuthError(400, "invalid_grant", "the refresh token has expired")
        if not entry["current"]:
            # A rotated-away value: accepted for the grace period, answering with the grant's
            # current refresh token rather than rotating again.
            if wire.from_utc_text(entry["valid_until"]) < now:
                del self.state["refresh_tokens"][refresh_token]
                raise OAuthError(400, "invalid_grant", "the refresh token was replaced by a newer one")
            current = grant["refresh_token"]
        elif self.settings.rotate_refresh_tokens:
            current = _refresh_value()
            entry["current"] = False
            entry["valid_until"] = wire.utc_text(now + timedelta(seconds=self.settings.refresh_grace_seconds))
            self.state["refresh_tokens"][current] = {"grant": entry["grant"], "current": True}
            grant["refresh_token"] = current
        else:
            current = refresh_token
        grant["refresh_expires"] = wire.utc_text(now + timedelta(seconds=self.settings.refresh_token_ttl))
        self._forget_stale(now)
        return self._token_response(entry["grant"], current, now)

    def _token_response(self, grant_id: str, refresh_token: str, now: datetime) -> dict[str, Any]:
        access_token = _opaque()
        self.state["access_tokens"][access_token] = {
            "grant": grant_id,
            "expires": wire.utc_text(now + timedelta(seconds=self.settings.access_token_ttl)),
        }
        grant = self.state["grants"][grant_id]
        expires_in = int((wire.from_utc_text(grant["refresh_expires"]) - now).total_seconds())
        return {
            "token_type": "bearer",
            "access_token": access_token,
            "expires_in": self.settings.access_token_ttl,
            "refresh_token": refresh_token,
            "x_refresh_token_expires_in": expires_in,
        }

    def _forget_stale(self, now: datetime) -> None:
        tokens = self.state["access_tokens"]
        for token in [t for t, e in tokens.items() if wire.from_utc_text(e["expires"]) + EXPIRED_TOKEN_MEMORY < now]:
            del tokens[token]
        refresh = self.state["refresh_tokens"]
        for token in [t for t, e in refresh.items() if not e["current"] and wire.from_utc_text(e["valid_until"]) < now]:
            del refresh[token]

    # --- revocation ---------------------------------------------------------------------------

    def revoke(self, token: str) -> bool:
        """Revoke the grant a refresh or access token belongs to (RFC 7009: unknown is not an error)."""
        entry = self.state["refresh_tokens"].get(token) or self.state["access_tokens"].get(token)
        if entry is None:
            return False
        self._revoke_grant(entry["grant"])
        return True

    def revoke_all(self, realm_id: str | None = None) -> int:
        count = 0
        for grant_id, grant in self.state["grants"].items():
            if not grant["revoked"] and (realm_id is None or grant["realm_id"] == realm_id):
                self._revoke_grant(grant_id)
                count += 1
        return count

    def _revoke_grant(self, grant_id: str) -> None:
        grant = self.state["grants"].get(grant_id)
        if grant is not None:
            grant["revoked"] = True

    # --- bearer tokens on the data API --------------------------------------------------------

    def check_access(self, authorization: str | None, realm_id: str) -> AccessCheck:
        if not authorization or not authorization.lower().startswith("bearer "):
            return AccessCheck(False, 401, "Authorization header is missing or is not a Bearer token")
        token = authorization.split(None, 1)[1].strip()
        entry = self.state["access_tokens"].get(token)
        if entry is None:
            return AccessCheck(False, 401, "Token invalid: the access token is not recognised")
        grant = self.state["grants"].get(entry["grant"])
        if grant is None or grant["revoked"]:
            return AccessCheck(False, 401, "Token revoked: the connection was disconnected")
        if wire.from_utc_text(entry["expires"]) <= self.clock():
            return AccessCheck(False, 401, f"Token expired: {token[:12]}…")
        if grant["realm_id"] != realm_id:
            return AccessCheck(False, 403, "The token was issued for another company")
        return AccessCheck(True)

    def realm_of_access_token(self, token: str) -> str | None:
        entry = self.state["access_tokens"].get(token)
        grant = self.state["grants"].get(entry["grant"]) if entry else None
        return grant["realm_id"] if grant else None
