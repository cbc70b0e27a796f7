"""The simulator's OAuth server: discovery, consent, code exchange, expiry, rotation, revocation.

Contract: shared/contracts/quickbooks.md §3.
"""

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from integrations.quickbooks.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, QuickBooksSimulator
from integrations.quickbooks.simulator.testing import RealmClient

REDIRECT_URI = "http://127.0.0.1:8000/sync/quickbooks/callback"
SCOPE = "com.intuit.quickbooks.accounting"


@pytest.fixture(scope="module")
def sim():
    with QuickBooksSimulator(demo_realm=False, refresh_grace_seconds=60) as simulator:
        yield simulator


@pytest.fixture
def http(sim):
    sim.reset()
    with httpx.Client(base_url=sim.base_url, timeout=5) as client:
        yield client


def consent(http, realm, *, state="xyz", decision="authorize", scope=SCOPE):
    form = {
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": scope,
        "state": state,
        "realm": realm,
        "decision": decision,
    }
    response = http.post("/connect/oauth2", data=form)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def token_call(http, form, *, secret=DEFAULT_CLIENT_SECRET):
    return http.post(
        "/oauth2/v1/tokens/bearer", data=form, auth=(DEFAULT_CLIENT_ID, secret), headers={"Accept": "application/json"}
    )


def exchange(http, code):
    return token_call(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI})


def refresh(http, refresh_token):
    return token_call(http, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def test_discovery_document_points_at_the_simulator(sim, http):
    with_slash = http.get("/.well-known/openid_configuration/").json()
    without = http.get("/.well-known/openid_configuration").json()

    assert with_slash == without
    assert with_slash["token_endpoint"] == sim.token_url
    assert with_slash["authorization_endpoint"] == sim.authorize_url
    assert with_slash["revocation_endpoint"] == sim.revoke_url


def test_the_consent_page_names_the_app_and_the_company(sim, http):
    sim.create_realm("Acme Books")

    page = http.get(
        "/connect/oauth2",
        params={
            "client_id": DEFAULT_CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": SCOPE,
            "state": "s1",
        },
    )

    assert page.status_code == 200
    assert "Connect Concord to Acme Books" in page.text
    assert "Authorize" in page.text


def test_authorizing_redirects_with_code_state_and_realm_id(sim, http):
    realm = sim.create_realm("Acme Books")

    redirect = consent(http, realm, state="csrf-123")

    assert redirect["state"] == "csrf-123"
    assert redirect["realmId"] == realm
    assert redirect["code"]


def test_cancelling_the_consent_redirects_with_access_denied(sim, http):
    realm = sim.create_realm()

    redirect = consent(http, realm, decision="cancel")

    assert redirect == {"error": "access_denied", "state": "xyz"}


def test_choosing_a_new_company_creates_a_realm(sim, http):
    redirect = consent(http, "new")

    assert sim.state.company(redirect["realmId"]) is not None


def test_a_code_is_exchanged_once_for_tokens(sim, http):
    code = consent(http, sim.create_realm())["code"]

    first = exchange(http, code)
    second = exchange(http, code)

    tokens = first.json()
    assert first.status_code == 200
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 3600
    assert tokens["access_token"] and tokens["refresh_token"] and tokens["x_refresh_token_expires_in"] > 0
    assert "id_token" not in tokens
    assert (second.status_code, second.json()["error"]) == (400, "invalid_grant")


def test_wrong_client_credentials_are_invalid_client(sim, http):
    code = consent(http, sim.create_realm())["code"]

    response = token_call(
        http, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}, secret="wrong"
    )

    assert (response.status_code, response.json()) == (401, {"error": "invalid_client"})


def test_an_expired_access_token_gets_the_lower_case_401_envelope(sim):
    realm = sim.create_realm()
    with RealmClient(sim, realm) as qbo:
        assert qbo.request("GET", "/item/1").status_code == 200
        sim.advance_clock(3601)

        response = qbo.request("GET", "/item/1")

    body = response.json()
    assert response.status_code == 401
    assert body["fault"]["error"][0]["code"] == "3200"
    assert body["fault"]["type"] == "AUTHENTICATION"
    assert body["fault"]["error"][0]["detail"].startswith("Token expired")
    assert "Fault" not in body


def test_a_token_for_another_company_is_forbidden(sim):
    mine = sim.create_realm("Mine")
    theirs = sim.create_realm("Theirs")
    token = sim.issue_tokens(mine)["access_token"]

    with RealmClient(sim, theirs, token) as qbo:
        response = qbo.request("GET", "/item/1")

    assert response.status_code == 403
    assert response.json()["Fault"]["Error"][0]["code"] == "3100"


def test_refresh_rotates_the_refresh_token_and_issues_a_working_access_token(sim, http):
    realm = sim.create_realm()
    issued = sim.issue_tokens(realm)
    sim.advance_clock(3601)

    refreshed = refresh(http, issued["refresh_token"]).json()

    assert refreshed["refresh_token"] != issued["refresh_token"]
    with RealmClient(sim, realm, refreshed["access_token"]) as qbo:
        assert qbo.request("GET", "/item/1").status_code == 200


def test_the_previous_refresh_token_works_during_the_grace_and_not_after(sim, http):
    issued = sim.issue_tokens(sim.create_realm())
    rotated = refresh(http, issued["refresh_token"]).json()

    sim.advance_clock(30)
    within_grace = refresh(http, issued["refresh_token"])
    sim.advance_clock(60)
    after_grace = refresh(http, issued["refresh_token"])

    assert within_grace.status_code == 200
    assert within_grace.json()["refresh_token"] == rotated["refresh_token"]
    assert (after_grace.status_code, after_grace.json()["error"]) == (400, "invalid_grant")
    assert refresh(http, rotated["refresh_token"]).status_code == 200


def test_a_revoked_grant_refuses_refresh_and_api_calls(sim, http):
    realm = sim.create_realm()
    issued = sim.issue_tokens(realm)

    revoked = http.post(
        "/oauth2/v1/tokens/revoke",
        json={"token": issued["refresh_token"]},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )
    with RealmClient(sim, realm, issued["access_token"]) as qbo:
        api = qbo.request("GET", "/item/1")

    assert revoked.status_code == 200
    assert refresh(http, issued["refresh_token"]).json() == {"error": "invalid_grant"}
    assert api.status_code == 401


def test_the_refresh_token_expires_after_its_rolling_lifetime(sim, http):
    issued = sim.issue_tokens(sim.create_realm())
    sim.advance_clock(issued["x_refresh_token_expires_in"] + 1)

    response = refresh(http, issued["refresh_token"])

    assert response.json()["error"] == "invalid_grant"


def test_intuits_own_auth_client_talks_to_the_simulator(sim, http):
    from intuitlib.client import AuthClient

    realm = sim.create_realm()
    code = consent(http, realm)["code"]
    auth = AuthClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, REDIRECT_URI, environment=sim.discovery_url)

    auth.get_bearer_token(code, realm_id=realm)
    first_refresh_token = auth.refresh_token
    auth.refresh()

    assert auth.access_token and auth.refresh_token != first_refresh_token
    assert auth.revoke() is True
    assert refresh(http, auth.refresh_token).json()["error"] == "invalid_grant"
