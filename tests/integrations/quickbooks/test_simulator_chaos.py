"""The simulator's throttling (contract §11) and its fault injectors, driven over real HTTP."""

import threading
import time

import httpx
import pytest

from integrations.quickbooks.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, QuickBooksSimulator
from integrations.quickbooks.simulator.testing import RealmClient


@pytest.fixture(scope="module")
def sim():
    with QuickBooksSimulator(demo_realm=False) as simulator:
        yield simulator


@pytest.fixture
def qbo(sim):
    sim.reset()
    with RealmClient(sim, sim.create_realm("Chaos Tests")) as client:
        yield client


def customers(sim, qbo):
    return sim.list_entities(qbo.realm_id, "Customer")


# --- throttling -------------------------------------------------------------------------------


def test_the_request_after_the_bucket_empties_gets_429_3001_with_retry_after(sim, qbo):
    sim.set_limits(requests_per_minute=3)

    statuses = [qbo.request("GET", "/item/1").status_code for _ in range(3)]
    throttled = qbo.request("GET", "/item/1")

    error = throttled.json()["Fault"]["Error"][0]
    assert statuses == [200, 200, 200]
    assert throttled.status_code == 429
    assert (error["code"], throttled.json()["Fault"]["type"]) == ("3001", "SERVICE")
    assert error["Message"] == "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    assert throttled.headers["Retry-After"] == "20"  # one request's worth of a 3-a-minute bucket


def test_the_bucket_refills_with_simulated_time(sim, qbo):
    sim.set_limits(requests_per_minute=3)
    for _ in range(3):
        qbo.request("GET", "/item/1")

    sim.advance_clock(20)

    assert qbo.request("GET", "/item/1").status_code == 200
    assert qbo.request("GET", "/item/1").status_code == 429


def test_retry_after_can_be_switched_off(sim, qbo):
    sim.set_limits(requests_per_minute=1, retry_after_header=False)
    qbo.request("GET", "/item/1")

    throttled = qbo.request("GET", "/item/1")

    assert throttled.status_code == 429
    assert "Retry-After" not in throttled.headers


def test_throttling_can_answer_in_xml_whatever_was_asked(sim, qbo):
    sim.set_limits(requests_per_minute=1, throttle_xml=True)
    qbo.request("GET", "/item/1")

    throttled = qbo.request("GET", "/item/1")

    assert throttled.headers["Content-Type"].startswith("application/xml")
    assert '<Error code="3001">' in throttled.text


def test_more_requests_in_flight_than_allowed_get_429(sim, qbo):
    sim.set_limits(max_concurrent=2)
    sim.set_faults(latency_ms=300)
    start = threading.Barrier(6)
    statuses = []

    def call():
        with httpx.Client(timeout=5) as client:
            start.wait()
            response = client.get(
                f"{sim.api_url}/company/{qbo.realm_id}/item/1",
                headers={"Authorization": f"Bearer {qbo.access_token}", "Accept": "application/json"},
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stats = sim.stats_snapshot()
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1
    assert stats["realms"][qbo.realm_id]["max_concurrency"] == 2
    assert stats["counters"]["throttled_concurrency"] == statuses.count(429)


# --- injected faults --------------------------------------------------------------------------


def test_an_injected_429_carries_the_configured_retry_after(sim, qbo):
    sim.set_faults(throttle_rate=1.0, injected_retry_after_seconds=7)

    response = qbo.request("GET", "/item/1")

    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    assert sim.stats_snapshot()["counters"]["injected_429"] == 1


def test_injected_server_errors_are_system_faults_or_gateway_pages(sim, qbo):
    sim.set_faults(script=["500", "502", "503", "504"])

    responses = [qbo.request("GET", "/item/1") for _ in range(5)]

    assert [response.status_code for response in responses] == [500, 502, 503, 504, 200]
    assert responses[0].json()["Fault"]["type"] == "SystemFault"
    assert responses[2].json()["Fault"]["Error"][0]["code"] == "10000"
    assert responses[1].headers["Content-Type"].startswith("text/html")
    assert responses[3].headers["Content-Type"].startswith("text/html")


def test_the_same_seed_fails_the_same_requests(sim, qbo):
    def run():
        sim.set_faults(error_rate=0.5, seed=7)
        return [qbo.request("GET", "/item/1").status_code for _ in range(20)]

    first, second = run(), run()

    assert first == second
    assert 200 in first and any(status >= 500 for status in first)


def test_faults_can_be_limited_to_matching_requests(sim, qbo):
    sim.set_faults(error_rate=1.0, error_statuses=[503], match="^POST ")

    read = qbo.request("GET", "/item/1")
    write = qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"})

    assert (read.status_code, write.status_code) == (200, 503)
    assert customers(sim, qbo) == []


def test_latency_delays_every_answer(sim, qbo):
    sim.set_faults(latency_ms=150)

    started = time.monotonic()
    response = qbo.request("GET", "/item/1")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.15


def test_a_timed_out_write_is_committed_although_the_client_gave_up(sim, qbo):
    sim.set_faults(script=["timeout"], timeout_seconds=2)

    with pytest.raises(httpx.ReadTimeout):
        qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, timeout=0.3)

    assert [row["DisplayName"] for row in customers(sim, qbo)] == ["Acme Ltd"]
    assert sim.stats_snapshot()["counters"]["injected_timeout"] == 1


