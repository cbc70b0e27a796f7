"""The general ledger: accounts, balanced journal entries, exchange rates and the lock date.

Entries are append-only. A posted entry is never changed: it is reversed by another entry. The
service layer (ledger.services) refuses unbalanced entries and writes into locked periods; on
PostgreSQL, triggers (migration 0002) refuse any UPDATE or DELETE of a posted row and any entry
whose debits and credits differ when its transaction commits.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.audit import audit_history
from ledger.currency import validate_currency_code


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete a posted ledger row."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} are append-only; post a reversal instead.")

    def delete(self):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} are append-only; post a reversal instead.")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"A posted {self._meta.verbose_name} cannot be changed; post a reversal instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"A posted {self._meta.verbose_name} cannot be deleted; post a reversal instead.")


class Account(models.Model):
    class Type(models.TextChoices):
        ASSET = "asset", "Asset"
        LIABILITY = "liability", "Liability"
        EQUITY = "equity", "Equity"
        INCOME = "income", "Income"
        EXPENSE = "expense", "Expense"

    class Role(models.TextChoices):
        """The accounts posting rules look up by what they are for, not by code."""

        AR_CONTROL = "ar_control", "Accounts receivable control"
        REVENUE = "revenue", "Default revenue"
        TAX_PAYABLE = "tax_payable", "Default sales tax payable"
        SALES_DISCOUNTS = "sales_discounts", "Sales discounts"
        BAD_DEBT = "bad_debt", "Bad debt expense"
        FX_GAIN_LOSS = "fx_gain_loss", "Realised FX gain/loss"
        COGS = "cogs", "Cost of goods sold"
        INVENTORY = "inventory", "Inventory"
        BANK = "bank", "Bank (bank transfers)"
        CARD_CLEARING = "card_clearing", "Card clearing"
        CASH = "cash", "Cash on hand"
        CHEQUE_CLEARING = "cheque_clearing", "Cheques to deposit"
        OTHER_CLEARING = "other_clearing", "Other receipts clearing"

    code = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=10, choices=Type.choices)
    role = models.CharField(max_length=20, choices=Role.choices, blank=True)
    is_active = models.BooleanField(default=True)

    history = audit_history()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["role"], condition=~Q(role=""), name="account_one_per_role"),
            models.CheckConstraint(
                condition=Q(type__in=["asset", "liability", "equity", "income", "expense"]), name="account_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class ExchangeRate(models.Model):
    """How many units of the base currency one unit of `currency` was worth on `rate_date`."""

    currency = models.CharField(max_length=3, validators=[validate_currency_code])
    rate_date = models.DateField()
    rate = models.DecimalField(max_digits=18, decimal_places=8)
    source = models.CharField(max_length=50, blank=True, help_text="Where the rate came from, e.g. ECB or manual.")

    history = audit_history()

    class Meta:
        ordering = ["currency", "-rate_date"]
        constraints = [
            models.UniqueConstraint(fields=["currency", "rate_date"], name="exchange_rate_one_per_day"),
            models.CheckConstraint(condition=Q(rate__gt=0), name="exchange_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.rate} on {self.rate_date}"


class PeriodLock(models.Model):
    """Nothing may be posted on or before `locked_through`; the latest lock is the one in force."""

    locked_through = models.DateField()
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["-locked_through", "-id"]
        get_latest_by = "locked_through"

    def __str__(self) -> str:
        return f"Locked through {self.locked_through}"


class JournalEntry(AppendOnlyModel):
    entry_date = models.DateField()
    memo = models.CharField(max_length=300)
    # The business document the entry came from, e.g. "billing.invoice:42" (the ledger imports no
    # other app, so the reference is by label and id).
    source_type = models.CharField(max_length=50)
    source_id = models.CharField(max_length=50)
    event = models.CharField(max_length=30, help_text="The posting rule that wrote it, e.g. invoice_issued.")
    reversal_of = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # The history is read by row (`id`), by day and by author (the audit viewer), never by these:
    # their indexes only slowed every entry posted.
    history = audit_history(no_db_index=["reversal_of", "created_by"])

    class Meta:
        ordering = ["-entry_date", "-id"]
        verbose_name_plural = "journal entries"
        indexes = [
            models.Index(fields=["source_type", "source_id"], name="entry_source_idx"),
            models.Index(fields=["entry_date"], name="entry_date_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.entry_date} {self.memo}"


class JournalLine(AppendOnlyModel):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    # Found by line_account_date_idx, which starts with it (no index of its own to keep up).
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lines", db_index=False)
    # Base currency. Exactly one of the two is positive.
    debit = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0.00"))
    credit = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0.00"))
    # The AR subledger: which customer an accounts-receivable line belongs to. Found by
    # line_customer_date_idx, which starts with it and holds every line that has one.
    customer = models.ForeignKey(
        "crm.Customer", on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    # The amount in the document's own currency, signed (+ debit, - credit).
    currency = models.CharField(max_length=3)
    amount_currency = models.DecimalField(max_digits=18, decimal_places=2)
    # Denormalised from the entry so that balances as of a date need no join.
    entry_date = models.DateField()

    # As for entries: the history is read by row, day and author, not by these.
    history = audit_history(no_db_index=["entry", "account", "customer"])

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(debit__gt=0, credit=0) | Q(credit__gt=0, debit=0)),
                name="journal_line_one_side_positive",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "entry_date"], name="line_account_date_idx"),
            models.Index(
                fields=["customer", "entry_date"], name="line_customer_date_idx", condition=Q(customer__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        side = f"Dr {self.debit}" if self.debit else f"Cr {self.credit}"
        return f"{self.account.code} {side}"
