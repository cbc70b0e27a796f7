"""What only PostgreSQL proves about the ledger: row locks keep concurrent allocations and
invoice numbering exact, and the database itself refuses to change a posted row or to commit an
entry that does not balance — even to raw SQL that bypasses the ORM and the services.

(The deferred balance triggers also check every entry written by every other test: Django's
TestCase runs SET CONSTRAINTS ALL IMMEDIATE at the end of each test on PostgreSQL.)
"""

import threading
from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, connections, transaction

from billing import services
from billing.errors import AllocationExceedsBalance
from billing.models import Invoice, NumberSequence, PaymentAllocation
from ledger.models import Account, JournalEntry, JournalLine
from ledger.services import Line, post_entry
from tests.billing.conftest import issue
from tests.factories import CustomerFactory

pytestmark = pytest.mark.postgres

D = Decimal


def run_concurrently(work, items) -> list[Exception]:
    """Run `work(item)` for every item in its own thread (and so its own database connection),
    all released at once; returns what the threads raised."""
    start = threading.Barrier(len(items))
    raised: list[Exception] = []

    def run(item):
        try:
            start.wait()
            work(item)
        except Exception as error:  # noqa: BLE001 - collected and asserted by the caller
            raised.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


# --- Locks --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_fifty_concurrent_allocations_never_over_apply_an_invoice(ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "1000.00", on=date(2026, 3, 2))
    payments = [
        services.record_payment(
            actor=ar_clerk,
            customer=own_customer,
            amount=D("30.00"),
            received_on=date(2026, 3, 10),
            method="bank_transfer",
            auto_apply=False,
        )
        for _ in range(50)
    ]

    def allocate(payment):
        services.allocate_payment(actor=ar_clerk, payment=payment, invoice=invoice, amount=D("30.00"))

    raised = run_concurrently(allocate, payments)

    invoice.refresh_from_db()
    applied = sum(PaymentAllocation.objects.filter(invoice=invoice).values_list("amount", flat=True), D(0))
    # 33 × 30.00 fit into 1000.00; the other 17 find only 10.00 open and are refused.
    assert PaymentAllocation.objects.filter(invoice=invoice).count() == 33
    assert applied == D("990.00") <= invoice.gross_total
    assert invoice.open_amount == invoice.gross_total - applied == D("10.00")
    assert len(raised) == 17
    assert all(isinstance(error, AllocationExceedsBalance) for error in raised), raised
    assert all("is more than the 10.00 still open" in str(error) for error in raised)
    call_command("ledger_check", stdout=None)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_issues_number_invoices_without_duplicates_or_gaps(ar_clerk, sales_rep):
    customers = [CustomerFactory(owner=sales_rep) for _ in range(10)]
    drafts = [
        services.create_invoice(
            actor=ar_clerk,
            customer=customer,
            lines=[services.LineInput(description="Consulting", unit_price=D("100.00"))],
        )
        for customer in customers
        for _ in range(3)
    ]
    assert not NumberSequence.objects.exists()  # the first issues also race to create the series

    raised = run_concurrently(
        lambda draft: services.issue_invoice(actor=ar_clerk, invoice=draft, issue_date=date(2026, 3, 2)), drafts
    )

    assert raised == []
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-{n:06d}" for n in range(1, len(drafts) + 1)]
    assert NumberSequence.objects.get(series="INV").next_number == len(drafts) + 1


# --- Triggers -----------------------------------------------------------------------------------


@pytest.fixture
def posted_entry(db):
    bank, revenue = Account.objects.get(role=Account.Role.BANK), Account.objects.get(role=Account.Role.REVENUE)
    return post_entry(
        entry_date=date(2026, 3, 2),
        memo="Cash sale",
        source=("tests.sale", 1),
        event="test",
        lines=[
            Line(account=bank, amount=D("50.00"), currency="USD", amount_currency=D("50.00")),
            Line(account=revenue, amount=D("-50.00"), currency="USD", amount_currency=D("-50.00")),
        ],
    )


