"""Xero's rate limits per tenant (contract §11) and fault injection for chaos tests.

Limits: sliding windows per tenant — 60 calls a minute and 5,000 a day — a ceiling of 5 calls
in flight per tenant, and 10,000 calls a minute across the app. Every answer carries
`X-MinLimit-Remaining`, `X-DayLimit-Remaining` and `X-AppMinLimit-Remaining`; a breach answers
429 with `Retry-After` (seconds until the window has room) and `X-Rate-Limit-Problem`
(`minute`, `day`, `concurrent` or `appminute`). Refused calls do not count. The windows run on
the simulated clock, so tests pass a minute or a day with `advance_clock` instead of waiting.

Fault injection: per-request probabilities drawn from one seeded RNG, so a run with the same
seed and the same request sequence fails the same requests. A `script` of fault names is
consumed first, one per matching request, for tests that need "the next call fails with 503".
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

INJECTABLE_STATUSES = (500, 502, 503, 504)
SCRIPT_WORDS = frozenset({"ok", "429", "500", "502", "503", "504", "timeout", "drop", "revoke"})
PROBLEMS = ("minute", "day", "concurrent", "appminute")
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class LimitSettings:
    calls_per_minute: int = 60
    calls_per_day: int = 5000
    max_concurrent: int = 5
    app_calls_per_minute: int = 10_000
    retry_after_header: bool = True


@dataclass(frozen=True)
class FaultSettings:
    throttle_rate: float = 0.0
    # Which limit an injected 429 claims was hit (its X-Rate-Limit-Problem).
    throttle_problem: str = "minute"
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = INJECTABLE_STATUSES
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    timeout_rate: float = 0.0
    # How long a "timed out" request is held before it is answered (longer than the client waits).
    timeout_seconds: float = 30.0
    drop_rate: float = 0.0
    revoke_rate: float = 0.0
    injected_retry_after_seconds: int = 1
    # Regular expression searched in "METHOD /path?query"; empty = every Accounting API request.
    match: str = ""
    script: tuple[str, ...] = field(default_factory=tuple)


def _coerce(settings_type: type, current: Any, changes: dict[str, Any]) -> Any:
    names = {item.name for item in dataclasses.fields(settings_type)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
    values = {}
    for name, value in changes.items():
        default = getattr(settings_type(), name)
        if isinstance(default, tuple):
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
        elif isinstance(default, float):
            value = float(value)
        elif isinstance(default, int):
            value = int(value)
        elif isinstance(default, str):
            value = str(value)
        values[name] = value
    return dataclasses.replace(current, **values)


def update_limits(current: LimitSettings, changes: dict[str, Any]) -> LimitSettings:
    updated = _coerce(LimitSettings, current, changes)
    numbers = (updated.calls_per_minute, updated.calls_per_day, updated.max_concurrent, updated.app_calls_per_minute)
    if min(numbers) < 1:
        raise ValueError("limits must be at least 1")
    return updated


def update_faults(current: FaultSettings, changes: dict[str, Any]) -> FaultSettings:
    if "script" in changes:
        changes = {**changes, "script": tuple(str(word) for word in changes["script"])}
    if "error_statuses" in changes:
        changes = {**changes, "error_statuses": tuple(int(status) for status in changes["error_statuses"])}
    updated = _coerce(FaultSettings, current, changes)
    for name in ("throttle_rate", "error_rate", "timeout_rate", "drop_rate", "revoke_rate"):
        if not 0.0 <= getattr(updated, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    if updated.throttle_problem not in PROBLEMS:
        raise ValueError(f"throttle_problem must be one of {', '.join(PROBLEMS)}")
    if not updated.error_statuses or set(updated.error_statuses) - set(INJECTABLE_STATUSES):
        raise ValueError(f"error_statuses must be chosen from {INJECTABLE_STATUSES}")
    bad_words = sorted(set(updated.script) - SCRIPT_WORDS)
    if bad_words:
        raise ValueError(f"unknown script entries {bad_words}; use {sorted(SCRIPT_WORDS)}")
    if updated.latency_ms < 0 or updated.latency_jitter_ms < 0 or updated.timeout_seconds < 0:
        raise ValueError("latency and timeout must not be negative")
    re.compile(updated.match)
    return updated


@dataclass(frozen=True)
class Admission:
    admitted: bool
    problem: str = ""
    retry_after: int = 0
    minute_remaining: int = 0
    day_remaining: int = 0
    app_minute_remaining: int = 0

    def headers(self) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": str(self.day_remaining),
            "X-MinLimit-Remaining": str(self.minute_remaining),
            "X-AppMinLimit-Remaining": str(self.app_minute_remaining),
        }


class TenantLimiter:
    """Minute and day windows and the in-flight ceiling per tenant, plus the app-wide minute."""

    def __init__(self, settings: LimitSettings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._minute: dict[str, deque[datetime]] = {}
        self._day: dict[str, deque[datetime]] = {}
        self._app: deque[datetime] = deque()
        self._in_flight: dict[str, int] = {}
        self.peak_concurrency: dict[str, int] = {}

    def configure(self, settings: LimitSettings) -> None:
        with self._lock:
            self.settings = settings

    def reset(self) -> None:
        with self._lock:
            self._minute.clear()
            self._day.clear()
            self._app.clear()
            self._in_flight.clear()
            self.peak_concurrency.clear()

    @staticmethod
    def _trim(window: deque[datetime], now: datetime, span: timedelta) -> None:
        while window and window[0] <= now - span:
            window.popleft()

    @staticmethod
    def _wait(window: deque[datetime], now: datetime, span: timedelta, limit: int) -> int:
        """Seconds until the window holds fewer than `limit` calls."""
        oldest_that_must_leave = window[len(window) - limit]
        return max(1, math.ceil((oldest_that_must_leave + span - now).total_seconds()))

    def _remaining(self, tenant_id: str, refused: str = "", retry_after: int = 0) -> Admission:
        settings = self.settings
        return Admission(
            admitted=not refused,
            problem=refused,
            retry_after=retry_after,
            minute_remaining=max(0, settings.calls_per_minute - len(self._minute.get(tenant_id, ()))),
            day_remaining=max(0, settings.calls_per_day - len(self._day.get(tenant_id, ()))),
            app_minute_remaining=max(0, settings.app_calls_per_minute - len(self._app)),
        )

    def admit(self, tenant_id: str) -> Admission:
        with self._lock:
            settings = self.settings
            now = self._clock()
            minute = self._minute.setdefault(tenant_id, deque())
            day = self._day.setdefault(tenant_id, deque())
            self._trim(minute, now, MINUTE)
            self._trim(day, now, DAY)
            self._trim(self._app, now, MINUTE)
            # The day limit is the one that hurts most; report it first when several are hit.
            if len(day) >= settings.calls_per_day:
                return self._remaining(tenant_id, "day", self._wait(day, now, DAY, settings.calls_per_day))
            if len(self._app) >= settings.app_calls_per_minute:
                wait = self._wait(self._app, now, MINUTE, settings.app_calls_per_minute)
                return self._remaining(tenant_id, "appminute", wait)
            if len(minute) >= settings.calls_per_minute:
                return self._remaining(tenant_id, "minute", self._wait(minute, now, MINUTE, settings.calls_per_minute))
            if self._in_flight.get(tenant_id, 0) >= settings.max_concurrent:
                return self._remaining(tenant_id, "concurrent", 1)
            minute.append(now)
            day.append(now)
            self._app.append(now)
            in_flight = self._in_flight.get(tenant_id, 0) + 1
            self._in_flight[tenant_id] = in_flight
            self.peak_concurrency[tenant_id] = max(self.peak_concurrency.get(tenant_id, 0), in_flight)
            return self._remaining(tenant_id)

    def release(self, tenant_id: str) -> None:
        with self._lock:
            self._in_flight[tenant_id] = max(0, self._in_flight.get(tenant_id, 0) - 1)

    def in_flight(self, tenant_id: str) -> int:
        with self._lock:
            return self._in_flight.get(tenant_id, 0)


@dataclass(frozen=True)
class Decision:
    """What to do to one request: kind is None, "429", "error", "timeout", "drop" or "revoke"."""

    kind: str | None = None
    status: int = 0
    latency_seconds: float = 0.0


class FaultInjector:
    def __init__(self, settings: FaultSettings, seed: int | None) -> None:
        self.settings = settings
        self._seed = seed
        # Reproducible chaos, not security: a seeded PRNG is the point.
        self._random = random.Random(seed)  # noqa: S311
        self._lock = threading.Lock()
        self._script: list[str] = list(settings.script)

    def configure(self, settings: FaultSettings, *, new_script: bool = True) -> None:
        """Apply settings; `new_script=False` keeps what is left of the current script."""
        with self._lock:
            if new_script or settings.script != self.settings.script:
                self._script = list(settings.script)
            self.settings = settings

    def reseed(self, seed: int | None) -> None:
        with self._lock:
            self._seed = seed
            self._random = random.Random(seed)  # noqa: S311

    @property
    def seed(self) -> int | None:
        return self._seed

    @property
    def remaining_script(self) -> list[str]:
        with self._lock:
            return list(self._script)

    def decide(self, method: str, target: str) -> Decision:
        with self._lock:
            settings = self.settings
            if settings.match and not re.search(settings.match, f"{method} {target}"):
                return Decision()
            # Always draw the same number of values so one request's outcome does not shift the
            # sequence for the next when only some rates are non-zero.
            draws = [self._random.random() for _ in range(7)]
            latency = settings.latency_ms / 1000.0 + draws[6] * settings.latency_jitter_ms / 1000.0
            if self._script:
                word = self._script.pop(0)
                self.settings = dataclasses.replace(settings, script=tuple(self._script))
                return self._scripted(word, latency)
            if draws[0] < settings.revoke_rate:
                return Decision("revoke", 0, latency)
            if draws[1] < settings.throttle_rate:
                return Decision("429", 429, latency)
            if draws[2] < settings.error_rate:
                status = settings.error_statuses[int(draws[3] * len(settings.error_statuses))]
                return Decision("error", status, latency)
            if draws[4] < settings.drop_rate:
                return Decision("drop", 0, latency)
            if draws[5] < settings.timeout_rate:
                return Decision("timeout", 0, latency)
            return Decision(None, 0, latency)

    @staticmethod
    def _scripted(word: str, latency: float) -> Decision:
        if word == "ok":
            return Decision(None, 0, latency)
        if word == "429":
            return Decision("429", 429, latency)
        if word.isdigit():
            return Decision("error", int(word), latency)
        return Decision(word, 0, latency)
