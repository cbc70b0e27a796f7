"""Writes to the ledger: post a balanced entry, reverse one, set rates and the lock date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import transaction

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


def account_for(role: str) -> Account:
    try:
        return Account.objects.get(role=role, is_active=True)
    except Account.DoesNotExist:
        raise MissingAccount(
            f"No active account has the role {role!r}; assign it in the chart of accounts (admin → Accounts)."
        ) from None


def locked_through() -> date | None:
    return PeriodLock.objects.order_by("-locked_through").values_list("locked_through", flat=True).first()


def check_period_open(entry_date: date) -> None:
    lock = locked_through()
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
    check_period_open(entry_date)
    kept = [line for line in lines if quantize(line.amount) != ZERO]
    if not kept:
        raise UnbalancedEntry(f"{memo}: the entry has no non-zero line.")
    debits = sum((quantize(line.amount) for line in kept if line.amount > 0), ZERO)
    credits = sum((-quantize(line.amount) for line in kept if line.amount < 0), ZERO)
    if debits != credits:
        raise UnbalancedEntry(f"{memo}: debits {debits} and credits {credits} differ by {debits - credits}.")
    entry = JournalEntry(
        entry_date=entry_date,
        memo=memo[:300],
        source_type=source[0],
        source_id=str(source[1]),
        event=event,
        reversal_of=reversal_of,
        created_by=actor,
    )
    entry._history_user = actor
    entry.save()
    for line in kept:
        amount = quantize(line.amount)
        journal_line = JournalLine(
            entry=entry,
            account=line.account,
            debit=amount if amount > 0 else ZERO,
            credit=-amount if amount < 0 else ZERO,
            customer_id=line.customer_id,
            currency=line.currency,
            amount_currency=quantize(line.amount_currency),
            entry_date=entry_date,
        )
        journal_line._history_user = actor
        journal_line.save()
    return entry


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
