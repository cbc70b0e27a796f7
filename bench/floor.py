"""The raw-SQL floor of the aging (issue 6, measure 3): the fastest plain SQL we could write that
computes the same per-customer buckets as `billing.selectors.aging(as_of=...)`.

The rule it follows is the selector's, in base currency, as the books stood at the end of `as_of`:
- an invoice counts when it was issued on or before `as_of`, not voided by then and not settled by
  then (`settled_on <= as_of` means it was at zero that day and ever since); what was open on it is
  `base_gross` less the `invoice_base` of payment and credit-note allocations dated on or before
  `as_of` and the `base_amount` of write-offs approved on or before then, rounded to the cent;
  an invoice whose invoice-currency remainder is zero is left out, as the selector does;
- it falls in a bucket by days past due on `as_of`: current (not yet due), 1–30, 31–60, 61–90, 90+;
- unapplied credit: posted payments received by then, not failed and not used up by then, less
  what their allocations (`credit_base`) and refunds (`carrying_base`) had used by then; and credit
  notes issued by then, not used up by then, likewise. Each document rounded to the cent.

The bench times it next to the selector in the same run and checks that both agree customer by
customer (a correctness check, not a timing one). On PostgreSQL it runs with JIT off for its
transaction: the planner's estimate of the per-invoice look-ups otherwise crosses jit_above_cost
and compiling costs seconds. PostgreSQL gets LATERAL joins over the
allocation indexes and FILTERed sums (for today, the balances kept on the documents);
SQLite (the --small path on a laptop) a portable variant.
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
from billing.selectors import BUCKETS
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


# One row per customer with anything open: the five buckets' sums. LATERAL joins read each open
# invoice's allocations through the (invoice_id) indexes, one pass per table for both currencies.
POSTGRES_BUCKETS = """
WITH open_then AS (
    SELECT i.customer_id,
           %(as_of)s::date - i.due_date AS days_overdue,
           round(i.base_gross - coalesce(pa.base, 0) - coalesce(ca.base, 0) - coalesce(wo.base, 0), 2) AS open_base,
           round(i.gross_total - coalesce(pa.amount, 0) - coalesce(ca.amount, 0) - coalesce(wo.amount, 0), 2)
               AS open_amount
      FROM {invoice} i
      LEFT JOIN LATERAL (SELECT sum(invoice_base) AS base, sum(amount) AS amount FROM {payment_allocation}
                          WHERE invoice_id = i.id AND allocated_on <= %(as_of)s) pa ON true
      LEFT JOIN LATERAL (SELECT sum(invoice_base) AS base, sum(amount) AS amount FROM {note_allocation}
                          WHERE invoice_id = i.id AND allocated_on <= %(as_of)s) ca ON true
      LEFT JOIN LATERAL (SELECT sum(base_amount) AS base, sum(amount) AS amount FROM {write_off}
                          WHERE invoice_id = i.id AND status = %(approved)s AND written_off_on <= %(as_of)s) wo ON true
     WHERE i.issue_date <= %(as_of)s
       AND (i.voided_on IS NULL OR i.voided_on > %(as_of)s)
       AND (i.settled_on IS NULL OR i.settled_on > %(as_of)s)
)
SELECT customer_id,
       coalesce(sum(open_base) FILTER (WHERE days_overdue <= 0), 0),
       coalesce(sum(open_base) FILTER (WHERE days_overdue BETWEEN 1 AND 30), 0),
       coalesce(sum(open_base) FILTER (WHERE days_overdue BETWEEN 31 AND 60), 0),
       coalesce(sum(open_base) FILTER (WHERE days_overdue BETWEEN 61 AND 90), 0),
       coalesce(sum(open_base) FILTER (WHERE days_overdue > 90), 0)
  FROM open_then
 WHERE open_amount <> 0
 GROUP BY customer_id