def raw(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def insert_entry(*lines: tuple[str, str, str]) -> int:
    """A journal entry and its lines by raw SQL: (account role, debit, credit) each."""
    [(entry_id,)] = raw(
        "INSERT INTO ledger_journalentry (entry_date, memo, source_type, source_id, event, created_at) "
        "VALUES ('2026-03-02', 'Raw SQL', 'tests.raw', '1', 'raw', now()) RETURNING id"
    )
    for role, debit, credit in lines:
        raw(
            "INSERT INTO ledger_journalline "
            "(entry_id, account_id, debit, credit, currency, amount_currency, entry_date) "
            "SELECT %s, id, %s, %s, 'USD', %s, '2026-03-02' FROM ledger_account WHERE role = %s",
            [entry_id, D(debit), D(credit), D(debit) - D(credit), role],
        )
    return entry_id


def commit_checks():
    """What COMMIT would do: run the deferred constraint triggers now."""
    raw("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.fixture
def deferred_again(db):
    yield
    raw("SET CONSTRAINTS ALL DEFERRED")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_journalline SET debit = debit + 1 WHERE entry_id = %s",
        "DELETE FROM ledger_journalline WHERE entry_id = %s",
        "UPDATE ledger_journalentry SET memo = 'Edited' WHERE id = %s",
        "DELETE FROM ledger_journalentry WHERE id = %s",
    ],
    ids=["update a line", "delete a line", "update an entry", "delete an entry"],
)
def test_the_database_refuses_to_change_or_delete_a_posted_row(posted_entry, statement):
    with pytest.raises(IntegrityError, match="ledger rows are append-only"), transaction.atomic():
        raw(statement, [posted_entry.pk])
    assert JournalLine.objects.filter(entry=posted_entry).count() == 2
    assert JournalEntry.objects.get(pk=posted_entry.pk).memo == "Cash sale"


@pytest.mark.django_db
def test_the_database_refuses_an_unbalanced_entry_at_commit(deferred_again):
    with pytest.raises(IntegrityError, match=r"does not balance: debits exceed credits by 5\.00"), transaction.atomic():
        insert_entry(("bank", "50.00", "0"), ("revenue", "0", "45.00"))
        commit_checks()


@pytest.mark.django_db
def test_the_database_refuses_an_entry_with_a_single_line(deferred_again):
    with pytest.raises(IntegrityError, match="has 1 line"), transaction.atomic():
        insert_entry(("bank", "50.00", "0"))
        commit_checks()


@pytest.mark.django_db
def test_the_database_refuses_an_entry_without_lines(deferred_again):
    with pytest.raises(IntegrityError, match="has 0 line"), transaction.atomic():
        insert_entry()
        commit_checks()


@pytest.mark.django_db
def test_the_database_accepts_a_balanced_entry_written_by_raw_sql(deferred_again):
    entry_id = insert_entry(("bank", "50.00", "0"), ("revenue", "0", "30.00"), ("tax_payable", "0", "20.00"))
    commit_checks()
    assert JournalLine.objects.filter(entry_id=entry_id).count() == 3


def insert_entries_at_once(*entries: list[tuple[str, str, str]]) -> list[int]:
    """Several entries in one INSERT, then all their lines in another, as a batch posts them."""
    ids = [
        entry_id
        for (entry_id,) in raw(
            "INSERT INTO ledger_journalentry (entry_date, memo, source_type, source_id, event, created_at) "
            "SELECT '2026-03-02', 'Raw SQL', 'tests.raw', n::text, 'raw', now() FROM generate_series(1, %s) AS n "
            "ORDER BY n RETURNING id",
            [len(entries)],
        )
    ]
    rows = [
        (entry_id, role, D(debit), D(credit))
        for entry_id, lines in zip(ids, entries, strict=True)
        for role, debit, credit in lines
    ]
    raw(
        # Only placeholders are put into the text.
        "INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, currency, amount_currency, entry_date) "  # noqa: S608
        "SELECT v.entry_id, a.id, v.debit, v.credit, 'USD', v.debit - v.credit, '2026-03-02' "
        f"FROM (VALUES {', '.join(['(%s::bigint, %s, %s::numeric, %s::numeric)'] * len(rows))}) "
        "AS v(entry_id, role, debit, credit) JOIN ledger_account a ON a.role = v.role",
        [value for row in rows for value in row],
    )
    return ids


