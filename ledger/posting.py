"""Posting rules: one function per business event, each writing one balanced journal entry.

The table in docs/ledger.md is this module in words. Each function receives the business
document (duck-typed: the ledger imports no other app), converts its amounts to the base
currency at the document's booking rate, and calls `ledger.services.post_entry`, which refuses
an unbalanced entry or one in a locked period. Signs: a positive `Line.amount` is a debit.

The rules a batch service posts in bulk (invoices issued, payments received, allocations) also
come as `*_entry` functions that only draw the entry up (a `PendingEntry`) for
`ledger.services.post_entries`; the posting function is that plus `post_entry`, so one rule
builds the lines either way. They take `accounts`, the role → account lookup, so that a batch
reads the chart once (`ledger.services.accounts_by_role`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

from ledger.models import Account, JournalEntry
from ledger.money import ZERO, base_currency, quantize, to_base
from ledger.services import Line, PendingEntry, account_for, post_entry, reverse_entry

AccountLookup = Callable[[str], Account]

METHOD_ACCOUNT_ROLES = {
    "bank_transfer": Account.Role.BANK,
    "card": Account.Role.CARD_CLEARING,
    "cash": Account.Role.CASH,
    "cheque": Account.Role.CHEQUE_CLEARING,
    "other": Account.Role.OTHER_CLEARING,
}


def _source(document) -> tuple[str, object]:
    return (document._meta.label_lower, document.pk)


def _base_line(account, amount_base: Decimal, *, currency: str | None = None, amount_currency=None) -> Line:
    """A line outside the AR subledger (revenue, tax, bank, …)."""
    base = base_currency()
    return Line(
        account=account,
        amount=amount_base,
        currency=currency or base,
        amount_currency=amount_base if amount_currency is None else amount_currency,
    )


def _post(pending: PendingEntry, *, actor) -> JournalEntry:
    return post_entry(
        entry_date=pending.entry_date,
        memo=pending.memo,
        source=pending.source,
        event=pending.event,
        lines=pending.lines,
        actor=actor,
        reversal_of=pending.reversal_of,
    )


def _ar_line(
    document, amount_base: Decimal, amount_currency: Decimal, *, accounts: AccountLookup = account_for
) -> Line:
    return Line(
        account=accounts(Account.Role.AR_CONTROL),
        amount=amount_base,
        currency=document.currency,
        amount_currency=amount_currency,
        customer_id=document.customer_id,
    )


def _sales_lines(
    document, lines, rate: Decimal, sign: int, *, accounts: AccountLookup = account_for
) -> tuple[list[Line], Decimal]:
    """Revenue, discount and tax lines of an invoice (sign −1: credits) or credit note (+1), and
    the base amount the customer owes for them (the AR side)."""
    discounts = accounts(Account.Role.SALES_DISCOUNTS)
    posted: list[Line] = []
    receivable = ZERO
    for line in lines:
        net_base = to_base(line.net, rate)
        discount_base = to_base(line.discount_net, rate)
        tax_base = to_base(line.tax, rate)
        currency = document.currency
        posted.append(
            _base_line(
                line.revenue_account,
                sign * (net_base + discount_base),
                currency=currency,
                amount_currency=sign * (line.net + line.discount_net),
            )
        )
        if discount_base or line.discount_net:
            posted.append(
                _base_line(
                    discounts, -sign * discount_base, currency=currency, amount_currency=-sign * line.discount_net
                )
            )
        if tax_base or line.tax:
            posted.append(
                _base_line(
                    line.tax_rate.liability_account, sign * tax_base, currency=currency, amount_currency=sign * line.tax
                )
            )
        receivable += net_base + tax_base
    return posted, receivable


def invoice_issued(invoice, lines, *, actor) -> tuple[JournalEntry, Decimal]:
    """Dr AR (gross) · Cr revenue (net + discount) · Dr sales discounts · Cr tax payable;
    and for lines with a unit cost, Dr COGS · Cr inventory. Returns the entry and the AR amount."""
    pending, receivable = invoice_issued_entry(invoice, lines)
    return _post(pending, actor=actor), receivable


def invoice_issued_entry(invoice, lines, *, accounts: AccountLookup = account_for) -> tuple[PendingEntry, Decimal]:
    """`invoice_issued`, drawn up but not posted."""
    posted, receivable = _sales_lines(invoice, lines, invoice.exchange_rate, sign=-1, accounts=accounts)
    posted.append(_ar_line(invoice, receivable, invoice.gross_total, accounts=accounts))
    cost = sum((quantize(line.quantity * line.unit_cost) for line in lines if line.unit_cost), ZERO)
    if cost:
        posted.append(_base_line(accounts(Account.Role.COGS), cost))
        posted.append(_base_line(accounts(Account.Role.INVENTORY), -cost))
    pending = PendingEntry(
        entry_date=invoice.issue_date,
        memo=f"Invoice {invoice.number} to {invoice.customer}",
        source=_source(invoice),
        event="invoice_issued",
        lines=posted,
    )
    return pending, receivable


def invoice_voided(invoice, *, voided_on: date, actor) -> JournalEntry:
    """The issue entry, mirrored on the void date."""
    return reverse_entry(
        entry=invoice.issue_entry,
        entry_date=voided_on,
        memo=f"Void of invoice {invoice.number}",
        event="invoice_voided",
        actor=actor,
    )


def payment_received(payment, *, actor) -> JournalEntry:
    """Dr bank or clearing account of the method · Cr AR (the customer's credit until applied)."""
    return _post(payment_received_entry(payment), actor=actor)


def payment_received_entry(payment, *, accounts: AccountLookup = account_for) -> PendingEntry:
    """`payment_received`, drawn up but not posted."""
    cash = accounts(METHOD_ACCOUNT_ROLES[payment.method])
    return PendingEntry(
        entry_date=payment.received_on,
        memo=f"Payment from {payment.customer} ({payment.get_method_display()} {payment.reference})".strip(),
        source=_source(payment),
        event="payment_received",
        lines=[
            _base_line(cash, payment.base_amount, currency=payment.currency, amount_currency=payment.amount),
            _ar_line(payment, -payment.base_amount, -payment.amount, accounts=accounts),
        ],
    )


def payment_failed(payment, *, failed_on: date, actor) -> JournalEntry:
    """A bounced or charged-back payment: its receipt entry, mirrored."""
    return reverse_entry(
        entry=payment.entry,
        entry_date=failed_on,
        memo=f"Failed payment from {payment.customer} ({payment.reference})".strip(),
        event="payment_failed",
        actor=actor,
    )


def allocation_settled(allocation, *, document, actor) -> JournalEntry | None:
    """Realised FX on settlement: the credit carried `credit_base` and the invoice `invoice_base`
    for the same amount; the difference moves between AR and FX gain/loss. Nothing when equal."""
    pending = allocation_settled_entry(allocation, document=document)
    return None if pending is None else _post(pending, actor=actor)


def allocation_settled_entry(allocation, *, document, accounts: AccountLookup = account_for) -> PendingEntry | None:
    """`allocation_settled`, drawn up but not posted; None when there is nothing to post."""
    difference = allocation.credit_base - allocation.invoice_base
    if difference == ZERO:
        return None
    invoice = allocation.invoice
    return PendingEntry(
        entry_date=allocation.allocated_on,
        memo=f"Realised FX on settling {invoice.number} with {document}",
        source=_source(allocation),
        event="fx_realised",
        lines=[
            _ar_line(invoice, difference, ZERO, accounts=accounts),
            _base_line(accounts(Account.Role.FX_GAIN_LOSS), -difference),
        ],
    )


def credit_note_issued(credit_note, lines, *, actor) -> tuple[JournalEntry, Decimal]:
    """The invoice rule with the signs turned: Dr revenue · Cr discounts · Dr tax · Cr AR."""
    posted, receivable = _sales_lines(credit_note, lines, credit_note.exchange_rate, sign=1)
    posted.append(_ar_line(credit_note, -receivable, -credit_note.gross_total))
    entry = post_entry(
        entry_date=credit_note.issue_date,
        memo=f"Credit note {credit_note.number} to {credit_note.customer}",
        source=_source(credit_note),
        event="credit_note_issued",
        lines=posted,
        actor=actor,
    )
    return entry, receivable


def refund_paid(refund, *, actor) -> JournalEntry:
    """Dr AR (the credit's carrying value used up) · Cr bank (at the refund date's rate) ·
    the difference to FX gain/loss."""
    cash = account_for(METHOD_ACCOUNT_ROLES[refund.method])
    return post_entry(
        entry_date=refund.refunded_on,
        memo=f"Refund to {refund.customer} ({refund.reference})".strip(),
        source=_source(refund),
        event="refund_paid",
        lines=[
            _ar_line(refund, refund.carrying_base, refund.amount),
            _base_line(cash, -refund.bank_base, currency=refund.currency, amount_currency=-refund.amount),
            _base_line(account_for(Account.Role.FX_GAIN_LOSS), refund.bank_base - refund.carrying_base),
        ],
        actor=actor,
    )


def invoice_written_off(write_off, *, actor) -> JournalEntry:
    """Dr bad debt · Cr AR, for the invoice's open balance at its carrying value."""
    invoice = write_off.invoice
    return post_entry(
        entry_date=write_off.written_off_on,
        memo=f"Write-off of invoice {invoice.number}: {write_off.reason}",
        source=_source(write_off),
        event="invoice_written_off",
        lines=[
            _base_line(
                account_for(Account.Role.BAD_DEBT),
                write_off.base_amount,
                currency=invoice.currency,
                amount_currency=write_off.amount,
            ),
            _ar_line(invoice, -write_off.base_amount, -write_off.amount),
        ],
        actor=actor,
    )


def invoice_restated(invoice, lines, *, previous_entry: JournalEntry, actor) -> tuple[JournalEntry, Decimal]:
    """An issued invoice corrected in place (as an accounting package edits one): the entry it was
    posted with is reversed on that entry's own date, and the invoice is posted again as it now
    stands by the invoice rule, on its (possibly new) issue date — so the books as of any day read
    as though it had always been so. Returns the new entry and the AR amount."""
    reverse_entry(
        entry=previous_entry,
        entry_date=previous_entry.entry_date,
        memo=f"Invoice {invoice.number} restated: its entry of {previous_entry.entry_date:%Y-%m-%d} reversed",
        event="invoice_restated",
        actor=actor,
    )
    pending, receivable = invoice_issued_entry(invoice, lines)
    restated = PendingEntry(
        entry_date=pending.entry_date,
        memo=f"{pending.memo} (restated)",
        source=pending.source,
        event=pending.event,
        lines=pending.lines,
    )
    return _post(restated, actor=actor), receivable