"""

POSTGRES_UNAPPLIED = """
SELECT customer_id, sum(unapplied) FROM (
    SELECT p.customer_id,
           round(p.base_amount - coalesce(a.used, 0) - coalesce(r.used, 0), 2) AS unapplied
      FROM {payment} p
      LEFT JOIN LATERAL (SELECT sum(credit_base) AS used FROM {payment_allocation}
                          WHERE payment_id = p.id AND allocated_on <= %(as_of)s) a ON true
      LEFT JOIN LATERAL (SELECT sum(carrying_base) AS used FROM {refund}
                          WHERE payment_id = p.id AND refunded_on <= %(as_of)s) r ON true
     WHERE p.entry_id IS NOT NULL AND p.received_on <= %(as_of)s
       AND (p.failed_on IS NULL OR p.failed_on > %(as_of)s)
       AND (p.used_up_on IS NULL OR p.used_up_on > %(as_of)s)
    UNION ALL
    SELECT n.customer_id,
           round(n.base_gross - coalesce(a.used, 0) - coalesce(r.used, 0), 2)
      FROM {credit_note} n
      LEFT JOIN LATERAL (SELECT sum(credit_base) AS used FROM {note_allocation}
                          WHERE credit_note_id = n.id AND allocated_on <= %(as_of)s) a ON true
      LEFT JOIN LATERAL (SELECT sum(carrying_base) AS used FROM {refund}
                          WHERE credit_note_id = n.id AND refunded_on <= %(as_of)s) r ON true
     WHERE n.issue_date <= %(as_of)s
       AND (n.used_up_on IS NULL OR n.used_up_on > %(as_of)s)
) documents
 GROUP BY customer_id
HAVING sum(unapplied) <> 0
"""

# As of today, when nothing is dated later (the bench's data): the balances kept on the documents
# are what the dated events leave open, so the fastest SQL reads them through the partial indexes
# on what is not yet settled or used up, as the selector does.
POSTGRES_KEPT_BUCKETS = """
SELECT customer_id,
       coalesce(sum(open_base) FILTER (WHERE due_date >= %(as_of)s), 0),
       coalesce(sum(open_base) FILTER (WHERE due_date < %(as_of)s AND due_date >= %(as_of)s::date - 30), 0),
       coalesce(sum(open_base) FILTER (WHERE due_date < %(as_of)s::date - 30 AND due_date >= %(as_of)s::date - 60), 0),
       coalesce(sum(open_base) FILTER (WHERE due_date < %(as_of)s::date - 60 AND due_date >= %(as_of)s::date - 90), 0),
       coalesce(sum(open_base) FILTER (WHERE due_date < %(as_of)s::date - 90), 0)
  FROM {invoice}
 WHERE settled_on IS NULL AND status IN ('issued', 'partially_paid') AND issue_date <= %(as_of)s
 GROUP BY customer_id
"""

POSTGRES_KEPT_UNAPPLIED = """
SELECT customer_id, sum(unapplied_base) FROM (
    SELECT customer_id, unapplied_base FROM {payment}
     WHERE used_up_on IS NULL AND unapplied_base > 0 AND entry_id IS NOT NULL AND received_on <= %(as_of)s
       AND (failed_on IS NULL OR failed_on > %(as_of)s)
    UNION ALL
    SELECT customer_id, unapplied_base FROM {credit_note}
     WHERE used_up_on IS NULL AND unapplied_base > 0 AND issue_date <= %(as_of)s
) documents
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
    """Per customer: the five buckets and the unapplied credit on `as_of` (base currency), in two
    plain SQL statements."""
    connection = connection or default_connection
    postgres = connection.vendor == "postgresql"
    tables = _tables()
    params = {"as_of": as_of if postgres else as_of.isoformat(), "approved": APPROVED}
    rows: dict[int, FloorRow] = {}
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if postgres:
            # The planner prices the per-invoice look-ups high enough to JIT-compile the query,
            # which costs seconds and saves nothing on a few hundred thousand rows.
            cursor.execute("SET LOCAL jit = off")
        kept = postgres and as_of >= timezone.localdate()
        if kept:
            buckets_sql, unapplied_sql = POSTGRES_KEPT_BUCKETS, POSTGRES_KEPT_UNAPPLIED
        elif postgres:
            buckets_sql, unapplied_sql = POSTGRES_BUCKETS, POSTGRES_UNAPPLIED
        else:
            buckets_sql, unapplied_sql = SQLITE_BUCKETS, SQLITE_UNAPPLIED
        cursor.execute(buckets_sql.format(**tables), params)
        for customer_id, *amounts in cursor.fetchall():
            row = rows[customer_id] = FloorRow(customer_id)
            for bucket, amount in zip(BUCKETS, amounts, strict=True):
                row.buckets[bucket] = quantize(Decimal(str(amount)))
        cursor.execute(unapplied_sql.format(**tables), params)
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
