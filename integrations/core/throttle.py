"""Pacing calls to an accounting package: per-tenant rate limits, circuit breakers and backoff.

Every worker that talks to one tenant shares that tenant's limiter and breaker through Redis
(settings.SYNC_REDIS_URL), so two Celery workers together stay inside the vendor's limits. Each
check-and-take is one Lua script, atomic across processes. Without a Redis URL the same logic runs
in this process's memory: right for one laptop, too generous for several workers.

All times are seconds from the `clock` callable (wall-clock `time.time` by default, because
several processes, possibly on several machines, compare them); tests inject their own clock.

Limiter state in Redis, under `concord:sync:limit:{<key>}` (the braces keep one tenant's keys in
one Redis Cluster slot, as a multi-key script requires):
  `:grants`  sorted set, one member per slot granted, scored by when: the sliding windows
  `:leases`  sorted set, one member per slot in use, scored by when it lapses, so a worker that
             dies holding a slot loses it after `lease_seconds`
  `:pause`   the time before which nobody starts a call (the vendor's Retry-After)
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import redis
from django.conf import settings

from . import errors

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], None]

KEY_PREFIX = "concord:sync:"
MINUTE = 60.0
SECOND = 1.0

# Why a slot was not granted: the script's first result.
_GRANTED, _PAUSED, _RATE, _IN_FLIGHT = 0, 1, 2, 3
_REASONS = {_PAUSED: "paused by the vendor", _RATE: "rate limit reached", _IN_FLIGHT: "all slots in use"}
# Shortest sleep between attempts, so that rounding never turns the wait loop into a busy spin.
_MIN_SLEEP = 0.001

# Jitter spreads retries; it is not a secret, so the ordinary generator serves.
_jitter = random.Random()  # noqa: S311


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first): "full jitter", uniformly
    anywhere up to the exponential bound, so that workers failing together do not retry together."""
    if attempt < 0:
        raise ValueError(f"attempt must be 0 or more, not {attempt}")
    # The exponent is bounded so that a very late attempt cannot overflow a float.
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    return (rng or _jitter).uniform(0.0, ceiling)


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """An HTTP Retry-After header in seconds from `now`: delta-seconds or an HTTP-date.
    None when absent or unreadable; a date already past gives 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # HTTP-dates are GMT; a "-0000" zone parses as naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- Where the shared state lives ----------------------------------------------------------------

_TAKE_SLOT = """
-- KEYS: grants, leases, pause
-- ARGV: now, minute cutoff, exclusive second cutoff, per_minute, per_second (0 = none),
--       max_in_flight, lease id, lease lapses at, key lifetime in ms
local now = tonumber(ARGV[1])
local paused_until = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused_until > now then
  return {1, tostring(paused_until - now)}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local per_minute = tonumber(ARGV[4])
local in_minute = redis.call('ZCARD', KEYS[1])
if in_minute >= per_minute then
  local freeing = redis.call('ZRANGE', KEYS[1], in_minute - per_minute, in_minute - per_minute, 'WITHSCORES')
  return {2, tostring(tonumber(freeing[2]) + 60 - now)}
