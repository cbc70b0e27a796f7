"""The sync engine against an in-memory package: what flows where, once, and what a person sees.

Customers carry the engine's rules here (the entity with the most editable fields); the other
entities' translation is tested in test_local_store.py and against the QuickBooks simulator.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from crm import services as crm_services
from crm.models import Customer
from integrations import services
from integrations.core.canonical import CUSTOMER, CustomerRecord
from integrations.models import Conflict, Connection, ExternalRef, OutboxEntry, QuarantineItem, SyncRun
from tests.integrations.fake_package import FakePackage

pytestmark = pytest.mark.django_db


@pytest.fixture
def package():
    return FakePackage()


@pytest.fixture
def connection(finance_admin, package, monkeypatch):
    connection = services.create_connection(actor=finance_admin, provider="quickbooks", name="Books")
    Connection.objects.filter(pk=connection.pk).update(status=Connection.Status.ACTIVE, tenant_id="realm-1")
    monkeypatch.setattr(
        "integrations.providers.build_adapter", lambda conn, mapping, recorder=None: package.adapter(mapping=mapping)
    )
    return Connection.objects.get(pk=connection.pk)


def run(connection) -> SyncRun:
    queued = SyncRun.objects.create(connection=connection, trigger=SyncRun.Trigger.MANUAL)
    return services.run_sync(run_id=queued.pk)


def customer_record(name="Acme Ltd", **fields):
    return CustomerRecord(display_name=name, currency="USD", **fields)


def linked_remote_id(customer) -> str:
    return ExternalRef.objects.get(entity=CUSTOMER, local_id=customer.pk).remote_id


def make_customer(actor, name="Acme Ltd", **fields):
    return crm_services.create_customer(actor=actor, display_name=name, currency="USD", **fields)


# --- pull -----------------------------------------------------------------------------------------


def test_a_remote_customer_is_created_here_and_linked(connection, package):
    remote_id = package.add(customer_record("Beta LLC"))

    outcome = run(connection)

    assert outcome.status == SyncRun.Status.SUCCEEDED
    customer = Customer.objects.get(display_name="Beta LLC")
    assert linked_remote_id(customer) == remote_id


def test_pulling_twice_creates_nothing_twice(connection, package):
    package.add(customer_record("Beta LLC"))
    run(connection)
    # The cursor is reset, as if the package reported everything again.
    connection.cursors.update(value="")

    run(connection)

    assert Customer.objects.filter(display_name="Beta LLC").count() == 1


def test_a_remote_only_edit_reaches_concord(connection, package, finance_admin):
    remote_id = package.add(customer_record("Beta LLC"))
    run(connection)
    package.edit(CUSTOMER, remote_id, legal_name="Beta Holdings LLC")

    run(connection)

    assert Customer.objects.get(display_name="Beta LLC").legal_name == "Beta Holdings LLC"


# --- push -----------------------------------------------------------------------------------------


def test_a_customer_created_here_is_written_to_the_outbox_in_the_same_transaction(connection, finance_admin):
    customer = make_customer(finance_admin)

    assert OutboxEntry.objects.filter(
        connection=connection, entity=CUSTOMER, local_id=customer.pk, status="pending"
    ).exists()


def test_a_customer_created_here_is_pushed_once(connection, package, finance_admin):
    customer = make_customer(finance_admin)

    run(connection)
    run(connection)

    assert [r.display_name for r in package.live(CUSTOMER).values()] == ["Acme Ltd"]
    assert linked_remote_id(customer) in package.live(CUSTOMER)


def test_a_local_only_edit_reaches_the_package(connection, package, finance_admin):
    customer = make_customer(finance_admin)
    run(connection)

    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Holdings Ltd")
    run(connection)

    assert package.live(CUSTOMER)[linked_remote_id(customer)].legal_name == "Acme Holdings Ltd"


def test_a_push_whose_answer_was_lost_is_not_repeated(connection, package, finance_admin):
    customer = make_customer(finance_admin)
    package.lose_next_answers = 1

    first = run(connection)
    OutboxEntry.objects.update(next_attempt_at=timezone.now())
    run(connection)

    assert first.status in (SyncRun.Status.PARTIAL, SyncRun.Status.FAILED)
    assert len(package.live(CUSTOMER)) == 1
    assert linked_remote_id(customer) in package.live(CUSTOMER)


def test_a_failed_push_stays_pending_with_a_later_attempt(connection, package, finance_admin):
    make_customer(finance_admin)
    package.fail_next_pushes = 1

    run(connection)

    entry = OutboxEntry.objects.get(entity=CUSTOMER)
    assert entry.status == "pending" and entry.next_attempt_at > timezone.now() and entry.last_error
    assert not package.live(CUSTOMER)


def test_a_batch_that_failed_whole_is_due_again_together_and_resent_with_the_same_members(
    connection, package, finance_admin
):
    for name in ("Acme Ltd", "Beta LLC", "Gamma SA"):
        make_customer(finance_admin, name)
    package.fail_next_pushes = 1
    run(connection)
    failed = list(OutboxEntry.objects.filter(entity=CUSTOMER))
    make_customer(finance_admin, "Delta AG")  # waiting to be pushed when the batch is due again
    OutboxEntry.objects.filter(pk__in=[entry.pk for entry in failed]).update(next_attempt_at=timezone.now())

    run(connection)

    assert len({entry.next_attempt_at for entry in failed}) == 1
    assert len({entry.batch_key for entry in failed}) == 1 and failed[0].batch_key
    first_request, second_request = package.pushes[:3], package.pushes[3:]
    assert sorted(op.request_id for op in first_request) == sorted(str(entry.request_id) for entry in failed)
    assert [op.record.display_name for op in second_request] == ["Delta AG"]


def test_an_entry_claimed_but_never_sent_has_used_no_attempt(connection, package, finance_admin, monkeypatch):
    from integrations.core import engine, errors

    make_customer(finance_admin)

    def stopped_before_sending(ctx, entity, entries):
        raise errors.RateLimited("Paused by the package", retry_after=60)

    monkeypatch.setattr(engine, "_push_entries", stopped_before_sending)
    run(connection)

    assert OutboxEntry.objects.get(entity=CUSTOMER).attempts == 0


def test_a_push_refused_by_a_rate_limit_uses_no_attempt_and_waits(connection, package, finance_admin, monkeypatch):
    from integrations.core import errors

    make_customer(finance_admin)

    def rate_limited(self, operations):
        raise errors.RateLimited("429 Too Many Requests", retry_after=60)

    monkeypatch.setattr(package.adapter().__class__, "push", rate_limited)

    outcome = run(connection)

    entry = OutboxEntry.objects.get(entity=CUSTOMER)
    assert outcome.status == SyncRun.Status.FAILED
    assert entry.status == "pending" and entry.attempts == 0 and entry.next_attempt_at > timezone.now()


def test_a_field_the_package_cannot_hold_is_neither_pushed_nor_overwritten(
    connection, package, finance_admin, monkeypatch
):
    monkeypatch.setattr(package.adapter().__class__, "fields_not_held", {CUSTOMER: frozenset({"legal_name"})})
    original_one = package.adapter().__class__._one

    def forgets_the_legal_name(self, op):
        if op.record is not None:
            op = op.__class__(**{**op.__dict__, "record": op.record.replace(legal_name="")})
        return original_one(self, op)

    monkeypatch.setattr(package.adapter().__class__, "_one", forgets_the_legal_name)
    customer = make_customer(finance_admin, legal_name="Acme Holdings Ltd")
    run(connection)
    pushes = len(package.pushes)

    run(connection)

    customer.refresh_from_db()
    assert customer.legal_name == "Acme Holdings Ltd"
    assert len(package.pushes) == pushes
    assert not Conflict.objects.exists()


def test_a_failed_push_counts_one_attempt(connection, package, finance_admin):
    make_customer(finance_admin)
    package.fail_next_pushes = 1

    run(connection)

    assert OutboxEntry.objects.get(entity=CUSTOMER).attempts == 1


def test_a_record_the_package_refuses_goes_to_quarantine(connection, package, finance_admin, monkeypatch):
    from integrations.core import errors
    from integrations.core.adapter import PushResult

    make_customer(finance_admin)
    monkeypatch.setattr(
        package.adapter().__class__,
        "_one",
        lambda self, op: PushResult(
            op.request_id, error=errors.ValidationRejected("Duplicate Name Exists Error", code="6240")
        ),
    )

    run(connection)

    item = QuarantineItem.objects.get(entity=CUSTOMER)
    assert item.error_code == "6240" and item.status == "open"
    assert OutboxEntry.objects.get(entity=CUSTOMER).status == "quarantined"


def test_a_change_made_while_its_push_was_in_flight_is_pushed_too(connection, package, finance_admin, monkeypatch):
    customer = make_customer(finance_admin)
    adapter_class = package.adapter().__class__
    original_push = adapter_class.push
    edits = []

    def push_then_edit_locally(self, operations):
        results = original_push(self, operations)
        if not edits:
            edits.append(
                crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Changed meanwhile")
            )
        return results

    monkeypatch.setattr(adapter_class, "push", push_then_edit_locally)
    run(connection)

    assert package.live(CUSTOMER)[linked_remote_id(customer)].legal_name == "Changed meanwhile"
    assert not OutboxEntry.objects.filter(entity=CUSTOMER, status="pending").exists()


# --- both sides changed ---------------------------------------------------------------------------


@pytest.fixture
def synced(connection, package, finance_admin):
    """A customer known to both sides, in the same state."""
    customer = make_customer(finance_admin, billing_city="Leeds")
    run(connection)
    return customer, linked_remote_id(customer)


def test_changes_to_different_fields_merge_both_ways(connection, package, finance_admin, synced):
    customer, remote_id = synced
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Holdings Ltd")
    package.edit(CUSTOMER, remote_id, tax_id="GB123")

    run(connection)

    customer.refresh_from_db()
    assert customer.tax_id == "GB123"
    assert package.live(CUSTOMER)[remote_id].legal_name == "Acme Holdings Ltd"
    assert not Conflict.objects.exists()


def test_different_changes_to_one_field_open_a_conflict_and_change_neither_side(
    connection, package, finance_admin, synced
):
    customer, remote_id = synced
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Here")
    package.edit(CUSTOMER, remote_id, legal_name="Acme There")

    run(connection)

    conflict = Conflict.objects.get(status="open")
    assert conflict.fields == ["legal_name"]
    assert (conflict.local["legal_name"], conflict.remote["legal_name"]) == ("Acme Here", "Acme There")
    customer.refresh_from_db()
    assert customer.legal_name == "Acme Here"
    assert package.live(CUSTOMER)[remote_id].legal_name == "Acme There"


def test_a_concord_wins_policy_pushes_concords_value(connection, package, finance_admin, synced):
    customer, remote_id = synced
    services.set_field_policy(
        actor=finance_admin, connection=connection, entity=CUSTOMER, field="legal_name", policy="concord"
    )
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Here")
    package.edit(CUSTOMER, remote_id, legal_name="Acme There")

    run(connection)

    assert package.live(CUSTOMER)[remote_id].legal_name == "Acme Here"
    assert not Conflict.objects.exists()


def test_a_remote_wins_policy_takes_the_packages_value(connection, package, finance_admin, synced):
    customer, remote_id = synced
    services.set_field_policy(
        actor=finance_admin, connection=connection, entity=CUSTOMER, field="legal_name", policy="remote"
    )
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Here")
    package.edit(CUSTOMER, remote_id, legal_name="Acme There")

    run(connection)

    customer.refresh_from_db()
    assert customer.legal_name == "Acme There"
    assert not Conflict.objects.exists()


def test_resolving_a_conflict_for_the_package_writes_its_value_here(connection, package, finance_admin, synced):
    customer, remote_id = synced
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Here")
    package.edit(CUSTOMER, remote_id, legal_name="Acme There")
    run(connection)

    services.resolve_conflict(actor=finance_admin, conflict=Conflict.objects.get(), choices={"legal_name": "remote"})
    run(connection)

    customer.refresh_from_db()
    assert customer.legal_name == "Acme There"
    assert package.live(CUSTOMER)[remote_id].legal_name == "Acme There"


def test_resolving_a_conflict_for_concord_pushes_its_value(connection, package, finance_admin, synced):
    customer, remote_id = synced
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Here")
    package.edit(CUSTOMER, remote_id, legal_name="Acme There")
    run(connection)

    services.resolve_conflict(actor=finance_admin, conflict=Conflict.objects.get(), choices={"legal_name": "concord"})
    run(connection)

    assert package.live(CUSTOMER)[remote_id].legal_name == "Acme Here"
    customer.refresh_from_db()
    assert customer.legal_name == "Acme Here"


def test_a_push_with_a_stale_version_merges_the_remote_change_first(connection, package, finance_admin, synced):
    customer, remote_id = synced
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Holdings Ltd")
    # Changed remotely after the pull of this run would have seen it: the push meets a newer version.
    ExternalRef.objects.filter(remote_id=remote_id).update(last_synced_at=timezone.now() - timedelta(days=1))
    package.edit(CUSTOMER, remote_id, tax_id="GB999")
    connection.cursors.update(value="999999")  # the pull misses it; only the push finds out

    run(connection)
    run(connection)

    customer.refresh_from_db()
    assert customer.tax_id == "GB999"
    assert package.live(CUSTOMER)[remote_id].legal_name == "Acme Holdings Ltd"


# --- deletes --------------------------------------------------------------------------------------


def test_a_remote_delete_archives_the_customer_here(connection, package, finance_admin, synced):
    customer, remote_id = synced
    package.delete(CUSTOMER, remote_id)

    run(connection)

    customer.refresh_from_db()
    assert customer.status == Customer.Status.ARCHIVED


def test_archiving_here_deactivates_it_in_the_package(connection, package, finance_admin, synced):
    customer, remote_id = synced
    crm_services.update_customer(actor=finance_admin, customer=customer, status=Customer.Status.ARCHIVED)

    run(connection)

    assert package.live(CUSTOMER)[remote_id].active is False


# --- runs -----------------------------------------------------------------------------------------


def test_a_run_records_its_counts(connection, package, finance_admin):
    package.add(customer_record("Beta LLC"))
    make_customer(finance_admin)

    outcome = run(connection)

    assert outcome.counts[CUSTOMER]["created"] == 1
    assert outcome.counts[CUSTOMER]["pushed"] == 1
    assert outcome.finished_at is not None


def test_a_paused_connection_does_not_run(connection, finance_admin):
    services.pause_connection(actor=finance_admin, connection=connection)

    assert run(connection).status == SyncRun.Status.SKIPPED


def test_a_run_left_running_by_a_dead_worker_is_failed_by_the_next_run(connection, package):
    silent = timezone.now() - services.RUN_LEASE - timedelta(minutes=1)
    abandoned = SyncRun.objects.create(
        connection=connection, trigger=SyncRun.Trigger.MANUAL, status=SyncRun.Status.RUNNING, heartbeat_at=silent
    )
    Connection.objects.filter(pk=connection.pk).update(run_lease_until=silent + services.RUN_LEASE)

    run(connection)

    abandoned.refresh_from_db()
    assert abandoned.status == SyncRun.Status.FAILED and abandoned.phase == "Worker lost"


def test_a_run_with_a_recent_heartbeat_is_left_running_by_an_overlapping_run(connection, package):
    alive = SyncRun.objects.create(
        connection=connection,
        trigger=SyncRun.Trigger.MANUAL,
        status=SyncRun.Status.RUNNING,
        heartbeat_at=timezone.now(),
    )

    run(connection)

    alive.refresh_from_db()
    assert alive.status == SyncRun.Status.RUNNING


def test_a_run_whose_connection_was_taken_over_stops_and_leaves_the_other_runs_lease(connection, package, monkeypatch):
    for index in range(3):
        package.add(customer_record(f"Customer {index}"))
    other_lease = timezone.now() + services.RUN_LEASE + timedelta(minutes=5)
    original_page = package.adapter().__class__.changes

    def taken_over_while_reading(self, entity, *, cursor):
        # This run stalled past its lease and another run took the connection meanwhile.
        Connection.objects.filter(pk=connection.pk).update(run_lease_until=other_lease)
        return original_page(self, entity, cursor=cursor)

    monkeypatch.setattr(package.adapter().__class__, "changes", taken_over_while_reading)
    monkeypatch.setattr(services, "PROGRESS_EVERY", timedelta(0))

    outcome = run(connection)

    assert outcome.status == SyncRun.Status.FAILED and outcome.phase == "Taken over by another run"
    assert Connection.objects.get(pk=connection.pk).run_lease_until == other_lease
    assert Connection.objects.get(pk=connection.pk).consecutive_failures == 0


def test_a_lease_that_lapsed_with_nobody_taking_it_is_taken_back(connection, package, monkeypatch):
    package.add(customer_record("Beta LLC"))
    original_page = package.adapter().__class__.changes

    def lapsed_while_reading(self, entity, *, cursor):
        Connection.objects.filter(pk=connection.pk).update(run_lease_until=None)
        return original_page(self, entity, cursor=cursor)

    monkeypatch.setattr(package.adapter().__class__, "changes", lapsed_while_reading)
    monkeypatch.setattr(services, "PROGRESS_EVERY", timedelta(0))

    assert run(connection).status == SyncRun.Status.SUCCEEDED


def test_a_void_read_again_is_not_counted_again(connection, package, finance_admin, synced):
    _customer, remote_id = synced
    package.delete(CUSTOMER, remote_id)
    first = run(connection)
    connection.cursors.update(value="")

    again = run(connection)

    assert first.counts[CUSTOMER].get("deleted") == 1
    assert "deleted" not in again.counts.get(CUSTOMER, {})


def test_an_open_conflict_read_again_is_not_counted_again(connection, package, finance_admin, synced):
    customer, remote_id = synced
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Here")
    package.edit(CUSTOMER, remote_id, legal_name="Acme There")
    first = run(connection)
    connection.cursors.update(value="")

    again = run(connection)

    assert first.counts[CUSTOMER]["conflicts"] == 1
    assert "conflicts" not in again.counts.get(CUSTOMER, {})
    assert Conflict.objects.filter(status="open").count() == 1


def test_records_concord_had_before_the_first_run_are_pushed_by_it(connection, package, finance_admin):
    customer = make_customer(finance_admin)
    OutboxEntry.objects.all().delete()  # created before the connection existed: nothing queued

    run(connection)

    assert linked_remote_id(customer) in package.live(CUSTOMER)


def test_the_first_push_is_queued_once(connection, package, finance_admin):
    run(connection)
    customer = make_customer(finance_admin, "Later Ltd")
    OutboxEntry.objects.all().delete()

    run(connection)

    assert not ExternalRef.objects.filter(entity=CUSTOMER, local_id=customer.pk).exists()


def test_a_new_connection_takes_its_providers_pacing(finance_admin):
    from integrations.xero.build import MAX_IN_FLIGHT, REQUESTS_PER_MINUTE

    xero = services.create_connection(actor=finance_admin, provider="xero", name="Xero books")

    assert (xero.requests_per_minute, xero.max_in_flight) == (REQUESTS_PER_MINUTE, MAX_IN_FLIGHT)
