"""The chaos tests of issues 8 and 9 at the CI size, once per accounting package: Concord and the
package's simulator (QuickBooks, Xero) created and edited on both sides, synced by two real Celery
worker processes on Redis through ≈ 20 % injected faults, a worker SIGKILLed mid-batch and two
runs of one connection at once, until the books converge — then checked record by record
(bench/sync_chaos.py does the work, bench/sync_books.py is each package's side; docs/simulators.md,
"Chaos test and sync benchmark", explains it). The full size is `python -m bench --sync`."""

import math
from decimal import Decimal

import pytest
from django.db import connections

from bench.sync import simulated_pacing
from bench.sync_books import BOOKS
from bench.sync_chaos import CHAOS_FAULTS, FAULT_RATES, PROVIDER_SIZES, ChaosRun, Workers, sync_state, verify_books
from billing import services as billing
from crm import services as crm
from integrations.models import ExternalRef
from integrations.quickbooks.build import REQUESTS_PER_SECOND

PROVIDERS = ["quickbooks", "xero"]


@pytest.fixture
def provider():
    return "quickbooks"


@pytest.fixture
def simulator(provider, settings):
    """The package's simulator on a free port, Concord's settings pointing at it."""
    books = BOOKS[provider]
    with books.running() as sim:
        for name, value in books.settings_of(sim).items():
            setattr(settings, name, value)
        yield sim


@pytest.mark.postgres
@pytest.mark.broker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_both_books_converge_through_faults_a_killed_worker_and_two_runs_at_once(
    provider, simulator, finance_admin, tmp_path
):
    size = PROVIDER_SIZES[provider]["ci"]
    books, connection = ChaosRun.connect(simulator=simulator, actor=finance_admin, provider=provider)
    workers = Workers(books=books, log_dir=tmp_path)
    try:
        workers.start(2)
        # Raises ChaosFailure, with what differs, unless the books converge and agree.
        report = ChaosRun(size=size, books=books, connection=connection, actor=finance_admin, workers=workers).run()
    finally:
        workers.stop()
        connections.close_all()

    verified = report["verified"]
    for entity, expected in (("customer", size.customers), ("invoice", size.invoices), ("payment", size.payments)):
        assert verified["records"][entity] == {"concord": expected, provider: expected, "linked": expected}
    assert all(ours == theirs for ours, theirs in verified["totals"].values())
    assert verified["ar_customers_equal"] == size.customers
    assert verified["ledger_check"] == "passed"
    assert verified["conflicts_settled"] > 0

    # The chaos happened: a worker died holding a committed batch, two runs overlapped, one run
    # was told to wait for the other, and about a fifth of the requests failed.
    assert len(report["runs"]["lost_with_killed_worker"]) == 1
    assert report["runs"]["overlapped"]
    assert report["runs"]["retried_after_lease"]
    counters = report["simulator"]["counters"]
    injected = sum(
        counters.get(name, 0) for name in ("injected_429", "injected_5xx", "injected_drop", "injected_timeout")
    )
    expected_share = sum(CHAOS_FAULTS[name] for name in FAULT_RATES)
    # Of the requests made while the chaos faults were on; a share of a few hundred draws, so within
    # 8 points, or three standard deviations of so few (Xero's run makes fewer calls).
    under_chaos = report["requests_under_chaos"]
    spread = 3 * math.sqrt(expected_share * (1 - expected_share) / under_chaos)
    assert injected / under_chaos == pytest.approx(expected_share, abs=max(0.08, spread))
    # Every 429 was injected: Concord's pacing never ran into the simulator's own limit.
    assert counters["sent_429"] == counters.get("injected_429", 0)


@pytest.mark.django_db
@pytest.mark.parametrize("provider", PROVIDERS)
def test_verify_books_names_a_record_only_the_package_has_and_a_total_that_differs(provider, simulator, finance_admin):
    books, connection = ChaosRun.connect(simulator=simulator, actor=finance_admin, provider=provider)
    customer = crm.create_customer(actor=finance_admin, display_name="Linked Ltd", currency="USD")
    remote_id = books.create_customer("Linked Ltd")
    ExternalRef.objects.create(connection=connection, entity="customer", local_id=customer.pk, remote_id=remote_id)
    line = billing.LineInput(description="Work", quantity=Decimal(1), unit_price=Decimal("100.00"))
    draft = billing.create_invoice(actor=finance_admin, customer=customer, lines=[line])
    billing.issue_invoice(actor=finance_admin, invoice=draft)
    books.create_customer("Remote Only")

    problems = verify_books(connection=connection, books=books)["problems"]

    assert any(problem.startswith(f"customer: 1 in {books.label} only") for problem in problems)
    assert any(problem.startswith("invoice: 1 in Concord only") for problem in problems)
    assert any(problem.startswith(f"total invoiced: Concord 100.00, {books.label} 0") for problem in problems)
    assert any(problem.startswith("customer ") and "differ in ['balance']" in problem for problem in problems)


@pytest.mark.django_db
def test_sync_state_changes_when_a_link_does_and_not_when_nothing_does(simulator, finance_admin):
    _books, connection = ChaosRun.connect(simulator=simulator, actor=finance_admin)
    customer = crm.create_customer(actor=finance_admin, display_name="Fingerprinted", currency="USD")
    ref = ExternalRef.objects.create(connection=connection, entity="customer", local_id=customer.pk, remote_id="1")
    before = sync_state(connection)

    unchanged = sync_state(connection)
    ref.remote_version = "1"
    ref.save()

    assert unchanged == before
    assert sync_state(connection) != before


def test_pacing_at_480_a_minute_uses_over_95_percent_of_the_simulators_limit_without_a_429():
    paced = simulated_pacing(per_minute=480, per_second=REQUESTS_PER_SECOND)

    assert paced["refused_429"] == 0
    assert paced["fraction_of_limit"] >= 0.95


def test_pacing_above_the_simulators_limit_draws_429s():
    assert simulated_pacing(per_minute=520, per_second=None)["refused_429"] > 0