end
local per_second = tonumber(ARGV[5])
if per_second > 0 then
  local in_second = redis.call('ZCOUNT', KEYS[1], ARGV[3], '+inf')
  if in_second >= per_second then
    local freeing = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[3], '+inf', 'WITHSCORES', 'LIMIT',
                               in_second - per_second, 1)
    return {2, tostring(tonumber(freeing[2]) + 1 - now)}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {3, tostring(tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[9])
redis.call('PEXPIRE', KEYS[2], ARGV[9])
return {0, '0'}
"""

_PAUSE = """
-- KEYS: pause; ARGV: until, lifetime in ms. A pause only ever lengthens.
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
"""

_BREAKER_BEFORE = """
-- KEYS: breaker; ARGV: now, reset_after, trial lapses at. Returns {allowed, seconds to wait}.
local state = redis.call('HMGET', KEYS[1], 'opened_at', 'trial_until')
local opened_at = tonumber(state[1] or '0')
if opened_at == 0 then
  return {1, '0'}
end
local now = tonumber(ARGV[1])
local half_open_at = opened_at + tonumber(ARGV[2])
if now < half_open_at then
  return {0, tostring(half_open_at - now)}
end
local trial_until = tonumber(state[2] or '0')
if trial_until > now then
  return {0, tostring(trial_until - now)}
end
redis.call('HSET', KEYS[1], 'trial_until', ARGV[3])
return {1, '0'}
"""

_BREAKER_FAILURE = """
-- KEYS: breaker; ARGV: now, reset_after, failure_threshold, key lifetime in seconds
local state = redis.call('HMGET', KEYS[1], 'opened_at', 'failures')
local opened_at = tonumber(state[1] or '0')
local failures = tonumber(state[2] or '0') + 1
if opened_at > 0 and tonumber(ARGV[1]) >= opened_at + tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[1], 'trial_until', '0', 'failures', failures)
elseif opened_at == 0 and failures >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[1], 'failures', failures)
else
  redis.call('HSET', KEYS[1], 'failures', failures)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return failures
"""


@dataclass
class _Breaker:
    opened_at: float = 0.0
    trial_until: float = 0.0
    failures: int = 0


class _MemoryStore:
    """The Lua scripts' logic for one process, behind one lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._grants: dict[str, list[float]] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._paused: dict[str, float] = {}
        self._breakers: dict[str, _Breaker] = {}

    def take_slot(self, name, *, now, per_minute, per_second, max_in_flight, lease_id, lease_until):
        with self._lock:
            paused_until = self._paused.get(name, 0.0)
            if paused_until > now:
                return _PAUSED, paused_until - now
            grants = self._grants.setdefault(name, [])
            del grants[: bisect.bisect_right(grants, now - MINUTE)]
            if len(grants) >= per_minute:
                return _RATE, grants[len(grants) - per_minute] + MINUTE - now
            if per_second:
                in_second = grants[bisect.bisect_right(grants, now - SECOND) :]
                if len(in_second) >= per_second:
                    return _RATE, in_second[len(in_second) - per_second] + SECOND - now
            leases = {lease: lapses for lease, lapses in self._leases.get(name, {}).items() if lapses > now}
            self._leases[name] = leases
            if len(leases) >= max_in_flight:
                return _IN_FLIGHT, min(leases.values()) - now
            bisect.insort(grants, now)
            leases[lease_id] = lease_until
            return _GRANTED, 0.0

    def release_slot(self, name, lease_id):
        with self._lock:
            self._leases.get(name, {}).pop(lease_id, None)

    def pause(self, name, *, until, seconds):
        with self._lock:
            self._paused[name] = max(self._paused.get(name, 0.0), until)

    def paused_until(self, name):
        with self._lock:
            return self._paused.get(name, 0.0)

    def in_flight(self, name, *, now):
        with self._lock:
            return sum(1 for lapses in self._leases.get(name, {}).values() if lapses > now)

    def breaker_before(self, name, *, now, reset_after, trial_until):
        with self._lock:
            breaker = self._breakers.setdefault(name, _Breaker())
            if not breaker.opened_at:
                return True, 0.0
            half_open_at = breaker.opened_at + reset_after
            if now < half_open_at:
                return False, half_open_at - now
            if breaker.trial_until > now:
                return False, breaker.trial_until - now
            breaker.trial_until = trial_until
            return True, 0.0

    def breaker_failure(self, name, *, now, reset_after, threshold):
        with self._lock:
            breaker = self._breakers.setdefault(name, _Breaker())
            breaker.failures += 1
            if breaker.opened_at and now >= breaker.opened_at + reset_after:
                breaker.opened_at, breaker.trial_until = now, 0.0
            elif not breaker.opened_at and breaker.failures >= threshold:
                breaker.opened_at = now
            return breaker.failures

    def breaker_success(self, name):
        with self._lock:
            self._breakers.pop(name, None)

    def breaker_snapshot(self, name):
        with self._lock:
            breaker = self._breakers.get(name, _Breaker())
            return breaker.opened_at, breaker.trial_until, breaker.failures


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as error:
        # Without the shared store no worker can know whether a call is allowed; waiting is safe.
        raise errors.TransientError(
            f"The rate-limit store (Redis) is unavailable: {error}", code="throttle_store"
        ) from error


