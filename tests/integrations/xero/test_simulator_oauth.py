"""The Xero simulator's identity server: consent, code exchange, 30-minute access tokens,
single-use rotating refresh tokens with a grace period, revocation and connections (contract §2)."""

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from integrations.xero.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from integrations.xero.simulator.testing import TenantClient

REDIRECT_URI = "http://127.0.0.1:8000/sync/xero/callback"
SCOPE = "openid profile email offline_access accounting.transactions accounting.contacts accounting.settings.read"


@pytest.fixture
def http(xero_simulator):
    with httpx.Client(base_url=xero_simulator.base_url, timeout=5) as client:
        yield client


def consent(http, *tenants, scope=SCOPE, decision="authorize", **extra):
    form = {
        "client_id": DEFAULT_CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": scope,
        "state": "xyz",
        "decision": decision,
        **extra,
    }
    response = http.post("/identity/connect/authorize", data={**form, "tenant": list(tenants)})
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def token_call(http, form, *, secret=DEFAULT_CLIENT_SECRET):
    return http.post("/connect/token", data=form, auth=(DEFAULT_CLIENT_ID, secret))


def exchange(http, code, **extra):
    return token_call(http, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, **extra})


def refresh(http, refresh_token):
    return token_call(http, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def connections(http, access_token):
    return http.get("/connections", headers={"Authorization": f"Bearer {access_token}"})


def test_the_consent_page_offers_the_organisations_and_the_scopes(xero_simulator, http, xero_tenant):
    page = http.get(
        "/identity/connect/authorize",
        params={"client_id": DEFAULT_CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": SCOPE},
    )

    assert page.status_code == 200
    assert f'value="{xero_tenant}"' in page.text
    assert "accounting.transactions" in page.text


def test_a_consent_exchanged_with_basic_auth_gives_30_minute_tokens_and_the_chosen_tenant(http, xero_tenant):
    redirect = consent(http, xero_tenant)

    tokens = exchange(http, redirect["code"]).json()
    listed = connections(http, tokens["access_token"]).json()

    assert redirect["state"] == "xyz"
    assert (tokens["token_type"], tokens["expires_in"]) == ("Bearer", 1800)
    assert tokens["refresh_token"] and tokens["id_token"] and tokens["scope"] == SCOPE
    assert [(row["tenantId"], row["tenantType"]) for row in listed] == [(xero_tenant, "ORGANISATION")]
    assert listed[0]["authEventId"] and listed[0]["id"]


def test_a_consent_can_create_a_new_organisation(xero_simulator, http):
    redirect = consent(http, "new", organisation_name="Fresh Books Ltd")

    listed = connections(http, exchange(http, redirect["code"]).json()["access_token"]).json()

    assert [row["tenantName"] for row in listed][-1] == "Fresh Books Ltd"


def test_an_authorization_code_is_single_use(http, xero_tenant):
    code = consent(http, xero_tenant)["code"]

    first, second = exchange(http, code), exchange(http, code)

    assert first.status_code == 200
    assert (second.status_code, second.json()["error"]) == (400, "invalid_grant")


def test_a_wrong_client_secret_is_invalid_client(http, xero_tenant):
    response = token_call(
        http,
        {"grant_type": "authorization_code", "code": consent(http, xero_tenant)["code"], "redirect_uri": REDIRECT_URI},
        secret="wrong",
    )

    assert (response.status_code, response.json()) == (400, {"error": "invalid_client"})


def test_without_offline_access_there_is_no_refresh_token(http, xero_tenant):
    tokens = exchange(http, consent(http, xero_tenant, scope="openid accounting.transactions")["code"]).json()

    assert "refresh_token" not in tokens


def test_pkce_exchanges_with_the_verifier_instead_of_the_secret(http, xero_tenant):
    verifier = "a-long-random-verifier-string-0123456789-abcdefghijkl"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = consent(http, xero_tenant, code_challenge=challenge, code_challenge_method="S256")["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}

    wrong = http.post("/connect/token", data={**form, "client_id": DEFAULT_CLIENT_ID, "code_verifier": "nope"})
    code = consent(http, xero_tenant, code_challenge=challenge, code_challenge_method="S256")["code"]
    right = http.post(
        "/connect/token", data={**form, "code": code, "client_id": DEFAULT_CLIENT_ID, "code_verifier": verifier}
    )

    assert wrong.json()["error"] == "invalid_grant"
    assert right.status_code == 200 and right.json()["access_token"]


def test_an_access_token_expires_after_30_minutes_with_token_expired(xero_simulator, xero_tenant):
    with TenantClient(xero_simulator, xero_tenant) as xero:
        before = xero.request("GET", "/Organisation")
        xero_simulator.advance_clock(1801)
        after = xero.request("GET", "/Organisation")

    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["Title"] == "Unauthorized"
    assert after.json()["Detail"].startswith("TokenExpired: token expired at ")


def test_a_refresh_rotates_the_refresh_token(xero_simulator, http, xero_tenant):
    first = xero_simulator.issue_tokens(xero_tenant)

    second = refresh(http, first["refresh_token"]).json()
    third = refresh(http, second["refresh_token"]).json()

    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert connections(http, third["access_token"]).json()[0]["tenantId"] == xero_tenant


def test_a_used_refresh_token_still_works_within_the_grace_period_and_returns_the_current_one(
    xero_simulator, http, xero_tenant
):
    first = xero_simulator.issue_tokens(xero_tenant)
    second = refresh(http, first["refresh_token"]).json()

    xero_simulator.advance_clock(29 * 60)
    again = refresh(http, first["refresh_token"])

    assert again.status_code == 200
    assert again.json()["refresh_token"] == second["refresh_token"]


def test_a_used_refresh_token_is_invalid_grant_after_the_grace_period(xero_simulator, http, xero_tenant):
    first = xero_simulator.issue_tokens(xero_tenant)
    refresh(http, first["refresh_token"])

    xero_simulator.advance_clock(31 * 60)
    late = refresh(http, first["refresh_token"])

    assert (late.status_code, late.json()["error"]) == (400, "invalid_grant")


def test_a_refresh_token_unused_for_60_days_dies(xero_simulator, http, xero_tenant):
    tokens = xero_simulator.issue_tokens(xero_tenant)

    xero_simulator.advance_clock(60 * 86400 + 1)
    response = refresh(http, tokens["refresh_token"])

    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


def test_refresh_accepts_credentials_in_the_form_as_xero_python_sends_them(xero_simulator, http, xero_tenant):
    tokens = xero_simulator.issue_tokens(xero_tenant)

    response = http.post(
        "/connect/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "scope": SCOPE,
        },
    )

    assert response.status_code == 200


def test_revoking_the_refresh_token_ends_access_refresh_and_connections(xero_simulator, http, xero_tenant):
    tokens = xero_simulator.issue_tokens(xero_tenant)

    revoked = http.post(
        "/connect/revocation", data={"token": tokens["refresh_token"]}, auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    )
    with TenantClient(xero_simulator, xero_tenant, tokens["access_token"]) as xero:
        api = xero.request("GET", "/Organisation")

    assert revoked.status_code == 200
    assert api.status_code == 401
    assert refresh(http, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert connections(http, tokens["access_token"]).status_code == 401


def test_deleting_a_connection_forbids_that_tenant(xero_simulator, http, xero_tenant):
    tokens = xero_simulator.issue_tokens(xero_tenant)
    connection_id = connections(http, tokens["access_token"]).json()[0]["id"]

    deleted = http.delete(
        f"/connections/{connection_id}", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    with TenantClient(xero_simulator, xero_tenant, tokens["access_token"]) as xero:
        api = xero.request("GET", "/Organisation")

    assert deleted.status_code == 204
    assert connections(http, tokens["access_token"]).json() == []
    assert (api.status_code, api.json()["Title"]) == (403, "Forbidden")


def test_tokens_issued_for_one_tenant_do_not_grant_another(xero_simulator, xero_tenant):
    other = xero_simulator.create_tenant("Someone Else Ltd")
    tokens = xero_simulator.issue_tokens(xero_tenant)

    with TenantClient(xero_simulator, other, tokens["access_token"]) as xero:
        response = xero.request("GET", "/Contacts")

    assert response.status_code == 403


def test_a_read_only_scope_lets_reads_through_but_not_writes(xero_simulator, xero_tenant):
    tokens = xero_simulator.issue_tokens(xero_tenant, scope="offline_access accounting.contacts.read")

    with TenantClient(xero_simulator, xero_tenant, tokens["access_token"]) as xero:
        read = xero.request("GET", "/Contacts")
        write = xero.request("PUT", "/Contacts", body={"Contacts": [{"Name": "Acme"}]})

    assert read.status_code == 200
    assert (write.status_code, write.json()["Detail"]) == (403, "AuthorizationUnsuccessful")
