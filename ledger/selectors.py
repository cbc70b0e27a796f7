"""Reads of the ledger: trial balance and account balances as of a date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import Coalesce

from ledger.models import Account, JournalLine
from ledger.money import ZERO, quantize


@dataclass(frozen=True)
class TrialBalanceRow:
    account: Account
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit


def trial_balance(*, as_of: date) -> list[TrialBalanceRow]:
    """Every account with postings on or before `as_of`, with its total debits and credits."""
    totals = (
        JournalLine.objects.filter(entry_date__lte=as_of)
        .values("account")
        .annotate(debit=Sum("debit"), credit=Sum("credit"))
        .order_by()
    )
    accounts = Account.objects.in_bulk([row["account"] for row in totals])
    # Quantized: on SQLite a sum comes back through a float.
    rows = [
        TrialBalanceRow(accounts[row["account"]], quantize(row["debit"]), quantize(row["credit"])) for row in totals
    ]
    return sorted(rows, key=lambda row: row.account.code)


def account_balance(*, role: str, as_of: date, customer_id: int | None = None) -> Decimal:
    """Debits less credits on the account with `role`, on or before `as_of` (base currency)."""
    lines = JournalLine.objects.filter(account__role=role, entry_date__lte=as_of)
    if customer_id is not None:
        lines = lines.filter(customer_id=customer_id)
    totals = lines.aggregate(debit=Coalesce(Sum("debit"), ZERO), credit=Coalesce(Sum("credit"), ZERO))
    # Quantized: on SQLite a sum comes back through a float.
    return quantize(totals["debit"]) - quantize(totals["credit"])
