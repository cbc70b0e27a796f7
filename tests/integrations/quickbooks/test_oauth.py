"""Intuit's OAuth endpoints as QuickBooksOAuth calls them (contract §3), over a mock transport."""

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from integrations.core.errors import RateLimited, ReauthorizationRequired, SyncError, TransientError
from integrations.quickbooks.oauth import ACCOUNTING_SCOPE, InvalidClientCredentials, QuickBooksOAuth

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TOKEN_URL = "http://intuit.test/oauth2/v1/tokens/bearer"
REVOKE_URL = "http://intuit.test/oauth2/v1/tokens/revoke"


def token_body(**overrides):
    body = {
        "token_type": "bearer",
        "access_token": "access-2",
        "expires_in": 3600,
        "refresh_token": "refresh-2",
        "x_refresh_token_expires_in": 8726400,
    }
    return {**body, **overrides}


def make_oauth(handler, **kwargs):
    requests = []

    def recording(request):
        requests.append(request)
        return handler(request)

    oauth = QuickBooksOAuth(
        client_id="app-id",
        client_secret="app-secret",
        authorize_url="http://intuit.test/connect/oauth2",
        token_url=TOKEN_URL,
        revoke_url=REVOKE_URL,
        http=httpx.Client(transport=httpx.MockTransport(recording)),
        clock=lambda: NOW,
        **kwargs,
    )
    return oauth, requests


def test_authorization_url_asks_for_the_accounting_scope_with_state_and_redirect():
    oauth, _ = make_oauth(lambda request: httpx.Response(500))
    url = urlsplit(oauth.authorization_url(redirect_uri="https://concord.test/qbo/callback", state="s-123"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == "http://intuit.test/connect/oauth2"
    assert parse_qs(url.query) == {
        "client_id": ["app-id"],
        "response_type": ["code"],
        "scope": [ACCOUNTING_SCOPE],
        "redirect_uri": ["https://concord.test/qbo/callback"],
        "state": ["s-123"],
    }


def test_exchange_code_posts_a_form_with_basic_auth_and_returns_expiring_tokens():
    oauth, requests = make_oauth(lambda request: httpx.Response(200, json=token_body()))
    tokens = oauth.exchange_code("code-1", "https://concord.test/cb")
    request = requests[0]
    assert request.method == "POST" and str(request.url) == TOKEN_URL
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"app-id:app-secret").decode()
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["authorization_code"],
        "code": ["code-1"],
        "redirect_uri": ["https://concord.test/cb"],
    }
    assert tokens.access_token == "access-2"
    assert tokens.access_expires_at == NOW + timedelta(hours=1)
    assert tokens.refresh_token == "refresh-2"
    assert tokens.refresh_expires_at == NOW + timedelta(seconds=8726400)


def test_refresh_sends_the_refresh_token_and_returns_the_rotated_one():
    oauth, requests = make_oauth(lambda request: httpx.Response(200, json=token_body(refresh_token="refresh-rotated")))
    tokens = oauth.refresh("refresh-1")
    assert parse_qs(requests[0].content.decode()) == {"grant_type": ["refresh_token"], "refresh_token": ["refresh-1"]}
    assert tokens.refresh_token == "refresh-rotated"


def test_refresh_answer_without_a_refresh_token_keeps_the_one_in_use():
    body = token_body()
    del body["refresh_token"]
    oauth, _ = make_oauth(lambda request: httpx.Response(200, json=body))
    assert oauth.refresh("refresh-1").refresh_token == "refresh-1"


def test_invalid_grant_means_the_connection_must_be_reauthorized():
    oauth, _ = make_oauth(lambda request: httpx.Response(400, json={"error": "invalid_grant"}))
    with pytest.raises(ReauthorizationRequired) as raised:
        oauth.refresh("refresh-used-up")
    assert raised.value.code == "invalid_grant"


def test_invalid_client_is_a_configuration_error_not_a_lost_grant():
    oauth, _ = make_oauth(lambda request: httpx.Response(401, json={"error": "invalid_client"}))
    with pytest.raises(InvalidClientCredentials) as raised:
        oauth.refresh("refresh-1")
    assert not isinstance(raised.value, ReauthorizationRequired | TransientError)
    assert "QUICKBOOKS_CLIENT_ID" in str(raised.value)


def test_network_failure_of_the_token_endpoint_is_transient():
    def unreachable(request):
        raise httpx.ConnectError("connection refused", request=request)

    oauth, _ = make_oauth(unreachable)
    with pytest.raises(TransientError):
        oauth.refresh("refresh-1")


def test_server_error_of_the_token_endpoint_is_transient_even_with_an_html_body():
    oauth, _ = make_oauth(lambda request: httpx.Response(503, text="<html>down</html>"))
    with pytest.raises(TransientError):
        oauth.refresh("refresh-1")


def test_throttled_token_endpoint_raises_rate_limited():
    oauth, _ = make_oauth(lambda request: httpx.Response(429, text="slow down"))
    with pytest.raises(RateLimited):
        oauth.refresh("refresh-1")


def test_other_oauth_refusals_keep_their_error_code():
    oauth, _ = make_oauth(lambda request: httpx.Response(400, json={"error": "invalid_request"}))
    with pytest.raises(SyncError) as raised:
        oauth.exchange_code("code-1", "https://concord.test/cb")
    assert raised.value.code == "invalid_request"
    assert not isinstance(raised.value, ReauthorizationRequired)


def test_revoke_posts_the_token_as_json_with_basic_auth():
    oauth, requests = make_oauth(lambda request: httpx.Response(200))
    oauth.revoke("refresh-1")
    request = requests[0]
    assert str(request.url) == REVOKE_URL
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"].startswith("Basic ")
    assert json.loads(request.content) == {"token": "refresh-1"}


def test_revoking_a_token_that_is_already_dead_succeeds():
    oauth, _ = make_oauth(lambda request: httpx.Response(400, json={"error": "invalid_grant"}))
    oauth.revoke("refresh-gone")


def test_hosts_and_credentials_default_to_settings(settings):
    settings.QUICKBOOKS_CLIENT_ID = "from-settings"
    settings.QUICKBOOKS_TOKEN_URL = "http://settings.test/token"
    oauth = QuickBooksOAuth(http=httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(500))))
    assert oauth.client_id == "from-settings"
    assert oauth.token_url == "http://settings.test/token"
