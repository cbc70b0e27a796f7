"""Xero's side of connecting an organisation: the consent page address, the code exchange, and
the organisations (tenants) the new grant reaches, for the person to choose one.

Unlike QuickBooks, Xero's redirect names no organisation (`TENANT_PARAMETER` is empty): after
the exchange, `list_tenants(tokens)` lists them, and the connection takes the chosen tenant id.
"""

from __future__ import annotations

from integrations.core.tokens import Tokens

from .oauth import Tenant, XeroOAuth

# Xero's redirect carries no tenant id; the tenants come from `list_tenants`.
TENANT_PARAMETER = ""


def authorization_url(*, state: str, redirect_uri: str) -> str:
    return XeroOAuth().authorization_url(redirect_uri=redirect_uri, state=state)


def exchange_code(*, code: str, redirect_uri: str) -> Tokens:
    return XeroOAuth().exchange_code(code, redirect_uri)


def list_tenants(tokens: Tokens) -> list[Tenant]:
    """The organisations the grant behind `tokens` reaches (`GET /connections`), in Xero's order.
    Only ORGANISATION tenants hold accounting data."""
    return [tenant for tenant in XeroOAuth().tenants(tokens.access_token) if tenant.tenant_type == "ORGANISATION"]


def revoke(*, tokens: Tokens) -> None:
    """Disconnect: revoking the refresh token removes every connection of the grant."""
    XeroOAuth().revoke(tokens.refresh_token)