@dataclass
class _RedisStore:
    client: redis.Redis
    scripts: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, source in (
            ("take_slot", _TAKE_SLOT),
            ("pause", _PAUSE),
            ("breaker_before", _BREAKER_BEFORE),
            ("breaker_failure", _BREAKER_FAILURE),
        ):
            self.scripts[name] = self.client.register_script(source)

    @staticmethod
    def _keys(name):
        base = KEY_PREFIX + name
        return [f"{base}:grants", f"{base}:leases", f"{base}:pause"]

    def take_slot(self, name, *, now, per_minute, per_second, max_in_flight, lease_id, lease_until):
        # The keys outlive the longest window or lease by a margin, then vanish for idle tenants.
        lifetime_ms = math.ceil(max(MINUTE, lease_until - now) * 1000) + 1000
        args = [
            repr(now),
            repr(now - MINUTE),
            f"({now - SECOND!r}",
            per_minute,
            per_second or 0,
            max_in_flight,
            lease_id,
            repr(lease_until),
            lifetime_ms,
        ]
        with _redis_errors():
            reason, wait = self.scripts["take_slot"](keys=self._keys(name), args=args)
        return int(reason), float(wait)

    def release_slot(self, name, lease_id):
        with _redis_errors():
            self.client.zrem(self._keys(name)[1], lease_id)

    def pause(self, name, *, until, seconds):
        lifetime_ms = math.ceil(seconds * 1000) + 1000
        with _redis_errors():
            self.scripts["pause"](keys=self._keys(name)[2:], args=[repr(until), lifetime_ms])

    def paused_until(self, name):
        with _redis_errors():
            return float(self.client.get(self._keys(name)[2]) or 0.0)

    def in_flight(self, name, *, now):
        with _redis_errors():
            return int(self.client.zcount(self._keys(name)[1], f"({now!r}", "+inf"))

    def breaker_before(self, name, *, now, reset_after, trial_until):
        with _redis_errors():
            allowed, wait = self.scripts["breaker_before"](
                keys=[KEY_PREFIX + name], args=[repr(now), repr(reset_after), repr(trial_until)]
            )
        return bool(allowed), float(wait)

    def breaker_failure(self, name, *, now, reset_after, threshold):
        # An idle breaker's record is dropped after a while: old failures are not "in a row".
        lifetime = math.ceil(max(reset_after * 4, 3600.0))
        with _redis_errors():
            return int(
                self.scripts["breaker_failure"](
                    keys=[KEY_PREFIX + name], args=[repr(now), repr(reset_after), threshold, lifetime]
                )
            )

    def breaker_success(self, name):
        with _redis_errors():
            self.client.delete(KEY_PREFIX + name)

    def breaker_snapshot(self, name):
        with _redis_errors():
            opened_at, trial_until, failures = self.client.hmget(
                KEY_PREFIX + name, ["opened_at", "trial_until", "failures"]
            )
        return float(opened_at or 0.0), float(trial_until or 0.0), int(failures or 0)


_memory = _MemoryStore()
_redis_stores: dict[str, _RedisStore] = {}
_redis_stores_lock = threading.Lock()


