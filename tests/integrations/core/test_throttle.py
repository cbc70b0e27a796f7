import multiprocessing
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from integrations.core import errors
from integrations.core.throttle import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    TenantLimiter,
    backoff_delay,
    retry_after_seconds,
)


def _limiter(tenant_key, store_url, clock, **limits) -> TenantLimiter:
    limits = {"per_minute": 100, "max_in_flight": 10, **limits}
    return TenantLimiter(tenant_key, redis_url=store_url, clock=clock, sleep=clock.sleep, **limits)


# --- backoff and Retry-After -------------------------------------------------------------------


def test_backoff_stays_within_the_exponential_bound():
    rng = random.Random(7)

    delays = [backoff_delay(3, base=2.0, rng=rng) for _ in range(500)]

    assert all(0 <= delay <= 16.0 for delay in delays)


def test_backoff_is_fully_jittered_across_the_whole_range():
    rng = random.Random(7)

    delays = [backoff_delay(3, base=2.0, rng=rng) for _ in range(500)]

    assert min(delays) < 1.0
    assert max(delays) > 15.0


def test_backoff_never_exceeds_the_cap_even_for_late_attempts():
    rng = random.Random(7)

    assert max(backoff_delay(5000, cap=30.0, rng=rng) for _ in range(200)) <= 30.0


def test_backoff_refuses_a_negative_attempt():
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1)


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), (" 1.5 ", 1.5), ("0", 0.0)])
def test_retry_after_in_seconds_is_read_as_a_delay(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date_is_read_relative_to_now():
    now = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=90), usegmt=True)

    assert retry_after_seconds(header, now=now) == 90.0


