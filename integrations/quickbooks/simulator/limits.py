"""Per-realm throttling (contract §11) and fault injection for chaos tests.

Throttling: a token bucket per realm (500 requests a minute by default, refilled by the
simulated clock) and a ceiling on requests in flight per realm (10); either answers 429 with
Fault 3001.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

INJECTABLE_STATUSES = (500, 502, 503, 504)
SCRIPT_WORDS = frozenset({"ok", "429", "500", "502", "503", "504", "timeout", "drop", "revoke"})


@dataclass(frozen=True)
class LimitSettings:
    requests_per_minute: int = 500
    # Bucket size; None means one minute's worth, which is how a per-minute quota behaves.
    burst: int | None = None
    max_concurrent: int = 10
    retry_after_header: bool = True
    # QBO often throttles in XML whatever the Accept header said (§11); off = JSON when asked.
    throttle_xml: bool = False


@dataclass(frozen=True)
class FaultSettings:
    throttle_rate: float = 0.0
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
    # Regular expression searched in "METHOD /path?query"; empty = every data-API request.
    match: str = ""
    script: tuple[str, ...] = field(default_factory=tuple)


def _coerce(settings_type: type, current: Any, changes: dict[str, Any]) -> Any:
    names = {item.name: item for item in dataclasses.fields(settings_type)}
    unknown = sorted(set(changes) - set(names))
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
        elif isinstance(default, int) or (name == "burst" and value is not None):
            value = int(value)
        values[name] = value
    return dataclasses.replace(current, **values)


def update_limits(current: LimitSettings, changes: dict[str, Any]) -> LimitSettings:
    updated = _coerce(LimitSettings, current, changes)
    too_small = updated.requests_per_minute < 1 or updated.max_concurrent < 1
    if too_small or (updated.burst is not None and updated.burst < 1):
        raise ValueError("limits must be at least 1")
    return updated


def update_faults(current: FaultSettings, changes: dict[str, Any]) -> FaultSettings:
    if "script" in changes:
        changes = {**changes, "script": tuple(str(word) for word in changes["script"])}
    updated = _coerce(FaultSettings, current, changes)
    for name in ("throttle_rate", "error_rate", "timeout_rate", "drop_rate", "revoke_rate"):
        if not 0.0 <= getattr(updated, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
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
    reason: str = ""
    retry_after: int = 0


class RealmLimiter:
    """Token bucket plus in-flight ceiling, per realm; also records the peak concurrency seen."""

    def __init__(self, settings: LimitSettings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, datetime]] = {}
        self._in_flight: dict[str, int] = {}
        self.peak_concurrency: dict[str, int] = {}

    def configure(self, settings: LimitSettings) -> None:
        with self._lock:
            self.settings = settings
            self._buckets.clear()

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._in_flight.clear()
            self.peak_concurrency.clear()

    def admit(self, realm_id: str) -> Admission:
        with self._lock:
            settings = self.settings
            if self._in_flight.get(realm_id, 0) >= settings.max_concurrent:
                return Admission(False, "concurrency", 1)
            capacity = float(settings.burst or settings.requests_per_minute)
            per_second = settings.requests_per_minute / 60.0
            now = self._clock()
            tokens, last = self._buckets.get(realm_id, (capacity, now))
            elapsed = max(0.0, (now - last).total_seconds())
            tokens = min(capacity, tokens + elapsed * per_second)
            if tokens < 1.0:
                self._buckets[realm_id] = (tokens, now)
                return Admission(False, "rate", max(1, math.ceil((1.0 - tokens) / per_second)))
            self._buckets[realm_id] = (tokens - 1.0, now)
            in_flight = self._in_flight.get(realm_id, 0) + 1
            self._in_flight[realm_id] = in_flight
            self.peak_concurrency[realm_id] = max(self.peak_concurrency.get(realm_id, 0), in_flight)
            return Admission(True)

    def release(self, realm_id: str) -> None:
        with self._lock:
            self._in_flight[realm_id] = max(0, self._in_flight.get(realm_id, 0) - 1)

    def in_flight(self, realm_id: str) -> int:
        with self._lock:
            return self._in_flight.get(realm_id, 0)


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
