"""QuickBooks' side of connecting a company: the consent page address and the code exchange."""

from __future__ import annotations

from integrations.core.tokens import Tokens

from .oauth import QuickBooksOAuth


def authorization_url(*, state: str, redirect_uri: str) -> str:
    return QuickBooksOAuth().authorization_url(redirect_uri=redirect_uri, state=state)


def exchange_code(*, code: str, redirect_uri: str) -> Tokens:
    return QuickBooksOAuth().exchange_code(code, redirect_uri)


# QuickBooks names the company in its redirect as `realmId`.
TENANT_PARAMETER = "realmId"
