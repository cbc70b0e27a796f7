"""The raw-SQL floor of the aging (issue 6, measure 3): the fastest plain SQL we could write that
computes the same per-customer buckets as `billing.selectors.aging(as_of=...)`.

The rule it follows is the selector's, in base currency, as the books stood at the end of `as_of`:
- an invoice counts when it was issued on or before `as_of`, not voided by then and not settled by
  then (`settled_on <= as_of` means it was at zero that day and ever since); what was open on it is
  `base_gross` less the `invoice_base` of payment and credit-note allocations dated on or before
  `as_of` and the `base_amount` of write-offs approved on or before then, rounded to the cent;
- it falls in a bucket by days past due on `as_of`: current (not yet due), 1–30, 31–60, 61–90, 90+;
- unapplied credit: posted payments received by then, not failed and not used up by then, less
  what their allocations (`credit_base`) and refunds (`carrying_base`) had used by then; and credit
  notes issued by then, not used up by then, likewise. Each document rounded to the cent.

It may read what the selector reads: the documents' settlement days (`Invoice.settled_on`,
`Payment.used_up_on`, `CreditNote.used_up_on`), the balances kept on them and every index. It is
one statement (the documents stacked with UNION ALL, summed per customer in one hash aggregate),
run with the selector's report settings (JIT off, billing.selectors.REPORT_WORK_MEM): without
them the planner's estimate of the per-invoice look-ups crosses jit_above_cost (compiling costs
seconds), and the per-customer sums of a large book spill to disk.

The bench times it next to the selector in the same run and checks that both agree customer by
customer (a correctness check, not a timing one). SQLite (the --small path on a laptop) gets a
portable variant in two statements.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import connection as default_connection
from django.db import transaction
from django.utils import timezone

from billing.models import CreditNote, CreditNoteAllocation, Invoice, Payment, PaymentAllocation, Refund, WriteOff
from billing.selectors import BUCKETS, REPORT_WORK_MEM
from ledger.money import ZERO, quantize

APPROVED = WriteOff.Status.APPROVED.value


def _tables() -> dict[str, str]:
    return {
        "invoice": Invoice._meta.db_table,
        "payment_allocation": PaymentAllocation._meta.db_table,
        "note_allocation": CreditNoteAllocation._meta.db_table,
        "write_off": WriteOff._meta.db_table,
        "payment": Payment._meta.db_table,
        "credit_note": CreditNote._meta.db_table,
        "refund": Refund._meta.db_table,
    }


# One statement, one row per customer: the documents open on the day, stacked with UNION ALL and
# summed once (hash aggregate; work_mem is raised for it). Each invoice's remainder that day:
# - the invoices not settled yet and those settled after the day are read apart, each through its
#   partial index (an OR of the two would read every invoice issued by then);
# - an invoice not settled yet whose kept balance is still its whole base amount never had
#   anything applied or written off (every allocation and write-off takes a non-negative part of
#   it): its amount is its base amount, with nothing to look up; most invoices open on a past day
#   are such;
# - credit-note allocations and write-offs are few: summed once per invoice and hash-joined.
# An invoice whose invoice-currency remainder is zero was settled that day (settled_on <= day),
# so the settled_on test leaves it out with no second sum in the invoice currency.
POSTGRES_AS_OF = """
SELECT customer_id,
       coalesce(sum(amount) FILTER (WHERE bucket = 0), 0),
       coalesce(sum(amount) FILTER (WHERE bucket = 1), 0),
       coalesce(sum(amount) FILTER (WHERE bucket = 2), 0),
       coalesce(sum(amount) FILTER (WHERE bucket = 3), 0),
       coalesce(sum(amount) FILTER (WHERE bucket = 4), 0),
       coalesce(sum(amount) FILTER (WHERE bucket = 5), 0)
  FROM (
    SELECT customer_id, {bucket} AS bucket, {invoice_then} AS amount FROM {invoice} i
     WHERE settled_on IS NULL AND issue_date <= %(as_of)s AND (voided_on IS NULL OR voided_on > %(as_of)s)
    UNION ALL
    SELECT customer_id, {bucket}, {invoice_then} FROM {invoice} i
     WHERE settled_on > %(as_of)s AND issue_date <= %(as_of)s AND (voided_on IS NULL OR voided_on > %(as_of)s)
    UNION ALL
    SELECT customer_id, 5,
           round(base_amount
                 - coalesce((SELECT sum(credit_base) FROM {payment_allocation}
                              WHERE payment_id = p.id AND allocated_on <= %(as_of)s), 0)
                 - coalesce((SELECT sum(carrying_base) FROM {refund}
                              WHERE payment_id = p.id AND refunded_on <= %(as_of)s), 0), 2)
      FROM {payment} p
     WHERE entry_id IS NOT NULL AND received_on <= %(as_of)s AND (failed_on IS NULL OR failed_on > %(as_of)s)
       AND (used_up_on IS NULL OR used_up_on > %(as_of)s)
    UNION ALL
    SELECT customer_id, 5,
           round(base_gross
                 - coalesce((SELECT sum(credit_base) FROM {note_allocation}
                              WHERE credit_note_id = n.id AND allocated_on <= %(as_of)s), 0)
                 - coalesce((SELECT sum(carrying_base) FROM {refund}
                              WHERE credit_note_id = n.id AND refunded_on <= %(as_of)s), 0), 2)
      FROM {credit_note} n
     WHERE issue_date <= %(as_of)s AND (used_up_on IS NULL OR used_up_on > %(as_of)s)
  ) documents
 GROUP BY customer_id