def _store_for(redis_url: str | None) -> _MemoryStore | _RedisStore:
    url = settings.SYNC_REDIS_URL if redis_url is None else redis_url
    if not url:
        return _memory
    with _redis_stores_lock:
        if url not in _redis_stores:
            # One client (and connection pool) per URL for the whole process; redis-py reopens its
            # connections in a forked child by itself.
            client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
            _redis_stores[url] = _RedisStore(client)
        return _redis_stores[url]


# --- The limiter -----------------------------------------------------------------------------------


class TenantLimiter:
    """Request slots for one tenant: at most `per_minute` started in any 60 seconds (and
    `per_second` in any second), at most `max_in_flight` running at once, none while paused."""

    def __init__(
        self,
        key: str,
        *,
        per_minute: int,
        max_in_flight: int,
        per_second: int | None = None,
        redis_url: str | None = None,
        lease_seconds: float = 180.0,
        poll_interval: float = 0.05,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
    ):
        """`lease_seconds` bounds how long a slot can be held: it must exceed the client's request
        timeout, and it is how long a dead worker's slot stays taken. `poll_interval` is how often a
        worker waiting for an in-flight slot looks again (jittered)."""
        if per_minute < 1 or max_in_flight < 1 or (per_second is not None and per_second < 1):
            raise ValueError("per_minute, max_in_flight and per_second must be at least 1")
        self.key = key
        self.per_minute = per_minute
        self.per_second = per_second
        self.max_in_flight = max_in_flight
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._store = _store_for(redis_url)
        self._name = f"limit:{{{key}}}"

    def acquire(self, timeout: float = 120.0) -> str:
        """Wait for a slot and take it; returns the lease to `release`. Raises RateLimited when none
        can be had within `timeout` seconds (at once, when the wait is known to be longer)."""
        deadline = self._clock() + timeout
        while True:
            now = self._clock()
            lease_id = uuid.uuid4().hex
            reason, wait = self._store.take_slot(
                self._name,
                now=now,
                per_minute=self.per_minute,
                per_second=self.per_second,
                max_in_flight=self.max_in_flight,
                lease_id=lease_id,
                lease_until=now + self.lease_seconds,
            )
            if reason == _GRANTED:
                return lease_id
            remaining = deadline - now
            if reason == _IN_FLIGHT:
                # A slot in use can be released at any moment, unlike a rate window or a pause.
                wait = min(wait, self.poll_interval * _jitter.uniform(0.5, 1.0))
            if remaining <= 0 or (reason != _IN_FLIGHT and wait > remaining):
                raise errors.RateLimited(
                    f"No request slot for {self.key} within {timeout:g}s: {_REASONS[reason]}.",
                    retry_after=max(wait, 0.0),
                    code="throttled_locally",
                )
            self._sleep(max(min(wait, remaining), _MIN_SLEEP))

    def release(self, lease_id: str) -> None:
        self._store.release_slot(self._name, lease_id)

    @contextmanager
    def slot(self, timeout: float = 120.0) -> Iterator[str]:
        lease_id = self.acquire(timeout)
        try:
            yield lease_id
        finally:
            try:
                self.release(lease_id)
            except errors.TransientError:
                # The lease lapses by itself; the caller's own outcome matters more than this.
                logger.warning("Could not release request slot %s for %s; it lapses on its own", lease_id, self.key)

    def pause(self, seconds: float) -> None:
        """Hold every worker using this key for at least `seconds` (a pause only ever lengthens)."""
        if seconds > 0:
            self._store.pause(self._name, until=self._clock() + seconds, seconds=seconds)

    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when none), for the health panel."""
        return max(0.0, self._store.paused_until(self._name) - self._clock())

    def in_flight(self) -> int:
        """Slots held right now, for the health panel."""
        return self._store.in_flight(self._name, now=self._clock())

    def observe(self, headers: Mapping[str, str]) -> float:
        """Pause as the vendor's response headers ask; returns the pause applied (0 for none).

        Honoured: Retry-After; Xero's X-MinLimit-Remaining and X-AppMinLimit-Remaining;
        X-RateLimit-Remaining/-Reset and RateLimit-Remaining/-Reset. An exhausted quota without a
        reset time pauses until the next minute: Xero's windows roll, so its headers do not say
        when a call frees up, and the 429 that follows brings a Retry-After, which is then
        honoured. An exhausted X-DayLimit-Remaining pauses nothing here: a minute would not free a
        call, and the next call's 429 says how long the day's window has left (hours), which the
        client turns into the connection's pause."""
        lowered = {name.lower(): value for name, value in headers.items()}
        now = self._clock()
        until_next_minute = MINUTE - now % MINUTE
        waits = []
        retry_after = retry_after_seconds(lowered.get("retry-after"), now=datetime.fromtimestamp(now, UTC))
        if retry_after:
            waits.append(retry_after)
        for name in ("x-minlimit-remaining", "x-appminlimit-remaining"):
            if _exhausted(lowered.get(name)):
                waits.append(until_next_minute)
        for prefix in ("x-ratelimit-", "ratelimit-"):
            if _exhausted(lowered.get(prefix + "remaining")):
                reset = _reset_seconds(lowered.get(prefix + "reset"), now=now)
                waits.append(until_next_minute if reset is None else reset)
        pause = max(waits, default=0.0)
        self.pause(pause)
        return pause


