"""Xero's OAuth endpoints and connections list as XeroOAuth calls them (contract §2), over a mock
transport; and the connect module the connection pages use."""

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from integrations.core.errors import RateLimited, ReauthorizationRequired, SyncError, TransientError
from integrations.core.tokens import Tokens
from integrations.xero import connect
from integrations.xero.oauth import DEFAULT_SCOPES, InvalidClientCredentials, Tenant, XeroOAuth

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOKEN_URL = "http://identity.test/connect/token"
REVOKE_URL = "http://identity.test/connect/revocation"
CONNECTIONS_URL = "http://api.test/connections"
CONNECTIONS = [
    {
        "id": "7cb59f93-2964-421d-bb5e-a0f7a4572a44",
        "authEventId": "d99ecdfe-391d-43d2-b834-17636ba90e8d",
        "tenantId": "fe79f7dd-b6d4-4a92-ba7b-538af6289c58",
        "tenantType": "ORGANISATION",
        "tenantName": "Demo Company (NZ)",
        "createdDateUtc": "2019-12-07T18:46:19.5165400",
        "updatedDateUtc": "2019-12-07T18:46:19.5187840",
    },
    {"id": "c2", "tenantId": "t-practice", "tenantType": "PRACTICEMANAGER", "tenantName": "Practice"},
]


def token_body(**overrides):
    body = {
        "id_token": "eyJhbGciOi",
        "access_token": "access-2",
        "expires_in": 1800,
        "token_type": "Bearer",
        "refresh_token": "refresh-2",
        "scope": DEFAULT_SCOPES,
    }
    return {**body, **overrides}


def make_oauth(handler, **kwargs):
    requests = []

    def recording(request):
        requests.append(request)
        return handler(request)

    oauth = XeroOAuth(
        client_id="app-id",
        client_secret="app-secret",
        authorize_url="http://login.test/identity/connect/authorize",
        token_url=TOKEN_URL,
        revoke_url=REVOKE_URL,
        connections_url=CONNECTIONS_URL,
        http=httpx.Client(transport=httpx.MockTransport(recording)),
        clock=lambda: NOW,
        **kwargs,
    )
    return oauth, requests


def form(request):
    return {key: values[0] for key, values in parse_qs(request.content.decode()).items()}


def test_authorization_url_asks_for_the_configured_scopes_with_state_and_redirect():
    oauth, _ = make_oauth(lambda request: httpx.Response(500))
    url = urlsplit(oauth.authorization_url(redirect_uri="https://concord.test/cb", state="s-123"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://login.test/identity/connect/authorize"
    assert parse_qs(url.query) == {
        "response_type": ["code"],
        "client_id": ["app-id"],
        "redirect_uri": ["https://concord.test/cb"],
        "scope": [DEFAULT_SCOPES],
        "state": ["s-123"],
    }
    assert "offline_access" in DEFAULT_SCOPES.split()


def test_the_scopes_come_from_settings_when_set(settings):
    settings.XERO_SCOPES = "openid  offline_access accounting.invoices"
    oauth, _ = make_oauth(lambda request: httpx.Response(500))
    url = urlsplit(oauth.authorization_url(redirect_uri="https://concord.test/cb", state="s"))
    assert parse_qs(url.query)["scope"] == ["openid offline_access accounting.invoices"]


def test_the_code_exchange_posts_the_form_with_basic_auth():
    oauth, requests = make_oauth(lambda request: httpx.Response(200, json=token_body()))
    tokens = oauth.exchange_code("code-1", "https://concord.test/cb")
    (request,) = requests
    assert request.url == TOKEN_URL
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"app-id:app-secret").decode()
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "grant_type": "authorization_code",
        "code": "code-1",
        "redirect_uri": "https://concord.test/cb",
    }
    assert tokens == Tokens("access-2", NOW + timedelta(minutes=30), "refresh-2", NOW + timedelta(days=60))


def test_a_refresh_spends_the_refresh_token_and_returns_the_rotated_one():
    oauth, requests = make_oauth(lambda request: httpx.Response(200, json=token_body(refresh_token="refresh-3")))
    tokens = oauth.refresh("refresh-2")
    assert form(requests[0]) == {"grant_type": "refresh_token", "refresh_token": "refresh-2"}
    assert tokens.refresh_token == "refresh-3"
    assert tokens.access_expires_at == NOW + timedelta(seconds=1800)