def test_retry_after_date_in_the_past_means_no_wait():
    now = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)

    assert retry_after_seconds("Mon, 02 Mar 2026 11:00:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "nan", "inf"])
def test_missing_or_unreadable_retry_after_is_none(value):
    assert retry_after_seconds(value) is None


# --- rate windows ------------------------------------------------------------------------------


def test_slots_beyond_the_minute_budget_are_refused_at_once_when_the_wait_outlasts_the_timeout(
    tenant_key, store_url, clock
):
    limiter = _limiter(tenant_key, store_url, clock, per_minute=3)
    for _ in range(3):
        with limiter.slot(timeout=0):
            clock.now += 1

    with pytest.raises(errors.RateLimited) as refused:
        limiter.acquire(timeout=30)

    assert refused.value.retry_after == pytest.approx(57.0)
    assert clock.sleeps == []


def test_a_slot_frees_when_the_oldest_grant_leaves_the_sliding_minute(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock, per_minute=3)
    start = clock.now
    for _ in range(3):
        with limiter.slot(timeout=0):
            clock.now += 10

    with limiter.slot(timeout=120):
        assert clock.now == pytest.approx(start + 60)


def test_the_per_second_limit_spaces_calls(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock, per_second=2)
    start = clock.now

    granted_at = []
    for _ in range(5):
        with limiter.slot(timeout=5):
            granted_at.append(clock.now - start)

    assert granted_at == pytest.approx([0, 0, 1, 1, 2])


# --- in-flight slots ---------------------------------------------------------------------------


def test_in_flight_slots_are_capped(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock, max_in_flight=2)
    limiter.acquire(timeout=0)
    limiter.acquire(timeout=0)

    with pytest.raises(errors.RateLimited, match="all slots in use"):
        limiter.acquire(timeout=0)


def test_slot_is_released_when_the_call_raises(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock, max_in_flight=1)

    with pytest.raises(errors.TransientError), limiter.slot(timeout=0):
        raise errors.TransientError("vendor timed out")

    assert limiter.in_flight() == 0
    with limiter.slot(timeout=0):
        assert limiter.in_flight() == 1


def test_a_waiting_worker_gets_the_slot_another_releases(tenant_key, store_url, clock):
    holder = _limiter(tenant_key, store_url, clock, max_in_flight=1)
    held = holder.acquire(timeout=0)

    def release_then_sleep(seconds):
        holder.release(held)
        clock.sleep(seconds)

    waiter = TenantLimiter(
        tenant_key, per_minute=100, max_in_flight=1, redis_url=store_url, clock=clock, sleep=release_then_sleep
    )

    with waiter.slot(timeout=5):
        assert len(clock.sleeps) == 1
        assert clock.sleeps[0] <= waiter.poll_interval


def test_the_slot_of_a_worker_that_died_lapses_after_the_lease(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock, max_in_flight=2, lease_seconds=30)
    limiter.acquire(timeout=0)
    limiter.acquire(timeout=0)  # neither is ever released: their worker died

    clock.now += 30.5

    with limiter.slot(timeout=0):
        assert limiter.in_flight() == 1


# --- pauses and vendor headers -----------------------------------------------------------------


def test_a_pause_holds_every_limiter_with_the_same_key(tenant_key, store_url, clock):
    first = _limiter(tenant_key, store_url, clock)
    second = _limiter(tenant_key, store_url, clock)

    first.pause(30)

    with pytest.raises(errors.RateLimited, match="paused") as refused:
        second.acquire(timeout=5)
    assert refused.value.retry_after == pytest.approx(30)


def test_a_paused_limiter_resumes_when_the_pause_ends(tenant_key, store_url, clock):
    first = _limiter(tenant_key, store_url, clock)
    second = _limiter(tenant_key, store_url, clock)
    start = clock.now

    first.pause(30)

    with second.slot(timeout=60):
        assert clock.now == pytest.approx(start + 30)


def test_a_pause_does_not_hold_other_tenants(tenant_key, store_url, clock):
    _limiter(tenant_key, store_url, clock).pause(30)

    with _limiter(f"{tenant_key}-other", store_url, clock).slot(timeout=0):
        assert clock.sleeps == []


def test_a_shorter_pause_does_not_cut_a_longer_one(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock)
    limiter.pause(30)
    limiter.pause(5)

    assert limiter.paused_for() == pytest.approx(30)


def test_observe_honours_retry_after(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock)

    assert limiter.observe({"Retry-After": "12"}) == 12
    assert limiter.paused_for() == pytest.approx(12)


def test_observe_pauses_until_the_next_minute_when_xero_minute_quota_is_spent(tenant_key, store_url, clock):
    clock.now = 1_800_000_015.0  # 15 s into a minute
    limiter = _limiter(tenant_key, store_url, clock)

    limiter.observe({"x-minlimit-remaining": "0", "x-daylimit-remaining": "4000", "x-appminlimit-remaining": "9000"})

    assert limiter.paused_for() == pytest.approx(45)


def test_observe_leaves_a_spent_xero_day_quota_to_the_429_that_says_when_it_resets(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock)

    assert limiter.observe({"x-minlimit-remaining": "40", "x-daylimit-remaining": "0"}) == 0
    assert limiter.paused_for() == 0


def test_observe_leaves_pacing_alone_while_quota_remains(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock)

    assert limiter.observe({"X-MinLimit-Remaining": "3", "X-RateLimit-Remaining": "10"}) == 0
    assert limiter.paused_for() == 0


def test_observe_pauses_until_an_epoch_rate_limit_reset(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock)

    limiter.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.now) + 20)})

    assert limiter.paused_for() == pytest.approx(20)


def test_observe_pauses_for_a_delta_rate_limit_reset(tenant_key, store_url, clock):
    limiter = _limiter(tenant_key, store_url, clock)

    limiter.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": "7"})

    assert limiter.paused_for() == pytest.approx(7)


def test_an_unreachable_redis_is_a_transient_error(tenant_key, clock):
    limiter = TenantLimiter(tenant_key, per_minute=10, max_in_flight=1, redis_url="redis://127.0.0.1:1/0", clock=clock)

    with pytest.raises(errors.TransientError, match="unavailable"):
        limiter.acquire(timeout=0)


# --- several workers at once -------------------------------------------------------------------

HAMMER_BUDGET = 40
HAMMER_SECONDS = 2.0


def _hammer(redis_url, key, start, in_flight, peak, granted):
    """One worker process: take slots as fast as it can for a while, tracking overlap."""
    limiter = TenantLimiter(key, per_minute=HAMMER_BUDGET, max_in_flight=2, redis_url=redis_url, poll_interval=0.005)
    start.wait()
    deadline = time.monotonic() + HAMMER_SECONDS
    while time.monotonic() < deadline:
        try:
            with limiter.slot(timeout=max(0.0, deadline - time.monotonic())):
                with in_flight.get_lock():
                    in_flight.value += 1
                    peak.value = max(peak.value, in_flight.value)
                time.sleep(0.002)  # hold the slot, so that a third holder would overlap
                with in_flight.get_lock():
                    in_flight.value -= 1
                with granted.get_lock():
                    granted.value += 1
        except errors.RateLimited:
            time.sleep(0.01)  # the minute's budget is spent: keep knocking, gently


