"""Xero's identity server as a connector sees it (contract §2).

- Authorization codes: single use, 5 minutes; PKCE (`S256`/`plain`) when the request had a
  `code_challenge`.
- Access tokens: JWTs (HS256, signed with a per-simulator secret) valid 30 minutes.
- Refresh tokens (only with the `offline_access` scope): single use and rotating. A used one
  stays accepted for a grace period (30 minutes) so a client whose refresh response was lost
  can try again — it then gets the grant's current refresh token back, not a new fork — and
  answers `invalid_grant` afterwards. One unused for 60 days dies.
- Connections: a consent connects one user's chosen tenants to the app; `GET /connections`
  lists them, `DELETE /connections/{id}` removes one, revoking a refresh token removes the
  grant and every connection it made.

Everything lives in one JSON-able dict, saved with the rest of the state; the caller holds the
state lock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import wire

ISSUER = "https://identity.xero.com"
CODE_LIFETIME = timedelta(minutes=5)
# An expired access token is still recognised (to answer "TokenExpired" rather than
# "AuthenticationUnsuccessful") for a day, then forgotten.
EXPIRED_TOKEN_MEMORY = timedelta(days=1)
DEFAULT_SCOPE = (
    "openid profile email offline_access accounting.transactions accounting.contacts accounting.settings.read"
)
# Which scopes let a call through, by resource family: read-only scopes let GETs through only.
_SCOPE_FAMILIES = {
    "transactions": ("accounting.transactions", "accounting.invoices", "accounting.payments"),
    "contacts": ("accounting.contacts",),
    "settings": ("accounting.settings",),
}


@dataclass(frozen=True)
class OAuthSettings:
    client_id: str
    client_secret: str
    access_token_ttl: int = 1800
    refresh_token_ttl: int = 5_184_000
    refresh_grace_seconds: int = 1800
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
    """Outcome of checking a bearer token for a tenant: ok, or the status and `Detail` to answer."""

    ok: bool
    status: int = 200
    detail: str = ""
    grant_id: str = ""


def empty_state() -> dict[str, Any]:
    return {
        "secret": secrets.token_hex(32),
        "codes": {},
        "grants": {},
        "access_tokens": {},
        "refresh_tokens": {},
        "connections": {},
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def scope_allows(scope: str, family: str, *, write: bool) -> bool:
    granted = set(scope.split())
    return any(name in granted or (not write and f"{name}.read" in granted) for name in _SCOPE_FAMILIES[family])


class OAuthServer:
    def __init__(self, state: dict[str, Any], settings: OAuthSettings, clock: Callable[[], datetime]) -> None:
        self.state = state
        self.settings = settings
        self.clock = clock

    # --- client authentication --------------------------------------------------------------

    def authenticate_client(self, authorization: str | None, form: dict[str, str]) -> tuple[str, bool]:
        """Basic credentials, or `client_id`/`client_secret` in the form (xero-python's refresh),
        or a bare `client_id` (a PKCE public client). Returns (client id, authenticated)."""
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization.split(None, 1)[1], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError, IndexError) as error:
                raise OAuthError(400, "invalid_client", "malformed Basic credentials") from error
            client_id, _, secret = decoded.partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            if client_id and not secret:
                if not hmac.compare_digest(client_id, self.settings.client_id):
                    raise OAuthError(400, "invalid_client")
                return client_id, False
        if not (
            hmac.compare_digest(client_id, self.settings.client_id)
            and hmac.compare_digest(secret, self.settings.client_secret)
        ):
            raise OAuthError(400, "invalid_client")
        return client_id, True

    def redirect_allowed(self, redirect_uri: str) -> bool:
        return not self.settings.redirect_uris or redirect_uri in self.settings.redirect_uris

    # --- authorization codes -----------------------------------------------------------------

    def create_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        user_id: str,
        tenant_ids: list[str],
        scope: str,
        code_challenge: str = "",
        code_challenge_method: str = "",
    ) -> str:
        code = secrets.token_hex(32)
        self.state["codes"][code] = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "user_id": user_id,
            "tenant_ids": list(tenant_ids),
            "scope": scope,
            "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method or ("plain" if code_challenge else ""),
            "expires": wire.utc_text(self.clock() + CODE_LIFETIME),
        }
        return code

    # --- token endpoint -----------------------------------------------------------------------

    def token(self, *, authorization: str | None, form: dict[str, str]) -> dict[str, Any]:
        client_id, authenticated = self.authenticate_client(authorization, form)
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            return self._exchange_code(client_id, authenticated, form)
        if grant_type == "refresh_token":
            return self._refresh(client_id, authenticated, form.get("refresh_token", ""))
        if not grant_type:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        raise OAuthError(400, "unsupported_grant_type")

    def _exchange_code(self, client_id: str, authenticated: bool, form: dict[str, str]) -> dict[str, Any]:
        entry = self.state["codes"].pop(form.get("code", ""), None)
        if entry is None:
            raise OAuthError(400, "invalid_grant", "the authorization code is unknown or was already used")
        if wire.from_utc_text(entry["expires"]) < self.clock():
            raise OAuthError(400, "invalid_grant", "the authorization code has expired")
        if entry["client_id"] != client_id or entry["redirect_uri"] != form.get("redirect_uri", ""):
            raise OAuthError(400, "invalid_grant", "redirect_uri or client does not match the authorization")
        if entry["code_challenge"]:
            verifier = form.get("code_verifier", "")
            if entry["code_challenge_method"] == "S256":
                expected = _b64(hashlib.sha256(verifier.encode()).digest())
            else:
                expected = verifier
            if not verifier or not hmac.compare_digest(expected, entry["code_challenge"]):
                raise OAuthError(400, "invalid_grant", "code_verifier does not match the code_challenge")
        elif not authenticated:
            raise OAuthError(400, "invalid_client", "client_secret is required without PKCE")
        return self.issue(
            user_id=entry["user_id"],
            tenant_ids=entry["tenant_ids"],
            client_id=client_id,
            scope=entry["scope"],
            public=not authenticated,
        )

    def issue(
        self, *, user_id: str, tenant_ids: list[str], client_id: str, scope: str = DEFAULT_SCOPE, public: bool = False
    ) -> dict[str, Any]:
        """A consent: connect the user's chosen tenants and create a grant with its first tokens."""
        now = self.clock()
        grant_id = str(uuid.uuid4())
        auth_event_id = str(uuid.uuid4())
        for tenant_id in tenant_ids:
            self._connect(user_id, tenant_id, auth_event_id, now)
        grant: dict[str, Any] = {
            "user_id": user_id,
            "client_id": client_id,
            "scope": scope,
            "auth_event_id": auth_event_id,
            "public": public,
            "refresh_token": "",
            "refresh_expires": "",
            "revoked": False,
            "created": wire.utc_text(now),
        }
        self.state["grants"][grant_id] = grant
        refresh_token = ""
        if "offline_access" in scope.split():
            refresh_token = secrets.token_hex(32)
            grant["refresh_token"] = refresh_token
            grant["refresh_expires"] = wire.utc_text(now + timedelta(seconds=self.settings.refresh_token_ttl))
            self.state["refresh_tokens"][refresh_token] = {"grant": grant_id, "current": True}
        return self._token_response(grant_id, refresh_token, now)

    def _connect(self, user_id: str, tenant_id: str, auth_event_id: str, now: datetime) -> None:
        for connection in self.state["connections"].values():
            if connection["user_id"] == user_id and connection["tenant_id"] == tenant_id and connection["active"]:
                connection["auth_event_id"] = auth_event_id
                connection["updated"] = wire.utc_text(now)
                return
        connection_id = str(uuid.uuid4())
        self.state["connections"][connection_id] = {
            "id": connection_id,
            "user_id": user_id,
            "tenant_id": tenant_id,
            "auth_event_id": auth_event_id,
            "created": wire.utc_text(now),
            "updated": wire.utc_text(now),
            "active": True,
        }

    def _refresh(self, client_id: str, authenticated: bool, refresh_token: str) -> dict[str, Any]:
        now = self.clock()
        entry = self.state["refresh_tokens"].get(refresh_token)
        if entry is None:
            raise OAuthError(400, "invalid_grant")
        grant = self.state["grants"].get(entry["grant"])
        if grant is None or grant["revoked"] or grant["client_id"] != client_id:
            raise OAuthError(400, "invalid_grant")
        if not authenticated and not grant["public"]:
            raise OAuthError(400, "invalid_client", "client_secret is required")
        if wire.from_utc_text(grant["refresh_expires"]) < now:
            raise OAuthError(400, "invalid_grant", "the refresh token has expired")
        if entry["current"]:
            current = secrets.token_hex(32)
            entry["current"] = False
            entry["valid_until"] = wire.utc_text(now + timedelta(seconds=self.settings.refresh_grace_seconds))
            self.state["refresh_tokens"][current] = {"grant": entry["grant"], "current": True}
            grant["refresh_token"] = current
        else:
            # A used value inside its grace period: the client lost the answer; give it the
            # grant's current refresh token again rather than forking the chain.
            if wire.from_utc_text(entry["valid_until"]) < now:
                del self.state["refresh_tokens"][refresh_token]
                raise OAuthError(400, "invalid_grant", "the refresh token has already been used")
            current = grant["refresh_token"]
        grant["refresh_expires"] = wire.utc_text(now + timedelta(seconds=self.settings.refresh_token_ttl))
        self._forget_stale(now)
        return self._token_response(entry["grant"], current, now)

    def _jwt(self, claims: dict[str, Any]) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "xero-simulator"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self.state["secret"].encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def _token_response(self, grant_id: str, refresh_token: str, now: datetime) -> dict[str, Any]:
        grant = self.state["grants"][grant_id]
        issued = int(now.timestamp())
        expires = now + timedelta(seconds=self.settings.access_token_ttl)
        access_token = self._jwt(
            {
                "nbf": issued,
                "exp": int(expires.timestamp()),
                "iss": ISSUER,
                "aud": f"{ISSUER}/resources",
                "client_id": grant["client_id"],
                "sub": grant["user_id"],
                "auth_time": issued,
                "xero_userid": grant["user_id"],
                "authentication_event_id": grant["auth_event_id"],
                "jti": uuid.uuid4().hex,
                "scope": grant["scope"].split(),
            }
        )
        self.state["access_tokens"][access_token] = {"grant": grant_id, "expires": wire.utc_text(expires)}
        body: dict[str, Any] = {}
        if "openid" in grant["scope"].split():
            body["id_token"] = self._jwt(
                {
                    "nbf": issued,
                    "exp": issued + 300,
                    "iss": ISSUER,
                    "aud": grant["client_id"],
                    "sub": grant["user_id"],
                    "email": f"{grant['user_id'][:8]}@simulated.example",
                    "given_name": "Simulated",
                    "family_name": "User",
                    "xero_userid": grant["user_id"],
                }
            )
        body.update(
            {
                "access_token": access_token,
                "expires_in": self.settings.access_token_ttl,
                "token_type": "Bearer",
            }
        )
        if refresh_token:
            body["refresh_token"] = refresh_token
        body["scope"] = grant["scope"]
        return body

    def _forget_stale(self, now: datetime) -> None:
        tokens = self.state["access_tokens"]
        for token in [t for t, e in tokens.items() if wire.from_utc_text(e["expires"]) + EXPIRED_TOKEN_MEMORY < now]:
            del tokens[token]
        refresh = self.state["refresh_tokens"]
        for token in [t for t, e in refresh.items() if not e["current"] and wire.from_utc_text(e["valid_until"]) < now]:
            del refresh[token]

    # --- revocation ---------------------------------------------------------------------------

    def revoke(self, token: str) -> bool:
        """Revoke the grant a refresh token belongs to, and the connections it made (RFC 7009:
        an unknown token is not an error)."""
        entry = self.state["refresh_tokens"].get(token) or self.state["access_tokens"].get(token)
        if entry is None:
            return False
        self._revoke_grant(entry["grant"])
        return True

    def revoke_all(self, tenant_id: str | None = None) -> int:
        """Revoke every live grant (whose user is connected to `tenant_id`, when given)."""
        connected_users = {
            connection["user_id"]
            for connection in self.state["connections"].values()
            if connection["active"] and (tenant_id is None or connection["tenant_id"] == tenant_id)
        }
        count = 0
        for grant_id, grant in self.state["grants"].items():
            if not grant["revoked"] and grant["user_id"] in connected_users:
                self._revoke_grant(grant_id)
                count += 1
        return count

    def _revoke_grant(self, grant_id: str) -> None:
        grant = self.state["grants"].get(grant_id)
        if grant is None:
            return
        grant["revoked"] = True
        for connection in self.state["connections"].values():
            if connection["user_id"] == grant["user_id"]:
                connection["active"] = False

    # --- bearer tokens ------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> AccessCheck:
        """The bearer token alone: 401 `TokenExpired` / `AuthenticationUnsuccessful`, or ok."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return AccessCheck(False, 401, "AuthenticationUnsuccessful")
        token = authorization.split(None, 1)[1].strip()
        entry = self.state["access_tokens"].get(token)
        if entry is None:
            return AccessCheck(False, 401, "AuthenticationUnsuccessful")
        grant = self.state["grants"].get(entry["grant"])
        if grant is None or grant["revoked"]:
            return AccessCheck(False, 401, "AuthenticationUnsuccessful")
        expires = wire.from_utc_text(entry["expires"])
        if expires <= self.clock():
            return AccessCheck(False, 401, f"TokenExpired: token expired at {expires.strftime('%m/%d/%Y %H:%M:%S')}")
        return AccessCheck(True, grant_id=entry["grant"])

    def check_access(self, authorization: str | None, tenant_id: str, family: str, *, write: bool) -> AccessCheck:
        """Token, then the `xero-tenant-id` connection, then the scope (401, 403, 403)."""
        check = self.authenticate(authorization)
        if not check.ok:
            return check
        grant = self.state["grants"][check.grant_id]
        if not tenant_id or self.connection_for(grant["user_id"], tenant_id) is None:
            return AccessCheck(False, 403, "AuthenticationUnsuccessful", check.grant_id)
        if not scope_allows(grant["scope"], family, write=write):
            return AccessCheck(False, 403, "AuthorizationUnsuccessful", check.grant_id)
        return check

    def connection_for(self, user_id: str, tenant_id: str) -> dict[str, Any] | None:
        for connection in self.state["connections"].values():
            if connection["active"] and connection["user_id"] == user_id and connection["tenant_id"] == tenant_id:
                return connection
        return None

    def connections(self, grant_id: str, auth_event_id: str = "") -> list[dict[str, Any]]:
        user_id = self.state["grants"][grant_id]["user_id"]
        rows = [
            connection
            for connection in self.state["connections"].values()
            if connection["active"]
            and connection["user_id"] == user_id
            and (not auth_event_id or connection["auth_event_id"] == auth_event_id)
        ]
        return sorted(rows, key=lambda row: row["created"])

    def disconnect(self, grant_id: str, connection_id: str) -> bool:
        user_id = self.state["grants"][grant_id]["user_id"]
        connection = self.state["connections"].get(connection_id)
        if connection is None or not connection["active"] or connection["user_id"] != user_id:
            return False
        connection["active"] = False
        return True
