"""The simulator's notion of "now": real time plus an adjustable offset.

Tests move it forward instead of sleeping: to expire access tokens and refresh tokens, to let
the minute and day rate-limit windows pass, or to age an `If-Modified-Since` cursor. It keeps
ticking in real time, so timestamps stay ordered between two adjustments.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SimulatedClock:
    def __init__(self, offset_seconds: float = 0.0) -> None:
        self._offset = timedelta(seconds=offset_seconds)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    def set(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            raise ValueError("the simulated time needs a UTC offset")
        with self._lock:
            self._offset = moment - datetime.now(UTC)
        return self.now()

    @property
    def offset_seconds(self) -> float:
        with self._lock:
            return self._offset.total_seconds()

    def reset(self, offset_seconds: float = 0.0) -> None:
        with self._lock:
            self._offset = timedelta(seconds=offset_seconds)
