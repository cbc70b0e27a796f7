"""Measure 7: the same operations as measure 5 and the aging on Tryton 8.2, at a smaller size,
in a virtualenv the bench builds itself (bench.tryton, a colleague's package), reported as
Concord ÷ Tryton ratios."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path


class TrytonUnavailable(RuntimeError):
    pass


def _environment():
    try:
        return importlib.import_module("bench.tryton.environment")
    except ImportError as error:
        raise TrytonUnavailable(f"bench.tryton.environment cannot be imported: {error}") from error


def tryton_available() -> bool:
    """Whether the Tryton side can run here: its package is there and its virtualenv builds."""
    try:
        environment = _environment()
        environment.ensure_virtualenv(environment.DEFAULT_VENV)
    except Exception:  # noqa: BLE001 - any failure to build the virtualenv means "not here"
        return False
    return True


def run_tryton(*, invoices: int, customers: int, batch_size: int) -> dict:
    environment = _environment()
    python = environment.ensure_virtualenv(environment.DEFAULT_VENV)
    with tempfile.TemporaryDirectory(prefix="bench-tryton-") as workdir:
        return environment.run_workload(
            python, invoices=invoices, customers=customers, batch_size=batch_size, workdir=Path(workdir)
        )


def _per_second(measure: dict | None) -> float | None:
    if not measure:
        return None
    if measure.get("per_second"):
        return float(measure["per_second"])
    seconds, count = measure.get("total_seconds") or measure.get("seconds"), measure.get("count")
    if isinstance(seconds, int | float) and seconds and count:
        return count / seconds
    return None


def _aging_throughput(seconds: float | None, invoices: int) -> float | None:
    """Invoices in the books aged per second: the two run at different sizes."""
    return invoices / seconds if seconds else None


def ratios(concord: dict, tryton: dict, *, concord_invoices: int) -> dict:
    """Concord ÷ Tryton: rates for the money operations (higher is better for Concord), and for the
    aging its throughput, invoices in the books per second of aging (the sizes differ)."""
    measures = tryton.get("measures", {})
    result = {}
    for name in ("issue_post", "record_allocate"):
        mine, theirs = _per_second(concord.get(name)), _per_second(measures.get(name))
        result[name] = round(mine / theirs, 1) if mine and theirs else None
    tryton_invoices = tryton.get("sizes", {}).get("invoices") or 0
    for label in ("today", "6_months_ago"):
        mine = concord.get(f"aging_{label}", {}).get("seconds", {}).get("p50_ms")
        theirs = measures.get(f"aging_{label}", {}).get("seconds")
        result[f"aging_{label}"] = (
            round(
                _aging_throughput(mine / 1000, concord_invoices) / _aging_throughput(theirs, tryton_invoices),
                1,
            )
            if mine and theirs and tryton_invoices
            else None
        )
    return result