def test_a_dropped_write_is_committed_and_its_requestid_replays_the_answer(sim, qbo):
    sim.set_faults(script=["drop"])

    with pytest.raises(httpx.TransportError) as dropped:
        qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "r-1"})
    retried = qbo.request("POST", "/customer", body={"DisplayName": "Acme Ltd"}, params={"requestid": "r-1"})

    assert not isinstance(dropped.value, httpx.TimeoutException)
    assert retried.status_code == 200
    assert retried.json()["Customer"]["DisplayName"] == "Acme Ltd"
    assert len(customers(sim, qbo)) == 1


def test_an_injected_revocation_disconnects_the_realm(sim, qbo):
    refresh_token = qbo.sim.issue_tokens(qbo.realm_id)["refresh_token"]
    sim.set_faults(script=["revoke"])

    response = qbo.request("GET", "/item/1")
    refreshed = httpx.post(
        sim.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
    )

    assert response.status_code == 401
    assert (refreshed.status_code, refreshed.json()["error"]) == (400, "invalid_grant")


def test_faults_are_set_and_read_through_the_admin_endpoint(sim, qbo):
    with httpx.Client(base_url=sim.base_url) as admin:
        changed = admin.put("/_simulator/faults", json={"error_rate": 1, "error_statuses": [503], "seed": 3})
        shown = admin.get("/_simulator/faults").json()
        invalid = admin.put("/_simulator/faults", json={"error_rate": 2})
        unknown = admin.put("/_simulator/faults", json={"bogus": 1})

    assert changed.status_code == 200
    assert (shown["error_rate"], shown["error_statuses"], shown["seed"]) == (1.0, [503], 3)
    assert (invalid.status_code, unknown.status_code) == (400, 400)
    assert qbo.request("GET", "/item/1").status_code == 503


def test_the_request_log_and_counters_record_what_was_sent(sim, qbo):
    sim.set_limits(requests_per_minute=1)
    qbo.request("GET", "/item/1")
    qbo.request("GET", "/item/1")

    with httpx.Client(base_url=sim.base_url) as admin:
        stats = admin.get("/_simulator/stats").json()
        log = admin.get("/_simulator/log", params={"limit": 2}).json()["requests"]

    assert stats["counters"]["sent_429"] == 1
    assert stats["by_status"] == {"200": 1, "429": 1}
    assert stats["realms"][qbo.realm_id]["max_concurrency"] == 1
    assert [(entry["method"], entry["status"]) for entry in log] == [("GET", 200), ("GET", 429)]
    assert log[0]["realm"] == qbo.realm_id