def test_a_refresh_answer_without_a_refresh_token_keeps_the_old_one():
    oauth, _ = make_oauth(lambda request: httpx.Response(200, json=token_body(refresh_token=None)))
    assert oauth.refresh("refresh-2").refresh_token == "refresh-2"


@pytest.mark.parametrize(
    "body", [{"error": "invalid_grant"}, {"error": "invalid_grant", "error_description": "token used"}]
)
def test_invalid_grant_requires_reauthorization(body):
    oauth, _ = make_oauth(lambda request: httpx.Response(400, json=body))
    with pytest.raises(ReauthorizationRequired, match="invalid_grant"):
        oauth.refresh("refresh-spent")


@pytest.mark.parametrize("status", [400, 401])
def test_invalid_client_is_a_configuration_error_not_a_lost_grant(status):
    oauth, _ = make_oauth(lambda request: httpx.Response(status, json={"error": "invalid_client"}))
    with pytest.raises(InvalidClientCredentials, match="XERO_CLIENT_ID"):
        oauth.refresh("refresh-2")


@pytest.mark.parametrize(("status", "error"), [(429, RateLimited), (503, TransientError), (400, SyncError)])
def test_other_token_endpoint_failures(status, error):
    oauth, _ = make_oauth(lambda request: httpx.Response(status, json={"error": "unsupported_grant_type"}))
    with pytest.raises(error):
        oauth.refresh("refresh-2")


def test_an_unreachable_token_endpoint_is_transient():
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    oauth, _ = make_oauth(refuse)
    with pytest.raises(TransientError):
        oauth.exchange_code("code", "https://concord.test/cb")


def test_revoke_posts_the_refresh_token_and_an_already_dead_one_is_fine():
    answers = [httpx.Response(200), httpx.Response(400, json={"error": "invalid_grant"})]
    oauth, requests = make_oauth(lambda request: answers.pop(0))
    oauth.revoke("refresh-2")
    oauth.revoke("refresh-2")
    assert requests[0].url == REVOKE_URL and form(requests[0]) == {"token": "refresh-2"}


def test_tenants_lists_the_organisations_of_the_grant():
    oauth, requests = make_oauth(lambda request: httpx.Response(200, json=CONNECTIONS))
    tenants = oauth.tenants("access-2")
    assert requests[0].method == "GET" and requests[0].url == CONNECTIONS_URL
    assert requests[0].headers["Authorization"] == "Bearer access-2"
    assert tenants[0] == Tenant(
        tenant_id="fe79f7dd-b6d4-4a92-ba7b-538af6289c58",
        name="Demo Company (NZ)",
        tenant_type="ORGANISATION",
        connection_id="7cb59f93-2964-421d-bb5e-a0f7a4572a44",
    )


def test_a_refused_connections_list_requires_reauthorization():
    oauth, _ = make_oauth(lambda request: httpx.Response(401, json={"Title": "Unauthorized"}))
    with pytest.raises(ReauthorizationRequired):
        oauth.tenants("access-dead")


def test_connect_lists_only_organisations_for_the_person_to_choose(monkeypatch):
    oauth, requests = make_oauth(lambda request: httpx.Response(200, json=CONNECTIONS))
    monkeypatch.setattr(connect, "XeroOAuth", lambda: oauth)
    tenants = connect.list_tenants(Tokens("access-2", NOW, "refresh-2"))
    assert [tenant.name for tenant in tenants] == ["Demo Company (NZ)"]
    assert requests[0].headers["Authorization"] == "Bearer access-2"
    assert connect.TENANT_PARAMETER == ""


def test_connect_builds_the_consent_address_from_settings(settings):
    settings.XERO_AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
    settings.XERO_CLIENT_ID = "live-client"
    url = urlsplit(connect.authorization_url(state="st", redirect_uri="https://concord.test/cb"))
    assert url.netloc == "login.xero.com"
    assert parse_qs(url.query)["client_id"] == ["live-client"]
