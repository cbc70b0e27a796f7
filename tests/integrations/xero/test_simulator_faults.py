"""Fault injection in the Xero simulator: scripted and random 429/5xx, latency, timeouts, dropped
answers after the write committed, token revocation; set by call or by the admin endpoint."""

import httpx
import pytest

from integrations.xero.simulator.testing import TenantClient


@pytest.fixture
def xero(xero_simulator, xero_tenant):
    with TenantClient(xero_simulator, xero_tenant, timeout=2) as client:
        yield client
    xero_simulator.clear_faults()


def test_a_script_fails_the_next_calls_in_order(xero_simulator, xero):
    xero_simulator.set_faults(script=["503", "429", "500", "ok"])

    statuses = [xero.request("GET", "/Organisation").status_code for _ in range(5)]

    assert statuses == [503, 429, 500, 200, 200]


def test_an_injected_429_names_its_problem_and_counts(xero_simulator, xero):
    before = xero_simulator.stats_snapshot()["counters"].get("injected_429", 0)
    xero_simulator.set_faults(script=["429"], throttle_problem="day", injected_retry_after_seconds=7)

    response = xero.request("GET", "/Organisation")

    assert (response.headers["X-Rate-Limit-Problem"], response.headers["Retry-After"]) == ("day", "7")
    assert xero_simulator.stats_snapshot()["counters"]["injected_429"] == before + 1


def test_gateway_errors_are_html_and_api_errors_are_json(xero_simulator, xero):
    xero_simulator.set_faults(script=["502", "500"])

    gateway = xero.request("GET", "/Organisation")
    api = xero.request("GET", "/Organisation")

    assert gateway.headers["content-type"].startswith("text/html")
    assert api.json()["ErrorNumber"] == 500


def test_a_dropped_answer_still_commits_the_write(xero_simulator, xero):
    xero_simulator.set_faults(script=["drop"])

    with pytest.raises(httpx.TransportError):
        xero.request("PUT", "/Contacts", body={"Contacts": [{"Name": "Committed Ltd"}]})

    assert [row["Name"] for row in xero.list("Contacts", page=1)] == ["Committed Ltd"]
    assert xero_simulator.stats_snapshot()["counters"]["injected_drop"] >= 1


def test_a_timeout_holds_the_answer_longer_than_the_client_waits(xero_simulator, xero):
    xero_simulator.set_faults(script=["timeout"], timeout_seconds=3)

    with pytest.raises(httpx.ReadTimeout):
        xero.request("GET", "/Organisation", timeout=0.3)


def test_an_injected_revocation_disconnects_the_tenant(xero_simulator, xero):
    xero_simulator.set_faults(script=["revoke"])

    response = xero.request("GET", "/Organisation")

    assert response.status_code == 401
    assert response.json()["Detail"] == "AuthenticationUnsuccessful"


def test_random_faults_are_reproducible_with_a_seed(xero_simulator, xero):
    def run():
        xero_simulator.set_faults(error_rate=0.5, error_statuses=[503], seed=11)
        return [xero.request("GET", "/Organisation").status_code for _ in range(12)]

    first = run()
    second = run()

    assert first == second and {200, 503} == set(first)


def test_faults_can_be_limited_to_matching_requests(xero_simulator, xero):
    xero_simulator.set_faults(error_rate=1.0, error_statuses=[503], match="^PUT ")

    assert xero.request("GET", "/Organisation").status_code == 200
    assert xero.request("PUT", "/Contacts", body={"Contacts": [{"Name": "X"}]}).status_code == 503


def test_the_admin_endpoint_sets_and_clears_faults(xero_simulator, xero):
    with httpx.Client(base_url=xero_simulator.base_url) as admin:
        set_response = admin.post("/_simulator/faults", json={"script": ["503"], "latency_ms": 5})
        bad = admin.post("/_simulator/faults", json={"error_rate": 2})
        failed = xero.request("GET", "/Organisation")
        admin.post("/_simulator/faults", json={"script": [], "latency_ms": 0})

    assert set_response.json()["remaining_script"] == ["503"]
    assert bad.status_code == 400
    assert failed.status_code == 503
    assert xero.request("GET", "/Organisation").status_code == 200


def test_latency_delays_the_answer(xero_simulator, xero):
    xero_simulator.set_faults(latency_ms=200)

    response = xero.request("GET", "/Organisation")

    assert response.elapsed.total_seconds() >= 0.2
