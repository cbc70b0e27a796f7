"""Writes to the ledger: post a balanced entry (or many at once), reverse one, set rates and the
lock date."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from config import bulk
from ledger.errors import MissingAccount, MissingExchangeRate, PeriodLocked, UnbalancedEntry
from ledger.models import Account, ExchangeRate, JournalEntry, JournalLine, PeriodLock
from ledger.money import ZERO, base_currency, quantize


@dataclass(frozen=True)
class Line:
    """One side of a posting, in base currency, with the document-currency amount it stands for.

    `amount` is signed: positive debits, negative credits. `amount_currency` has the same sign.
    """

    account: Account
    amount: Decimal
    currency: str
    amount_currency: Decimal
    customer_id: int | None = None


@dataclass(frozen=True)
class PendingEntry:
    """A journal entry a posting rule has drawn up but not yet written: `post_entry` writes one,
    `post_entries` many."""

    entry_date: date
    memo: str
    source: tuple[str, object]
    event: str
    lines: list[Line]
    reversal_of: JournalEntry | None = None


def account_for(role: str) -> Account:
    try:
        return Account.objects.get(role=role, is_active=True)
    except Account.DoesNotExist:
        raise MissingAccount(
            f"No active account has the role {role!r}; assign it in the chart of accounts (admin → Accounts)."
        ) from None


def locked_through() -> date | None:
    return PeriodLock.objects.order_by("-locked_through").values_list("locked_through", flat=True).first()


def accounts_by_role() -> Callable[[str], Account]:
    """`account_for` for a batch: every role's active account read in one query, up front."""
    found = {account.role: account for account in Account.objects.filter(is_active=True).exclude(role="")}

    def account(role: str) -> Account:
        if role not in found:
            return account_for(role)  # raises MissingAccount with the message people act on
        return found[role]

    return account


def check_period_open(entry_date: date) -> None:
    _refuse_if_locked(entry_date, locked_through())


def period_check() -> Callable[[date], None]:
    """`check_period_open` for a batch: the lock date is read once."""
    lock = locked_through()
    return lambda entry_date: _refuse_if_locked(entry_date, lock)


def _refuse_if_locked(entry_date: date, lock: date | None) -> None:
    if lock is not None and entry_date <= lock:
        raise PeriodLocked(
            f"The books are locked through {lock:%Y-%m-%d}; nothing can be posted on {entry_date:%Y-%m-%d}. "
            "Post it in an open period, or ask a Finance Admin to move the lock date."
        )


def rate_on(currency: str, on: date) -> Decimal:
    """Base units per unit of `currency` on `on`: the latest rate entered on or before that day."""
    if currency == base_currency():
        return Decimal(1)
    rate = (
        ExchangeRate.objects.filter(currency=currency, rate_date__lte=on)
        .order_by("-rate_date")
        .values_list("rate", flat=True)
        .first()
    )
    if rate is None:
        raise MissingExchangeRate(
            f"No {currency} exchange rate on or before {on:%Y-%m-%d}; enter one under Exchange rates first."
        )
    return rate


@transaction.atomic
def post_entry(
    *,
    entry_date: date,
    memo: str,
    source: tuple[str, object],
    event: str,
    lines: list[Line],
    actor=None,
    reversal_of: JournalEntry | None = None,
) -> JournalEntry:
    """Post a journal entry. Refused, with nothing written, if it does not balance to the cent or
    falls in a locked period. Zero lines are dropped (a rounding that cancels out books nothing)."""
    pending = PendingEntry(entry_date, memo, source, event, lines, reversal_of)
    check_period_open(entry_date)
    kept = _balanced_lines(pending)
    entry = _entry_row(pending, actor=actor)
    entry._history_user = actor
    entry.save()
    for journal_line in _line_rows(entry, kept):
        journal_line._history_user = actor
        journal_line.save()
    return entry


@transaction.atomic
def post_entries(*, entries: Sequence[PendingEntry], actor=None) -> list[JournalEntry]:
    """Post many journal entries at once, each under `post_entry`'s rules: if any one does not
    balance or falls in a locked period, the call is refused and nothing is written. Entries and
    lines are inserted in bulk, in the order given, with their history rows."""
    if not entries:
        return []
    check_open = period_check()
    kept_lines = []
    for pending in entries:
        check_open(pending.entry_date)
        kept_lines.append(_balanced_lines(pending))
    # Entries and lines as plain values, not model instances: a batch writes thousands.
    created_at = timezone.now()
    rows = [_entry_values(pending, actor=actor, created_at=created_at) for pending in entries]
    ids = bulk.insert_values(JournalEntry, ENTRY_FIELDS, rows, actor=actor)
    bulk.insert_values(
        JournalLine,
        LINE_FIELDS,
        [
            values
            for entry_id, row, kept in zip(ids, rows, kept_lines, strict=True)
            for values in _line_values(entry_id, row[ENTRY_DATE], kept)
        ],
        actor=actor,
    )
    # As read from the database: the key, then the other fields in their order.
    return [
        JournalEntry.from_db(connection.alias, None, [entry_id, *row]) for entry_id, row in zip(ids, rows, strict=True)
    ]


