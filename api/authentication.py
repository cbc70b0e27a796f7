"""`Authorization: Bearer <key>` (or `Token <key>`) for programs; the browser uses its session."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from api import selectors, services

SCHEMES = (b"bearer", b"token")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticates a request by an ApiToken's key; `request.auth` is then the token."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() not in SCHEMES:
            return None  # not ours: let the session have a go
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send the header as 'Authorization: Bearer <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("The token key has characters no key has.") from None
        token = selectors.active_token_for_digest(services.digest_key(key))
        if token is None or not token.user.is_active:
            # One answer for unknown, revoked and expired keys: a guesser learns nothing.
            raise exceptions.AuthenticationFailed("The token is not valid: it is unknown, revoked or expired.")
        services.record_token_use(token=token)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
