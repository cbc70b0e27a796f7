"""`post_entries`, the batch services' posting: the same entries, lines and history as
`post_entry` one at a time; one entry that does not balance refuses them all; and on PostgreSQL the
database's own balance check still sees lines written together with their history in one
statement."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from config import bulk
from config.audit import system_actor
from ledger.errors import UnbalancedEntry
from ledger.models import Account, JournalEntry, JournalLine
from ledger.services import LINE_FIELDS, Line, PendingEntry, post_entries, post_entry

pytestmark = pytest.mark.django_db

D = Decimal
DAY = date(2026, 3, 2)
# What tells two postings of the same entries apart by nature: their keys and when they were written.
APART = {"id", "entry_id", "history_id", "created_at", "history_date"}


@pytest.fixture
def actor(db):
    return system_actor("tests.batch_posting")


def pending(source: int, *amounts: str, customer_id=None) -> PendingEntry:
    """An entry of lines alternately to the bank and revenue accounts, the AR ones (a customer
    given) to the AR control account."""
    bank, revenue = Account.objects.get(role=Account.Role.BANK), Account.objects.get(role=Account.Role.REVENUE)
    ar = Account.objects.get(role=Account.Role.AR_CONTROL)
    lines = []
    for n, amount in enumerate(amounts):
        account = ar if customer_id and n == 0 else (bank if n % 2 == 0 else revenue)
        lines.append(
            Line(
                account=account,
                amount=D(amount),
                currency="USD",
                amount_currency=D(amount),
                customer_id=customer_id if account == ar else None,
            )
        )
    return PendingEntry(entry_date=DAY, memo=f"Sale {source}", source=("tests.sale", source), event="test", lines=lines)


def written(entries) -> list:
    """The entries, their lines and the history of both, without what sets two postings apart."""

    def plain(row) -> dict:
        values = {field.attname: getattr(row, field.attname) for field in row._meta.concrete_fields}
        return values | dict.fromkeys(APART & set(values))

    lines = JournalLine.objects.filter(entry__in=entries).order_by("pk")
    return [
        [plain(entry) for entry in entries],
        [plain(line) for line in lines],
        [plain(record) for entry in entries for record in entry.history.order_by("history_id")],
        [plain(record) for line in lines for record in line.history.order_by("history_id")],
    ]


def test_post_entries_writes_what_post_entry_writes_one_at_a_time(actor, own_customer):
    drawn = [
        pending(1, "50.00", "-50.00"),
        pending(2, "120.00", "-100.00", "-20.00", customer_id=own_customer.pk),
        pending(3, "0.004", "10.00", "-10.00"),  # a line that rounds to nothing is dropped
    ]

    one_by_one = [
        post_entry(
            entry_date=entry.entry_date,
            memo=entry.memo,
            source=entry.source,
            event=entry.event,
            lines=entry.lines,
            actor=actor,
        )
        for entry in drawn
    ]
    together = post_entries(entries=drawn, actor=actor)

    assert [entry.pk for entry in together] == sorted(entry.pk for entry in together)
    assert written(together) == written(one_by_one)
    assert JournalLine.objects.filter(entry=together[2]).count() == 2


def test_post_entries_returns_the_entries_as_stored(actor):
    [entry] = post_entries(entries=[pending(1, "50.00", "-50.00")], actor=actor)

    stored = JournalEntry.objects.get(pk=entry.pk)
    assert {field.attname: getattr(entry, field.attname) for field in JournalEntry._meta.concrete_fields} == {
        field.attname: getattr(stored, field.attname) for field in JournalEntry._meta.concrete_fields
    }
    assert not entry._state.adding


def test_post_entries_refuses_every_entry_when_one_does_not_balance(actor):
    with pytest.raises(UnbalancedEntry, match=r"Sale 2: debits 50\.00 and credits 49\.99 differ by 0\.01"):
        post_entries(
            entries=[pending(1, "50.00", "-50.00"), pending(2, "50.00", "-49.99"), pending(3, "5.00", "-5.00")],
            actor=actor,
        )

    assert not JournalEntry.objects.exists()
    assert not JournalLine.history.exists()


@pytest.mark.postgres
def test_the_database_refuses_an_unbalanced_entry_written_in_bulk(actor):
    bank = Account.objects.get(role=Account.Role.BANK)
    [entry] = post_entries(entries=[pending(1, "50.00", "-50.00")], actor=actor)

    with pytest.raises(IntegrityError, match=rf"journal entry {entry.pk} does not balance"), transaction.atomic():
        bulk.insert_values(
            JournalLine,
            LINE_FIELDS,
            [[entry.pk, bank.pk, D("5.00"), D("0.00"), None, "USD", D("5.00"), DAY]],
            actor=actor,
        )
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what COMMIT would do
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