def _balanced_lines(pending: PendingEntry) -> list[tuple[Line, Decimal]]:
    """The entry's non-zero lines, each with its amount to the cent; refused unless they balance."""
    kept = [(line, amount) for line in pending.lines if (amount := quantize(line.amount)) != ZERO]
    if not kept:
        raise UnbalancedEntry(f"{pending.memo}: the entry has no non-zero line.")
    debits = sum((amount for _, amount in kept if amount > 0), ZERO)
    credits = sum((-amount for _, amount in kept if amount < 0), ZERO)
    if debits != credits:
        raise UnbalancedEntry(f"{pending.memo}: debits {debits} and credits {credits} differ by {debits - credits}.")
    return kept


# JournalEntry's fields after its key, in their order (`JournalEntry.from_db` takes the key and
# then these), and the fields `_line_values` gives, in order.
ENTRY_FIELDS = tuple(field.attname for field in JournalEntry._meta.concrete_fields[1:])
ENTRY_DATE = ENTRY_FIELDS.index("entry_date")
LINE_FIELDS = ("entry_id", "account_id", "debit", "credit", "customer_id", "currency", "amount_currency", "entry_date")


def _entry_values(pending: PendingEntry, *, actor, created_at) -> list:
    """The entry `_entry_row` builds, as values of ENTRY_FIELDS."""
    values = {
        "entry_date": pending.entry_date,
        "memo": pending.memo[:300],
        "source_type": pending.source[0],
        "source_id": str(pending.source[1]),
        "event": pending.event,
        "reversal_of_id": pending.reversal_of.pk if pending.reversal_of is not None else None,
        "created_by_id": actor.pk if actor is not None else None,
        "created_at": created_at,
    }
    return [values[name] for name in ENTRY_FIELDS]


def _entry_row(pending: PendingEntry, *, actor) -> JournalEntry:
    return JournalEntry(
        entry_date=pending.entry_date,
        memo=pending.memo[:300],
        source_type=pending.source[0],
        source_id=str(pending.source[1]),
        event=pending.event,
        reversal_of=pending.reversal_of,
        created_by=actor,
    )


def _line_values(entry_id: int, entry_date: date, kept: list[tuple[Line, Decimal]]) -> list[list]:
    """The journal lines of an entry, as values of LINE_FIELDS: a positive amount is a debit."""
    return [
        [
            entry_id,
            line.account.pk,
            amount if amount > 0 else ZERO,
            -amount if amount < 0 else ZERO,
            line.customer_id,
            line.currency,
            quantize(line.amount_currency),
            entry_date,
        ]
        for line, amount in kept
    ]


def _line_rows(entry: JournalEntry, kept: list[tuple[Line, Decimal]]) -> list[JournalLine]:
    return [
        JournalLine(**dict(zip(LINE_FIELDS, values, strict=True)))
        for values in _line_values(entry.pk, entry.entry_date, kept)
    ]


@transaction.atomic
def reverse_entry(*, entry: JournalEntry, entry_date: date, memo: str, event: str, actor=None) -> JournalEntry:
    """Post the mirror image of `entry` on `entry_date`; the original stays as it was."""
    if hasattr(entry, "reversed_by"):
        raise UnbalancedEntry(f"Entry {entry.pk} was reversed already by entry {entry.reversed_by.pk}.")
    mirrored = [
        Line(
            account=line.account,
            amount=line.credit - line.debit,
            currency=line.currency,
            amount_currency=-line.amount_currency,
            customer_id=line.customer_id,
        )
        for line in entry.lines.select_related("account")
    ]
    return post_entry(
        entry_date=entry_date,
        memo=memo,
        source=(entry.source_type, entry.source_id),
        event=event,
        lines=mirrored,
        actor=actor,
        reversal_of=entry,
    )


@transaction.atomic
def lock_period(*, actor, locked_through: date, reason: str = "") -> PeriodLock:
    lock = PeriodLock(locked_through=locked_through, reason=reason, created_by=actor)
    lock._history_user = actor
    lock.save()
    return lock


@transaction.atomic
def set_exchange_rate(*, actor, currency: str, rate_date: date, rate: Decimal, source: str = "manual") -> ExchangeRate:
    """Enter or correct the rate of one currency on one day."""
    if currency == base_currency():
        raise MissingExchangeRate(f"{currency} is the base currency; its rate is always 1.")
    if rate <= 0:
        raise MissingExchangeRate(f"An exchange rate must be positive, not {rate}.")
    exchange_rate = ExchangeRate.objects.select_for_update().filter(currency=currency, rate_date=rate_date).first()
    exchange_rate = exchange_rate or ExchangeRate(currency=currency, rate_date=rate_date)
    exchange_rate.rate, exchange_rate.source = rate, source
    exchange_rate.full_clean()
    exchange_rate._history_user = actor
    exchange_rate.save()
    return exchange_rate