def _exhausted(remaining: str | None) -> bool:
    try:
        return remaining is not None and int(remaining.strip()) <= 0
    except ValueError:
        return False


# Reset values above this are Unix times (GitHub style); below, seconds from now (IETF draft style).
_EPOCH_THRESHOLD = 1_000_000_000


def _reset_seconds(value: str | None, *, now: float) -> float | None:
    try:
        reset = float((value or "").strip())
    except ValueError:
        return None
    if not math.isfinite(reset) or reset < 0:
        return None
    return max(0.0, reset - now) if reset > _EPOCH_THRESHOLD else reset


# --- The circuit breaker ---------------------------------------------------------------------------

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """Stops calls to a tenant after `failure_threshold` server errors in a row.

    Open: every call is refused for `reset_after` seconds. Then half-open: exactly one caller (in
    all workers) gets a trial call; its success closes the breaker, its failure opens it for
    another `reset_after`. A trial whose caller never reports lapses after `trial_timeout`, and
    the next caller gets the trial. Record only 5xx and timeouts as failures: a 4xx says nothing
    about the vendor's health."""

    def __init__(
        self,
        key: str,
        *,
        failure_threshold: int = 5,
        reset_after: float = 60.0,
        redis_url: str | None = None,
        trial_timeout: float = 60.0,
        clock: Clock = time.time,
    ):
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.key = key
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self.trial_timeout = trial_timeout
        self._clock = clock
        self._store = _store_for(redis_url)
        self._name = f"breaker:{{{key}}}"

    def before_call(self) -> None:
        """Raises CircuitOpen unless this call may go ahead (closed, or the half-open trial)."""
        now = self._clock()
        allowed, wait = self._store.breaker_before(
            self._name, now=now, reset_after=self.reset_after, trial_until=now + self.trial_timeout
        )
        if not allowed:
            raise errors.CircuitOpen(
                f"Calls to {self.key} are held off after repeated server errors; next try in {wait:.0f}s.",
                retry_after=wait,
                code="circuit_open",
            )

    def record_success(self) -> None:
        self._store.breaker_success(self._name)

    def record_failure(self) -> None:
        self._store.breaker_failure(
            self._name, now=self._clock(), reset_after=self.reset_after, threshold=self.failure_threshold
        )

    def state(self) -> str:
        opened_at, _, _ = self._store.breaker_snapshot(self._name)
        if not opened_at:
            return CLOSED
        return OPEN if self._clock() < opened_at + self.reset_after else HALF_OPEN

    def failures(self) -> int:
        """Server errors in a row so far, for the health panel."""
        return self._store.breaker_snapshot(self._name)[2]
