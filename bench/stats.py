"""Timing a callable N times after a warm-up, with the queries each run makes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection
from django.test.utils import CaptureQueriesContext


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(seconds: list[float]) -> dict:
    """p50 / p95 / max in milliseconds over the timed runs."""
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 2),
        "p95_ms": round(percentile(seconds, 0.95) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
    }


@dataclass
class Timed:
    seconds: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    last: object = None

    def as_dict(self) -> dict:
        return {"seconds": summary(self.seconds), "queries": max(self.queries) if self.queries else 0}


def timed(work: Callable[[], object], *, repeat: int, warmup: int) -> Timed:
    """Run `work` `warmup` times untimed, then `repeat` times, each under CaptureQueriesContext;
    keeps the last result (to check what was computed)."""
    result = Timed()
    for _ in range(warmup):
        work()
    for _ in range(max(repeat, 1)):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            result.last = work()
            result.seconds.append(time.perf_counter() - started)
        result.queries.append(len(captured.captured_queries))
    return result


class QueryCounter:
    """Counts the statements a long run executes without keeping them (CaptureQueriesContext would
    hold every SQL string of a 100k-letter dunning run in memory)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)

    def __enter__(self):
        self._wrapper = connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc):
        return self._wrapper.__exit__(*exc)
