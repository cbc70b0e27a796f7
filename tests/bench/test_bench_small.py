"""The bench's --small path, end to end on the test database, so that the bench code never rots.
Nothing here is about time: only that every measure ran, wrote its files and makes sense (the
raw-SQL floor agrees with the aging, the rerun of dunning sends nothing)."""

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from bench.measures import tryton
from bench.run import run_bench
from bench.sizes import SMALL
from tests.conftest import REQUIRE_SERVICES

# One timed run of each read measure is enough to prove the code path.
CI_SIZE = replace(SMALL, repeat=1, warmup=0)
CONCORD_MEASURES = {
    "my_customers_25",
    "my_customers_100",
    "ar_list_25",
    "ar_list_100",
    "customer_360",
    "customer_360_ar",
    "aging_today",
    "floor_today",
    "aging_6_months_ago",
    "floor_6_months_ago",
    "export_csv",
    "export_xlsx",
    "issue_post",
    "record_allocate",
    "dunning_run",
    "dunning_rerun",
}


def _quiet(line: str) -> None:
    pass


# The export measure reads from a child process: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _assert_files(results: dict) -> None:
    written = json.loads(Path(results["files"]["json"]).read_text())
    assert written["measures"].keys() >= CONCORD_MEASURES
    assert written["machine"]["cores"] > 0
    assert written["data"]["invoices"] > 0
    table = Path(results["files"]["markdown"]).read_text()
    assert "| aging as of today |" in table
    assert "| customer_360 |" in table


def _assert_pages(measures: dict) -> None:
    for name in ("my_customers", "ar_list"):
        assert measures[f"{name}_25"]["rows"] > 0
        assert measures[f"{name}_100"]["rows"] >= measures[f"{name}_25"]["rows"]
        assert measures[f"{name}_25"]["queries"] > 0
    assert measures["customer_360"]["invoices"] > 0


def _assert_floor_equals_aging(measures: dict) -> None:
    for label in ("today", "6_months_ago"):
        aging, floor = measures[f"aging_{label}"], measures[f"floor_{label}"]
        assert aging["matches_floor"] is True
        assert aging["totals"] == floor["totals"]
        assert aging["customers"] == floor["customers"] > 0
        assert sum(Decimal(amount) for amount in aging["totals"].values()) != 0


def _assert_exports_and_money_operations(measures: dict) -> None:
    for export_format in ("csv", "xlsx"):
        assert measures[f"export_{export_format}"]["rows"] > 0
        assert measures[f"export_{export_format}"]["peak_rss_mb"] > 0
    for name in ("issue_post", "record_allocate"):
        assert measures[name]["count"] == CI_SIZE.batch_size * CI_SIZE.batches
        assert measures[name]["per_second"] > 0


def _assert_dunning_rerun_sends_nothing(measures: dict) -> None:
    run, rerun = measures["dunning_run"], measures["dunning_rerun"]
    assert run["overdue_invoices"] > 0
    assert run["sent"] + run["failed"] > 0
    assert rerun["sent"] == 0
    assert rerun["messages"] == 0


def test_small_bench_runs_every_measure_and_writes_sane_results(tmp_path):
    # One run checked from several sides: seeding and measuring is the slow part.
    results = run_bench(CI_SIZE, out_dir=tmp_path, seed_data=True, with_tryton=False, log=_quiet)

    assert results["errors"] == {}
    assert results["measures"].keys() >= CONCORD_MEASURES
    _assert_files(results)
    _assert_pages(results["measures"])
    _assert_floor_equals_aging(results["measures"])
    _assert_exports_and_money_operations(results["measures"])
    _assert_dunning_rerun_sends_nothing(results["measures"])


def test_small_bench_reports_concord_to_tryton_ratios(tmp_path):
    if not tryton.tryton_available():
        if REQUIRE_SERVICES:
            pytest.fail("the Tryton virtualenv cannot be built, and CONCORD_REQUIRE_SERVICES=1 forbids skipping")
        pytest.skip("the Tryton virtualenv cannot be built here")
    # Tryton's side at a handful of invoices: its setup (modules, chart of accounts) is most of it.
    size = replace(CI_SIZE, tryton_invoices=10, tryton_customers=5, tryton_batch_size=5)
    results = run_bench(
        size,
        out_dir=tmp_path,
        seed_data=True,
        only=["aging", "issue_post", "record_allocate", "tryton"],
        with_tryton=True,
        log=_quiet,
    )
    assert results["errors"] == {}
    ratios = results["measures"]["tryton"]["ratios"]
    assert ratios["issue_post"] > 0
    assert ratios["record_allocate"] > 0
    assert ratios["aging_today"] > 0
