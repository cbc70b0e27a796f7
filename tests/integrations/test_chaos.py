"""The chaos test of issue 8 at the CI size: Concord and the QuickBooks simulator created and edited
on both sides, synced by two real Celery worker processes on Redis through ≈ 20 % injected faults,
a worker SIGKILLed mid-batch and two runs of one connection at once, until the books converge —
then checked record by record (bench/sync_chaos.py does the work; docs/simulators.md, "Chaos test
and sync benchmark", explains it). The full size is `python -m bench --sync`."""

from decimal import Decimal

import pytest
from django.db import connections

from bench.sync import simulated_pacing
from bench.sync_chaos import CHAOS_FAULTS, CI, ChaosRun, Workers, sync_state, verify_books
from billing import services as billing
from crm import services as crm
from integrations.models import ExternalRef
from integrations.quickbooks.build import REQUESTS_PER_SECOND
from integrations.quickbooks.simulator import QuickBooksSimulator


@pytest.fixture
def simulator(settings):
    with QuickBooksSimulator(port=0, demo_realm=False) as sim:
        settings.QUICKBOOKS_API_URL = sim.api_url
        settings.QUICKBOOKS_TOKEN_URL = sim.token_url
        settings.QUICKBOOKS_AUTHORIZE_URL = sim.authorize_url
        settings.QUICKBOOKS_REVOKE_URL = sim.revoke_url
        yield sim


@pytest.mark.postgres
@pytest.mark.broker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_both_books_converge_through_faults_a_killed_worker_and_two_runs_at_once(simulator, finance_admin, tmp_path):
    realm, connection = ChaosRun.connect(simulator=simulator, actor=finance_admin)
    workers = Workers(simulator=simulator, log_dir=tmp_path)
    try:
        workers.start(2)
        # Raises ChaosFailure, with what differs, unless the books converge and agree.
        report = ChaosRun(
            size=CI, simulator=simulator, realm=realm, connection=connection, actor=finance_admin, workers=workers
        ).run()
    finally:
        workers.stop()
        connections.close_all()

    verified = report["verified"]
    for entity, expected in (("customer", CI.customers), ("invoice", CI.invoices), ("payment", CI.payments)):
        assert verified["records"][entity] == {"concord": expected, "quickbooks": expected, "linked": expected}
    assert all(ours == theirs for ours, theirs in verified["totals"].values())
    assert verified["ar_customers_equal"] == CI.customers
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
    expected_share = sum(CHAOS_FAULTS[name] for name in ("throttle_rate", "error_rate", "drop_rate", "timeout_rate"))
    assert injected / counters["requests"] == pytest.approx(expected_share, abs=0.08)
    # Every 429 was injected: Concord's pacing never ran into the simulator's own limit.
    assert counters["sent_429"] == counters.get("injected_429", 0)


@pytest.mark.django_db
def test_verify_books_names_a_record_only_quickbooks_has_and_a_total_that_differs(simulator, finance_admin):
    realm, connection = ChaosRun.connect(simulator=simulator, actor=finance_admin)
    customer = crm.create_customer(actor=finance_admin, display_name="Linked Ltd", currency="USD")
    remote = simulator.act(
        realm,
        "Customer",
        "create",
        {"DisplayName": "Linked Ltd", "CurrencyRef": {"value": "USD"}, "SalesTermRef": {"value": "3"}},
    )
    ExternalRef.objects.create(connection=connection, entity="customer", local_id=customer.pk, remote_id=remote["Id"])
    line = billing.LineInput(description="Work", quantity=Decimal(1), unit_price=Decimal("100.00"))
    draft = billing.create_invoice(actor=finance_admin, customer=customer, lines=[line])
    billing.issue_invoice(actor=finance_admin, invoice=draft)
    simulator.act(realm, "Customer", "create", {"DisplayName": "Remote Only", "CurrencyRef": {"value": "USD"}})

    problems = verify_books(connection=connection, simulator=simulator, realm=realm)["problems"]

    assert any(problem.startswith("customer: 1 in QuickBooks only") for problem in problems)
    assert any(problem.startswith("invoice: 1 in Concord only") for problem in problems)
    assert any(problem.startswith("total invoiced: Concord 100.00, QuickBooks 0") for problem in problems)
    assert any(problem.startswith("customer ") and "differ in ['balance']" in problem for problem in problems)


@pytest.mark.django_db
def test_sync_state_changes_when_a_link_does_and_not_when_nothing_does(simulator, finance_admin):
    _realm, connection = ChaosRun.connect(simulator=simulator, actor=finance_admin)
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