"""

# Each document's column, worked out once in its row: the five buckets by days past due, then (5)
# unapplied credit.
BUCKET = """CASE WHEN due_date >= %(as_of)s THEN 0 WHEN due_date >= %(as_of)s::date - 30 THEN 1
                  WHEN due_date >= %(as_of)s::date - 60 THEN 2 WHEN due_date >= %(as_of)s::date - 90 THEN 3
                  WHEN due_date IS NOT NULL THEN 4 END"""

# What was open on invoice `i` that day. One whose kept balance is still its whole base amount never
# had anything applied or written off (every allocation and write-off takes a non-negative part of
# it), and CASE evaluates the look-ups only for the others: most invoices open on a past day are
# untouched, and were then. (Measured against hash-joining the few credit-note allocations and
# write-offs instead: the look-ups cost less CPU on the full-size data.)
INVOICE_THEN = """CASE WHEN i.open_base = i.base_gross THEN i.base_gross ELSE round(i.base_gross
        - coalesce((SELECT sum(invoice_base) FROM {payment_allocation}
                     WHERE invoice_id = i.id AND allocated_on <= %(as_of)s), 0)
        - coalesce((SELECT sum(invoice_base) FROM {note_allocation}
                     WHERE invoice_id = i.id AND allocated_on <= %(as_of)s), 0)
        - coalesce((SELECT sum(base_amount) FROM {write_off}
                     WHERE invoice_id = i.id AND status = %(approved)s AND written_off_on <= %(as_of)s), 0), 2) END"""

# As of today, when nothing is dated later (the bench's data): the balances kept on the documents
# are what the dated events leave open, so the fastest SQL reads them, through the partial indexes
# on what is not yet settled or used up, in one statement as above.
POSTGRES_KEPT = """
SELECT customer_id,
       coalesce(sum(amount) FILTER (WHERE due_date >= %(as_of)s), 0),
       coalesce(sum(amount) FILTER (WHERE due_date < %(as_of)s AND due_date >= %(as_of)s::date - 30), 0),
       coalesce(sum(amount) FILTER (WHERE due_date < %(as_of)s::date - 30 AND due_date >= %(as_of)s::date - 60), 0),
       coalesce(sum(amount) FILTER (WHERE due_date < %(as_of)s::date - 60 AND due_date >= %(as_of)s::date - 90), 0),
       coalesce(sum(amount) FILTER (WHERE due_date < %(as_of)s::date - 90), 0),
       coalesce(sum(amount) FILTER (WHERE credit), 0)
  FROM (
    SELECT customer_id, false AS credit, due_date, open_base AS amount FROM {invoice}
     WHERE settled_on IS NULL AND status IN ('issued', 'partially_paid') AND issue_date <= %(as_of)s
    UNION ALL
    SELECT customer_id, true, NULL, unapplied_base FROM {payment}
     WHERE used_up_on IS NULL AND unapplied_base > 0 AND entry_id IS NOT NULL AND received_on <= %(as_of)s
       AND (failed_on IS NULL OR failed_on > %(as_of)s)
    UNION ALL
    SELECT customer_id, true, NULL, unapplied_base FROM {credit_note}
     WHERE used_up_on IS NULL AND unapplied_base > 0 AND issue_date <= %(as_of)s
  ) documents
 WHERE amount <> 0
 GROUP BY customer_id
"""

# SQLite has neither LATERAL nor date subtraction: correlated subqueries and julianday().
SQLITE_BUCKETS = """
WITH open_then AS (
    SELECT i.customer_id,
           CAST(julianday(%(as_of)s) - julianday(i.due_date) AS INTEGER) AS days_overdue,
           round(i.base_gross
                 - coalesce((SELECT sum(invoice_base) FROM {payment_allocation}
                              WHERE invoice_id = i.id AND allocated_on <= %(as_of)s), 0)
                 - coalesce((SELECT sum(invoice_base) FROM {note_allocation}
                              WHERE invoice_id = i.id AND allocated_on <= %(as_of)s), 0)
                 - coalesce((SELECT sum(base_amount) FROM {write_off}
                              WHERE invoice_id = i.id AND status = %(approved)s AND written_off_on <= %(as_of)s), 0),
                 2) AS open_base,
           round(i.gross_total
                 - coalesce((SELECT sum(amount) FROM {payment_allocation}
                              WHERE invoice_id = i.id AND allocated_on <= %(as_of)s), 0)
                 - coalesce((SELECT sum(amount) FROM {note_allocation}
                              WHERE invoice_id = i.id AND allocated_on <= %(as_of)s), 0)
                 - coalesce((SELECT sum(amount) FROM {write_off}
                              WHERE invoice_id = i.id AND status = %(approved)s AND written_off_on <= %(as_of)s), 0),
                 2) AS open_amount
      FROM {invoice} i
     WHERE i.issue_date <= %(as_of)s
       AND (i.voided_on IS NULL OR i.voided_on > %(as_of)s)
       AND (i.settled_on IS NULL OR i.settled_on > %(as_of)s)
)
SELECT customer_id,
       sum(CASE WHEN days_overdue <= 0 THEN open_base ELSE 0 END),
       sum(CASE WHEN days_overdue BETWEEN 1 AND 30 THEN open_base ELSE 0 END),
       sum(CASE WHEN days_overdue BETWEEN 31 AND 60 THEN open_base ELSE 0 END),
       sum(CASE WHEN days_overdue BETWEEN 61 AND 90 THEN open_base ELSE 0 END),
       sum(CASE WHEN days_overdue > 90 THEN open_base ELSE 0 END)
  FROM open_then
 WHERE open_amount <> 0
 GROUP BY customer_id
