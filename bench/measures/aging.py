"""Measure 3: the aging as of today and six months ago through `billing.selectors.aging`, and the
raw-SQL floor (bench/floor.py) in the same run, with the ratio of their medians. The floor must
agree with the selector customer by customer: a floor that computed something else would make
the ratio meaningless, so a disagreement fails the run."""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

from bench import floor
from bench.stats import timed
from billing import selectors
from ledger.money import ZERO


class FloorDisagrees(AssertionError):
    pass


def months_before(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _selector_rows(report) -> dict[int, tuple]:
    return {
        customer_id: (*(row.buckets[bucket] for bucket in selectors.BUCKETS), row.unapplied)
        for customer_id, row in report.rows.items()
        if row.open_total or row.unapplied
    }


def _floor_rows(rows: dict[int, floor.FloorRow]) -> dict[int, tuple]:
    return {
        customer_id: (*(row.buckets[bucket] for bucket in selectors.BUCKETS), row.unapplied)
        for customer_id, row in rows.items()
        if any(row.buckets.values()) or row.unapplied
    }


def _totals(rows: dict[int, tuple]) -> dict[str, str]:
    names = [*selectors.BUCKETS, "unapplied"]
    summed = [sum((row[index] for row in rows.values()), ZERO) for index in range(len(names))]
    return {name: str(amount) for name, amount in zip(names, summed, strict=True)}


def check_floor(selector_rows: dict[int, tuple], floor_rows: dict[int, tuple], *, as_of: date) -> None:
    if selector_rows == floor_rows:
        return
    differing = sorted(
        customer_id
        for customer_id in selector_rows.keys() | floor_rows.keys()
        if selector_rows.get(customer_id) != floor_rows.get(customer_id)
    )
    sample = differing[0]
    raise FloorDisagrees(
        f"the raw-SQL floor and billing.selectors.aging disagree as of {as_of} for {len(differing)} customers, "
        f"e.g. customer {sample}: selector {selector_rows.get(sample)} vs floor {floor_rows.get(sample)}; "
        f"totals {_totals(selector_rows)} vs {_totals(floor_rows)}"
    )


def measure_aging(*, today: date, repeat: int, warmup: int) -> dict:
    results = {}
    for label, as_of in (("today", today), ("6_months_ago", months_before(today, 6))):
        aged = timed(lambda as_of=as_of: selectors.aging(as_of=as_of), repeat=repeat, warmup=warmup)
        floored = timed(lambda as_of=as_of: floor.aging_floor(as_of=as_of), repeat=repeat, warmup=warmup)
        selector_rows, floor_rows = _selector_rows(aged.last), _floor_rows(floored.last)
        check_floor(selector_rows, floor_rows, as_of=as_of)
        totals = _totals(selector_rows)
        aging_result = {**aged.as_dict(), "as_of": as_of.isoformat(), "customers": len(selector_rows), "totals": totals}
        floor_result = {**floored.as_dict(), "as_of": as_of.isoformat(), "customers": len(floor_rows), "totals": totals}
        p50_floor = floor_result["seconds"]["p50_ms"]
        aging_result["floor_ratio"] = round(aging_result["seconds"]["p50_ms"] / p50_floor, 2) if p50_floor else None
        aging_result["matches_floor"] = True
        results[f"aging_{label}"] = aging_result
        results[f"floor_{label}"] = floor_result
    return results


def decimal_totals(measure: dict) -> dict[str, Decimal]:
    return {name: Decimal(value) for name, value in measure["totals"].items()}
