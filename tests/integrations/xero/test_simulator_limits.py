"""The Xero simulator's rate limits: remaining-quota headers on every answer, and 429 with
Retry-After and X-Rate-Limit-Problem for the minute, day and concurrent limits (contract §11)."""

import threading
import time

import pytest

from integrations.xero.simulator.testing import TenantClient


@pytest.fixture
def xero(xero_simulator, xero_tenant):
    with TenantClient(xero_simulator, xero_tenant) as client:
        yield client
    xero_simulator.set_limits(calls_per_minute=60, calls_per_day=5000, max_concurrent=5, app_calls_per_minute=10_000)


def test_every_answer_carries_the_remaining_quota_headers(xero):
    first = xero.request("GET", "/Organisation")
    second = xero.request("GET", "/Contacts/00000000-0000-0000-0000-000000000009")

    assert (first.headers["X-MinLimit-Remaining"], first.headers["X-DayLimit-Remaining"]) == ("59", "4999")
    assert second.status_code == 404
    assert (second.headers["X-MinLimit-Remaining"], second.headers["X-DayLimit-Remaining"]) == ("58", "4998")
    assert int(first.headers["X-AppMinLimit-Remaining"]) > int(second.headers["X-AppMinLimit-Remaining"])


def test_the_61st_call_in_a_minute_is_refused_with_the_minute_problem(xero_simulator, xero):
    for _ in range(60):
        assert xero.request("GET", "/Organisation").status_code == 200

    refused = xero.request("GET", "/Organisation")

    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-MinLimit-Remaining"] == "0"


def test_the_minute_window_slides_with_the_clock(xero_simulator, xero):
    xero_simulator.set_limits(calls_per_minute=2)
    xero.request("GET", "/Organisation")
    xero.request("GET", "/Organisation")
    refused = xero.request("GET", "/Organisation")

    xero_simulator.advance_clock(int(refused.headers["Retry-After"]))

    assert xero.request("GET", "/Organisation").status_code == 200


def test_refused_calls_do_not_count(xero_simulator, xero):
    xero_simulator.set_limits(calls_per_minute=1)
    xero.request("GET", "/Organisation")
    for _ in range(3):
        xero.request("GET", "/Organisation")

    xero_simulator.advance_clock(61)

    assert xero.request("GET", "/Organisation").headers["X-MinLimit-Remaining"] == "0"


def test_the_day_limit_is_its_own_problem_and_waits_for_the_day_to_roll(xero_simulator, xero):
    xero_simulator.set_limits(calls_per_day=3)
    for _ in range(3):
        xero.request("GET", "/Organisation")
    xero_simulator.advance_clock(120)

    refused = xero.request("GET", "/Organisation")

    assert (refused.status_code, refused.headers["X-Rate-Limit-Problem"]) == (429, "day")
    assert int(refused.headers["Retry-After"]) > 80_000
    assert refused.headers["X-DayLimit-Remaining"] == "0"
    xero_simulator.advance_clock(int(refused.headers["Retry-After"]))
    xero.access_token = xero_simulator.issue_tokens(xero.tenant_id)["access_token"]  # a day outlives a token
    assert xero.request("GET", "/Organisation").status_code == 200


def test_a_sixth_call_in_flight_is_refused_with_the_concurrent_problem(xero_simulator, xero):
    xero_simulator.set_limits(max_concurrent=1)
    xero_simulator.set_faults(latency_ms=300, match="Organisation")
    slow = threading.Thread(target=lambda: xero.request("GET", "/Organisation"))
    slow.start()
    deadline = time.monotonic() + 2
    while xero_simulator.limiter.in_flight(xero.tenant_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)

    refused = xero.request("GET", "/Contacts")
    slow.join()

    assert (refused.status_code, refused.headers["X-Rate-Limit-Problem"]) == (429, "concurrent")
    assert refused.headers["Retry-After"] == "1"


def test_limits_are_per_tenant(xero_simulator, xero):
    xero_simulator.set_limits(calls_per_minute=1)
    xero.request("GET", "/Organisation")
    other = xero_simulator.create_tenant("Other Ltd")

    with TenantClient(xero_simulator, other) as second:
        assert second.request("GET", "/Organisation").status_code == 200
    assert xero.request("GET", "/Organisation").status_code == 429


def test_the_app_wide_minute_limit_spans_tenants(xero_simulator, xero):
    xero_simulator.set_limits(app_calls_per_minute=1)
    xero.request("GET", "/Organisation")

    with TenantClient(xero_simulator, xero_simulator.create_tenant("Other Ltd")) as second:
        refused = second.request("GET", "/Organisation")

    assert (refused.status_code, refused.headers["X-Rate-Limit-Problem"]) == (429, "appminute")


def test_stats_count_429s_by_problem(xero_simulator, xero):
    before = xero_simulator.stats_snapshot()["sent_429_by_problem"]
    xero_simulator.set_limits(calls_per_minute=1)
    xero.request("GET", "/Organisation")
    xero.request("GET", "/Organisation")
    xero.request("GET", "/Organisation")

    after = xero_simulator.stats_snapshot()

    assert after["sent_429_by_problem"]["minute"] - before["minute"] == 2
    assert after["counters"]["sent_429"] >= 2