"""

SQLITE_UNAPPLIED = """
SELECT customer_id, round(unapplied, 2) FROM (
    SELECT p.customer_id,
           round(p.base_amount
                 - coalesce((SELECT sum(credit_base) FROM {payment_allocation}
                              WHERE payment_id = p.id AND allocated_on <= %(as_of)s), 0)
                 - coalesce((SELECT sum(carrying_base) FROM {refund}
                              WHERE payment_id = p.id AND refunded_on <= %(as_of)s), 0), 2) AS unapplied
      FROM {payment} p
     WHERE p.entry_id IS NOT NULL AND p.received_on <= %(as_of)s
       AND (p.failed_on IS NULL OR p.failed_on > %(as_of)s)
       AND (p.used_up_on IS NULL OR p.used_up_on > %(as_of)s)
    UNION ALL
    SELECT n.customer_id,
           round(n.base_gross
                 - coalesce((SELECT sum(credit_base) FROM {note_allocation}
                              WHERE credit_note_id = n.id AND allocated_on <= %(as_of)s), 0)
                 - coalesce((SELECT sum(carrying_base) FROM {refund}
                              WHERE credit_note_id = n.id AND refunded_on <= %(as_of)s), 0), 2)
      FROM {credit_note} n
     WHERE n.issue_date <= %(as_of)s
       AND (n.used_up_on IS NULL OR n.used_up_on > %(as_of)s)
)
"""


@dataclass
class FloorRow:
    customer_id: int
    buckets: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(BUCKETS, ZERO))
    unapplied: Decimal = ZERO


def aging_floor(*, as_of: date, connection=None) -> dict[int, FloorRow]:
    """Per customer: the five buckets and the unapplied credit on `as_of` (base currency): one
    plain SQL statement on PostgreSQL, two on SQLite."""
    connection = connection or default_connection
    postgres = connection.vendor == "postgresql"
    tables = _tables()
    params = {"as_of": as_of if postgres else as_of.isoformat(), "approved": APPROVED}
    rows: dict[int, FloorRow] = {}
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if not postgres:
            return _sqlite_floor(cursor, tables, params)
        # The settings the selector's report transaction uses (billing.selectors.report_transaction):
        # no JIT (compiling costs seconds and saves nothing here), and memory enough for the
        # per-customer sums to stay one in-memory hash aggregate.
        cursor.execute("SELECT set_config('jit', 'off', true), set_config('work_mem', %s, true)", [REPORT_WORK_MEM])
        sql = POSTGRES_KEPT if as_of >= timezone.localdate() else POSTGRES_AS_OF
        cursor.execute(sql.format(invoice_then=INVOICE_THEN.format(**tables), bucket=BUCKET, **tables), params)
        for customer_id, *amounts, unapplied in cursor.fetchall():
            rows[customer_id] = FloorRow(customer_id, dict(zip(BUCKETS, amounts, strict=True)), unapplied)
    return rows


def _sqlite_floor(cursor, tables: dict[str, str], params: dict) -> dict[int, FloorRow]:
    rows: dict[int, FloorRow] = {}
    cursor.execute(SQLITE_BUCKETS.format(**tables), params)
    for customer_id, *amounts in cursor.fetchall():
        row = rows[customer_id] = FloorRow(customer_id)
        for bucket, amount in zip(BUCKETS, amounts, strict=True):
            row.buckets[bucket] = quantize(Decimal(str(amount)))
    cursor.execute(SQLITE_UNAPPLIED.format(**tables), params)
    unapplied: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for customer_id, amount in cursor.fetchall():
        unapplied[customer_id] += quantize(Decimal(str(amount)))
    for customer_id, amount in unapplied.items():
        if amount:
            rows.setdefault(customer_id, FloorRow(customer_id)).unapplied = amount
    return rows


def totals(rows: dict[int, FloorRow]) -> dict[str, Decimal]:
    """The buckets and the unapplied credit summed over all customers."""
    summed = dict.fromkeys([*BUCKETS, "unapplied"], ZERO)
    for row in rows.values():
        for bucket in BUCKETS:
            summed[bucket] += row.buckets[bucket]
        summed["unapplied"] += row.unapplied
    return summed