BALANCED = [("bank", "50.00", "0"), ("revenue", "0", "50.00")]


@pytest.mark.django_db
def test_the_database_names_the_entry_that_does_not_balance_among_many_inserted_together(deferred_again):
    refused = r"journal entry \d+ does not balance: debits exceed credits by 0\.01"
    with pytest.raises(IntegrityError, match=refused) as raised, transaction.atomic():
        _, unbalanced, _ = insert_entries_at_once(
            BALANCED, [("bank", "50.00", "0"), ("revenue", "0", "49.99")], BALANCED
        )
        commit_checks()

    assert f"journal entry {unbalanced} does not balance" in str(raised.value)


@pytest.mark.django_db
def test_the_database_accepts_many_balanced_entries_inserted_together_and_leaves_no_notes(deferred_again):
    ids = insert_entries_at_once(*[BALANCED] * 20)
    commit_checks()

    assert JournalLine.objects.filter(entry_id__in=ids).count() == 40
    assert raw("SELECT count(*) FROM ledger_entry_to_check") == [(0,)]
    assert raw("SELECT count(*) FROM ledger_balance_pending") == [(0,)]


@pytest.mark.django_db
def test_a_line_added_to_an_entry_checked_before_is_checked_again(posted_entry, deferred_again):
    commit_checks()  # the entry as posted passes
    raw("SET CONSTRAINTS ALL DEFERRED")

    with (
        pytest.raises(IntegrityError, match=rf"journal entry {posted_entry.pk} does not balance"),
        transaction.atomic(),
    ):
        raw(
            "INSERT INTO ledger_journalline "
            "(entry_id, account_id, debit, credit, currency, amount_currency, entry_date) "
            "SELECT %s, id, 5, 0, 'USD', 5, '2026-03-02' FROM ledger_account WHERE role = 'bank'",
            [posted_entry.pk],
        )
        commit_checks()


@pytest.mark.django_db
def test_an_entry_written_after_a_savepoint_rolled_back_is_still_checked(deferred_again):
    # The rolled-back savepoint wrote the transaction's first entry, and with it the row that
    # makes the check run at commit; the entry written after it must bring that row back.
    with pytest.raises(IntegrityError, match=r"does not balance: debits exceed credits by 5\.00"), transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            insert_entry(*BALANCED)
            raise RuntimeError("roll the savepoint back")
        insert_entry(("bank", "50.00", "0"), ("revenue", "0", "45.00"))
        commit_checks()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_line_added_to_a_committed_entry_is_refused_at_commit(posted_entry_committed):
    refused = rf"journal entry {posted_entry_committed} does not balance"
    with pytest.raises(IntegrityError, match=refused), transaction.atomic():
        raw(
            "INSERT INTO ledger_journalline "
            "(entry_id, account_id, debit, credit, currency, amount_currency, entry_date) "
            "SELECT %s, id, 5, 0, 'USD', 5, '2026-03-02' FROM ledger_account WHERE role = 'bank'",
            [posted_entry_committed],
        )

    assert JournalLine.objects.filter(entry_id=posted_entry_committed).count() == 2


@pytest.fixture
def posted_entry_committed(transactional_db) -> int:
    with transaction.atomic():
        [entry_id] = insert_entries_at_once(BALANCED)
    return entry_id


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_retries_of_a_refund_with_one_idempotency_key_pay_out_once(ar_clerk, own_customer):
    payment = services.record_payment(
        actor=ar_clerk,
        customer=own_customer,
        amount=D("100.00"),
        received_on=date(2026, 3, 10),
        method="card",
        auto_apply=False,
    )
    refunds = []

    def refund(_attempt):
        refunds.append(
            services.refund_credit(
                actor=ar_clerk,
                payment=payment,
                amount=D("40.00"),
                refunded_on=date(2026, 3, 12),
                method="card",
                idempotency_key="refund-request-9",
            )
        )

    raised = run_concurrently(refund, range(10))

    assert raised == []
    assert len({refund.pk for refund in refunds}) == 1
    payment.refresh_from_db()
    assert payment.unapplied_amount == D("60.00")