def test_four_processes_share_one_budget_and_two_slots(tenant_key, redis_url):
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    in_flight, peak, granted = context.Value("i", 0), context.Value("i", 0), context.Value("i", 0)
    workers = [
        context.Process(target=_hammer, args=(redis_url, tenant_key, start, in_flight, peak, granted)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert granted.value == HAMMER_BUDGET
    assert 1 <= peak.value <= 2


def test_four_threads_share_one_in_process_budget_and_two_slots(tenant_key):
    limiter = TenantLimiter(tenant_key, per_minute=HAMMER_BUDGET, max_in_flight=2, redis_url="", poll_interval=0.005)
    lock = threading.Lock()
    counts = {"in_flight": 0, "peak": 0, "granted": 0}
    deadline = time.monotonic() + 1.0

    def hammer():
        while time.monotonic() < deadline:
            try:
                with limiter.slot(timeout=max(0.0, deadline - time.monotonic())):
                    with lock:
                        counts["in_flight"] += 1
                        counts["peak"] = max(counts["peak"], counts["in_flight"])
                    time.sleep(0.002)
                    with lock:
                        counts["in_flight"] -= 1
                        counts["granted"] += 1
            except errors.RateLimited:
                time.sleep(0.01)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert counts["granted"] == HAMMER_BUDGET
    assert 1 <= counts["peak"] <= 2


# --- circuit breaker ---------------------------------------------------------------------------


def _breaker(tenant_key, store_url, clock, **options) -> CircuitBreaker:
    options = {"failure_threshold": 3, "reset_after": 60.0, **options}
    return CircuitBreaker(tenant_key, redis_url=store_url, clock=clock, **options)


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        breaker.before_call()
        breaker.record_failure()


def test_breaker_stays_closed_below_the_threshold(tenant_key, store_url, clock):
    breaker = _breaker(tenant_key, store_url, clock)
    breaker.record_failure()
    breaker.record_failure()

    breaker.before_call()
    assert breaker.state() == CLOSED


def test_breaker_opens_after_consecutive_failures(tenant_key, store_url, clock):
    breaker = _breaker(tenant_key, store_url, clock)
    _open(breaker)
    clock.now += 10

    with pytest.raises(errors.CircuitOpen) as refused:
        breaker.before_call()
    assert refused.value.retry_after == pytest.approx(50)
    assert breaker.state() == OPEN


def test_a_success_resets_the_run_of_failures(tenant_key, store_url, clock):
    breaker = _breaker(tenant_key, store_url, clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()

    assert breaker.state() == CLOSED
    assert breaker.failures() == 2


def test_half_open_breaker_lets_exactly_one_trial_through(tenant_key, store_url, clock):
    breaker = _breaker(tenant_key, store_url, clock)
    other_worker = _breaker(tenant_key, store_url, clock)
    _open(breaker)
    clock.now += 60

    breaker.before_call()  # the trial
    with pytest.raises(errors.CircuitOpen):
        breaker.before_call()
    with pytest.raises(errors.CircuitOpen):
        other_worker.before_call()
    assert other_worker.state() == HALF_OPEN


def test_a_successful_trial_closes_the_breaker(tenant_key, store_url, clock):
    breaker = _breaker(tenant_key, store_url, clock)
    _open(breaker)
    clock.now += 60
    breaker.before_call()

    breaker.record_success()

    assert breaker.state() == CLOSED
    breaker.before_call()
    breaker.before_call()


def test_a_failed_trial_opens_the_breaker_for_another_period(tenant_key, store_url, clock):
    breaker = _breaker(tenant_key, store_url, clock)
    _open(breaker)
    clock.now += 60
    breaker.before_call()

    breaker.record_failure()

    assert breaker.state() == OPEN
    clock.now += 59
    with pytest.raises(errors.CircuitOpen):
        breaker.before_call()
    clock.now += 1
    breaker.before_call()


def test_a_trial_whose_caller_never_reports_lapses(tenant_key, store_url, clock):
    breaker = _breaker(tenant_key, store_url, clock, trial_timeout=20)
    _open(breaker)
    clock.now += 60
    breaker.before_call()  # this caller dies

    clock.now += 20

    breaker.before_call()
    with pytest.raises(errors.CircuitOpen):
        breaker.before_call()
