"""Measure 7's Tryton side at a tiny size: the virtualenv builds, real trytond issues, posts and
pays the invoices, and the figures it hands back add up. Nothing here is about how fast."""

from decimal import Decimal

import pytest

from bench.tryton import environment
from tests.conftest import REQUIRE_SERVICES

INVOICES, CUSTOMERS, BATCH_SIZE = 20, 5, 10


@pytest.fixture(scope="module")
def tryton_python():
    try:
        return environment.ensure_virtualenv(environment.DEFAULT_VENV)
    except environment.TrytonEnvironmentError as error:
        reason = f"the Tryton virtualenv cannot be built here (no package registry?): {error}"
        if REQUIRE_SERVICES:
            pytest.fail(f"{reason}, and CONCORD_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
        pytest.skip(reason)


@pytest.mark.tryton
def test_tryton_workload_issues_posts_pays_and_ages_every_invoice(tryton_python, tmp_path):
    result = environment.run_workload(
        tryton_python, invoices=INVOICES, customers=CUSTOMERS, batch_size=BATCH_SIZE, workdir=tmp_path
    )

    assert result["tryton_version"].startswith("8.2.")
    assert result["sizes"] == {"invoices": INVOICES, "customers": CUSTOMERS, "batch_size": BATCH_SIZE}
    measures, checks = result["measures"], result["checks"]
    issued, paid = measures["issue_post"], measures["record_allocate"]
    assert issued["count"] == INVOICES
    assert 0 < paid["count"] == paid["in_full"] + paid["in_part"] <= INVOICES
    assert issued["per_second"] > 0
    assert paid["per_second"] > 0
    # Tryton itself says so: every invoice numbered, one paid per full payment, one still open per
    # partial payment, and the aged balance today is what the open invoices still ask for.
    assert checks["numbered"] == INVOICES
    assert sum(checks["invoices_by_state"].values()) == INVOICES
    assert checks["invoices_by_state"].get("paid", 0) == paid["in_full"]
    assert checks["partly_paid"] == paid["in_part"]
    assert Decimal(measures["aging_today"]["balance"]) == Decimal(checks["open_receivable"]) > 0
    assert measures["aging_today"]["rows"] > 0
    assert measures["aging_6_months_ago"]["rows"] > 0
    assert measures["aging_6_months_ago"]["seconds"] > 0
