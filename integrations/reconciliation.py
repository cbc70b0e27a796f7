"""The reconciliation report of one connection: do Concord and the accounting package hold the
same books?

Per synced entity it gives the count and the money totals on each side (per currency), the
records found on one side only, and the linked records whose canonical fields differ (with both
values); then the AR balance of each customer on both sides, listing the customers whose balances
differ. It only reads: nothing is pulled, pushed, linked or archived.

How each side is read:
- the package's records through the adapter, `changes(entity, cursor="")` page by page from the
  beginning (tombstones skipped; a record read twice where pages overlap counts once);
- Concord's records as the engine sees them: those `ConcordStore.syncs()` (no drafts, no pending
  payments), linked through `ExternalRef`, compared as `ConcordStore.to_record()` gives them.

What counts, and what is compared:
- counts and totals are of live records: voided invoices, payments and credit notes, inactive
  customers and products are counted apart ("inactive") and not compared — one side may keep a
  voided record the other deleted;
- two linked records compare on every canonical field (`Record.fields()`) except those under an
  open Conflict (a person is deciding them already); two records voided on both sides agree;
- a customer's AR in Concord is `Customer.ar_balance`; in the package it is the balance the
  adapter reports (`CustomerRecord.balance`), or, when it reports none, the customer's open
  invoice balances less unapplied payments and unused credit notes, as Concord computes its own.

Memory stays bounded whatever the size of the books: one page of remote records at a time, the
ids already read of the entity being read (to count a record read twice once), per-customer
figures, and at most MAX_LISTED rows of differences per entity and of customer balances (the rest
counted). The two sides are read one after the other, not at one instant: a sync running
meanwhile shows up as differences that the next report no longer has.

The report is a dataclass; `report_to_json` / `report_from_json` turn it into plain JSON and back
(a reconciliation job keeps it as its result file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone

from billing.models import CreditNote, Invoice, Payment, Product, Refund
from crm.models import Customer
from jobs import services as jobs
from jobs.models import BackgroundJob

from .core import canonical
from .core.errors import SyncError
from .local import UNKNOWN_METHOD, ConcordStore
from .models import ENTITY_CHOICES, Conflict, Connection, EntitySetting, ExternalRef
from .providers import build_adapter
from .services import current_mapping

# Rows of differences kept per entity, and of customer balances; the rest are counted.
MAX_LISTED = 500
# Local records read per query while streaming them.
LOCAL_CHUNK = 2000
JOB_KIND = "sync_reconciliation"
JOB_HINT = (
    "Nothing was changed on either side: start the report again. If it fails again, check the "
    "connection's status and its latest run."
)

# The money summed per entity, by canonical field (in the record's own currency).
MEASURES: dict[str, tuple[str, ...]] = {
    canonical.CUSTOMER: ("balance",),
    canonical.PRODUCT: (),
    canonical.INVOICE: ("total", "balance"),
    canonical.CREDIT_NOTE: ("total", "remaining"),
    canonical.PAYMENT: ("amount", "unapplied"),
    canonical.REFUND: ("amount",),
}

# Kinds of difference.
DIFFERS = "differs"
LOCAL_ONLY = "local_only"
REMOTE_ONLY = "remote_only"
UNREADABLE = "unreadable"

Progress = Callable[[int, str], None]


# --- The report ------------------------------------------------------------------------------------


@dataclass
class Side:
    """One side's figures for one entity."""

    count: int = 0
    # Voided documents, inactive customers and products: shown, not compared.
    inactive: int = 0
    # measure → currency → sum, e.g. {"total": {"USD": Decimal("150.00")}}.
    amounts: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def add(self, measure: str, currency: str, amount: Decimal | None) -> None:
        if amount is None:
            return
        by_currency = self.amounts.setdefault(measure, {})
        by_currency[currency] = by_currency.get(currency, Decimal("0")) + amount


@dataclass
class EntityReport:
    entity: str
    measures: tuple[str, ...]
    local: Side = field(default_factory=Side)
    remote: Side = field(default_factory=Side)
    local_only: int = 0
    remote_only: int = 0
    differing: int = 0
    # Package records the adapter could not read (they are in the sync's quarantine too).
    unreadable: int = 0

    @property
    def label(self) -> str:
        return dict(ENTITY_CHOICES).get(self.entity, self.entity)

    @property
    def currencies(self) -> list[str]:
        found = {currency for side in (self.local, self.remote) for sums in side.amounts.values() for currency in sums}
        return sorted(found)

    def amounts_agree(self, measure: str) -> bool:
        local, remote = self.local.amounts.get(measure, {}), self.remote.amounts.get(measure, {})
        return all(local.get(c, Decimal("0")) == remote.get(c, Decimal("0")) for c in set(local) | set(remote))

    @property
    def counts_agree(self) -> bool:
        return self.local.count == self.remote.count

    @property
    def agrees(self) -> bool:
        return (
            self.counts_agree
            and all(self.amounts_agree(measure) for measure in self.measures)
            and not (self.local_only or self.remote_only or self.differing or self.unreadable)
        )

    @property
    def differences(self) -> int:
        return self.local_only + self.remote_only + self.differing + self.unreadable


@dataclass
class FieldDifference:
    name: str
    # Plain values as Record.fields() gives them (None where a side has no such record).
    local: Any
    remote: Any


@dataclass
class Difference:
    entity: str
    kind: str  # DIFFERS, LOCAL_ONLY, REMOTE_ONLY or UNREADABLE
    # What a person recognises the record by: a name, a number, an amount and a date.
    label: str
    local_id: int | None = None
    remote_id: str = ""
    # The local record's customer, for a link to the page that shows it.
    customer_id: int | None = None
    fields: list[FieldDifference] = field(default_factory=list)
    note: str = ""


@dataclass
class BalanceDifference:
    """A customer whose AR differs between the books (None: the side has no such customer)."""

    label: str
    currency: str
    local: Decimal | None
    remote: Decimal | None
    local_id: int | None = None
    remote_id: str = ""
    # "reported" (the package's own figure) or "derived" (summed from its documents).
    remote_source: str = ""

    @property
    def gap(self) -> Decimal:
        return (self.local or Decimal("0")) - (self.remote or Decimal("0"))


@dataclass
class Report:
    connection_id: int
    connection_name: str
    provider: str
    started_at: datetime
    finished_at: datetime | None = None
    entities: list[EntityReport] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    # Differences counted but not listed (beyond MAX_LISTED of an entity).
    differences_omitted: int = 0
    balances_compared: int = 0
    balance_differences: list[BalanceDifference] = field(default_factory=list)
    balance_differences_omitted: int = 0

    @property
    def balances_differing(self) -> int:
        return len(self.balance_differences) + self.balance_differences_omitted

    @property
    def agrees(self) -> bool:
        return all(row.agrees for row in self.entities) and not self.balances_differing


# --- Local figures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LocalRules:
    """How one entity's Concord records count: mirrors what ConcordStore.to_record() gives
    (`active`/`voided` and the computed amounts), read from the rows without building records."""

    model: type
    live: Callable[[Any], bool]
    # measure → the model field holding it.
    amounts: dict[str, str]
    customer: Callable[[Any], int | None]


LOCAL_RULES: dict[str, _LocalRules] = {
    canonical.CUSTOMER: _LocalRules(
        Customer, lambda c: c.status != Customer.Status.ARCHIVED, {"balance": "ar_balance"}, lambda c: c.pk
    ),
    canonical.PRODUCT: _LocalRules(Product, lambda p: p.is_active, {}, lambda p: None),
    canonical.INVOICE: _LocalRules(
        Invoice,
        lambda i: i.status != Invoice.Status.VOID,
        {"total": "gross_total", "balance": "open_amount"},
        lambda i: i.customer_id,
    ),
    canonical.CREDIT_NOTE: _LocalRules(
        CreditNote, lambda n: True, {"total": "gross_total", "remaining": "unapplied_amount"}, lambda n: n.customer_id
    ),
    canonical.PAYMENT: _LocalRules(
        Payment,
        lambda p: p.status != Payment.Status.FAILED,
        {"amount": "amount", "unapplied": "unapplied_amount"},
        lambda p: p.customer_id,
    ),
    canonical.REFUND: _LocalRules(Refund, lambda r: True, {"amount": "amount"}, lambda r: r.customer_id),
}


def _remote_live(record: canonical.Record) -> bool:
    return getattr(record, "active", True) and not getattr(record, "voided", False)


def _remote_label(entity: str, record: canonical.Record) -> str:
    if entity == canonical.CUSTOMER:
        return record.display_name
    if entity == canonical.PRODUCT:
        return f"{record.sku} {record.name}".strip()
    if entity in (canonical.INVOICE, canonical.CREDIT_NOTE):
        return record.number
    if entity == canonical.PAYMENT:
        return f"{record.amount} {record.currency} on {record.received_on.isoformat()}"
    if entity == canonical.REFUND:
        return f"Refund of {record.amount} {record.currency} on {record.refunded_on.isoformat()}"
    return ""


# --- What counts as the same ------------------------------------------------------------------------


def _terms_unsaid(mine, theirs) -> bool:
    # ConcordStore: a package with no terms (None) leaves Concord's terms as they are.
    return theirs is None


def _method_unsaid(mine, theirs) -> bool:
    # ConcordStore: a payment or refund whose method the package does not give is "other" here.
    return theirs == "" and mine == UNKNOWN_METHOD


def _line_field_unsaid(name: str, mine, theirs) -> bool:
    # ConcordStore: a line with no revenue account takes the product's, or the default one.
    return name == "revenue_account" and theirs == ""


def _lines_same(mine, theirs) -> bool:
    if not isinstance(mine, list) or not isinstance(theirs, list) or len(mine) != len(theirs):
        return False
    return all(
        ours.get(name) == other.get(name) or _line_field_unsaid(name, ours.get(name), other.get(name))
        for ours, other in zip(mine, theirs, strict=True)
        for name in set(ours) | set(other)
    )


# Fields where the package may say nothing and Concord, pulling the record, filled in its own
# value (ConcordStore's rules, integrations/local.py): the package's silence is no difference.
SAME_WHEN: dict[tuple[str, str], Callable[[Any, Any], bool]] = {
    (canonical.CUSTOMER, "payment_terms_days"): _terms_unsaid,
    (canonical.PAYMENT, "method"): _method_unsaid,
    (canonical.REFUND, "method"): _method_unsaid,
    (canonical.INVOICE, "lines"): _lines_same,
    (canonical.CREDIT_NOTE, "lines"): _lines_same,
}


def same_value(entity: str, name: str, mine, theirs) -> bool:
    if mine == theirs:
        return True
    rule = SAME_WHEN.get((entity, name))
    return rule is not None and rule(mine, theirs)


# --- Reading and comparing ---------------------------------------------------------------------------


class _Listing:
    """The differences of one entity: the first MAX_LISTED kept, the rest counted."""

    def __init__(self, report: Report, row: EntityReport):
        self.report, self.row, self.listed = report, row, 0

    def add(self, difference: Difference) -> None:
        counter = {DIFFERS: "differing", LOCAL_ONLY: "local_only", REMOTE_ONLY: "remote_only"}.get(
            difference.kind, "unreadable"
        )
        setattr(self.row, counter, getattr(self.row, counter) + 1)
        if self.listed < MAX_LISTED:
            self.report.differences.append(difference)
            self.listed += 1
        else:
            self.report.differences_omitted += 1


@dataclass
class _RemoteCustomer:
    currency: str
    label: str
    active: bool
    reported: Decimal | None


class _Reconciler:
    def __init__(self, connection: Connection, progress: Progress | None):
        self.connection = connection
        self.progress = progress or (lambda done, message: None)
        self.store = ConcordStore(connection=connection)
        self.done = 0
        self.report = Report(
            connection_id=connection.pk,
            connection_name=connection.name,
            provider=connection.get_provider_display(),
            started_at=timezone.now(),
        )
        # Per package customer (remote id): what the customer record says, and the AR summed
        # from the package's documents (used where the package reports no balance).
        self.remote_customers: dict[str, _RemoteCustomer] = {}
        self.derived_ar: dict[str, Decimal] = {}

    def run(self) -> Report:
        adapter = build_adapter(self.connection, mapping=current_mapping(self.connection))
        off = set(
            EntitySetting.objects.filter(connection=self.connection, direction=EntitySetting.Direction.OFF).values_list(
                "entity", flat=True
            )
        )
        entities = [entity for entity in adapter.entities if entity not in off]
        for entity in entities:
            row = EntityReport(entity=entity, measures=MEASURES.get(entity, ()))
            self.report.entities.append(row)
            listing = _Listing(self.report, row)
            seen = self._read_remote(adapter, entity, row, listing)
            self._read_local(entity, row, listing, seen)
        if canonical.CUSTOMER in entities:
            self._compare_balances(next(row for row in self.report.entities if row.entity == canonical.CUSTOMER))
        self.report.finished_at = timezone.now()
        return self.report

    def _tick(self, by: int, message: str) -> None:
        self.done += by
        self.progress(self.done, message)

    # The package's side.

    def _read_remote(self, adapter, entity: str, row: EntityReport, listing: _Listing) -> set[str]:
        seen: set[str] = set()
        cursor = ""
        what = row.label.lower()
        while True:
            page = adapter.changes(entity, cursor=cursor)
            fresh = [state for state in page.states if not state.deleted and state.remote_id not in seen]
            seen.update(state.remote_id for state in fresh)
            self._compare_page(entity, fresh, row, listing)
            self._tick(len(page.states), f"Reading {what} from {self.report.provider}: {len(seen)} so far")
            if page.complete or not page.states:
                return seen
            if page.next_cursor == cursor:
                raise SyncError(f"The package's {what} did not page on from {cursor!r}.")
            cursor = page.next_cursor

    def _compare_page(self, entity: str, states, row: EntityReport, listing: _Listing) -> None:
        rules = LOCAL_RULES[entity]
        readable = []
        for state in states:
            if state.record is None:
                listing.add(
                    Difference(
                        entity,
                        UNREADABLE,
                        f"{entity} {state.remote_id}",
                        remote_id=state.remote_id,
                        note=str(state.error),
                    )
                )
                continue
            readable.append(state)
            record = state.record
            if not _remote_live(record):
                row.remote.inactive += 1
            else:
                row.remote.count += 1
                # A customer's balance is added once every document is read (_compare_balances):
                # the package may report none, and then it is summed from the documents.
                for measure in row.measures if entity != canonical.CUSTOMER else ():
                    row.remote.add(measure, record.currency, getattr(record, measure))
            self._note_remote_ar(entity, state.remote_id, record)
        if not readable:
            return
        ids = [state.remote_id for state in readable]
        links = dict(
            ExternalRef.objects.filter(connection=self.connection, entity=entity, remote_id__in=ids).values_list(
                "remote_id", "local_id"
            )
        )
        held: dict[str, set[str]] = {}
        for remote_id, names in Conflict.objects.filter(
            connection=self.connection, entity=entity, status=Conflict.Status.OPEN, remote_id__in=ids
        ).values_list("remote_id", "fields"):
            held.setdefault(remote_id, set()).update(names)
        local_objects = rules.model.objects.in_bulk(list(links.values()))
        remote_id_of = _CachedRemoteIds(self.connection)
        for state in readable:
            record = state.record
            label = _remote_label(entity, record)
            local_id = links.get(state.remote_id)
            if local_id is None:
                listing.add(Difference(entity, REMOTE_ONLY, label, remote_id=state.remote_id))
                continue
            obj = local_objects.get(local_id)
            if obj is None:
                listing.add(
                    Difference(
                        entity,
                        REMOTE_ONLY,
                        label,
                        local_id=local_id,
                        remote_id=state.remote_id,
                        note="Linked to a record Concord no longer has.",
                    )
                )
                continue
            if not self.store.syncs(entity, obj) or (not _remote_live(record) and not rules.live(obj)):
                continue  # gone from both books alike
            try:
                mine = self.store.to_record(entity, obj, remote_id_of=remote_id_of).fields()
            except SyncError as unreadable:
                listing.add(
                    Difference(
                        entity,
                        DIFFERS,
                        label,
                        local_id=local_id,
                        remote_id=state.remote_id,
                        customer_id=rules.customer(obj),
                        note=f"Concord's record cannot be compared: {unreadable}",
                    )
                )
                continue
            theirs = record.fields()
            skipped = held.get(state.remote_id, set())
            fields = [
                FieldDifference(name, mine.get(name), theirs.get(name))
                for name in sorted(set(mine) | set(theirs))
                if name not in skipped and not same_value(entity, name, mine.get(name), theirs.get(name))
            ]
            if fields:
                listing.add(
                    Difference(
                        entity,
                        DIFFERS,
                        label,
                        local_id=local_id,
                        remote_id=state.remote_id,
                        customer_id=rules.customer(obj),
                        fields=fields,
                        note="Open conflict on " + ", ".join(sorted(skipped)) if skipped else "",
                    )
                )
        remote_id_of.clear()

    def _note_remote_ar(self, entity: str, remote_id: str, record) -> None:
        if entity == canonical.CUSTOMER:
            self.remote_customers[remote_id] = _RemoteCustomer(
                record.currency, record.display_name, record.active, record.balance
            )
            return
        if getattr(record, "voided", False):
            return
        owed = {
            canonical.INVOICE: lambda: record.balance,
            canonical.PAYMENT: lambda: -record.unapplied if record.unapplied is not None else None,
            canonical.CREDIT_NOTE: lambda: -record.remaining if record.remaining is not None else None,
        }.get(entity)
        amount = owed() if owed else None
        if amount:
            key = record.customer_remote_id
            self.derived_ar[key] = self.derived_ar.get(key, Decimal("0")) + amount

    # Concord's side.

    def _read_local(self, entity: str, row: EntityReport, listing: _Listing, seen: set[str]) -> None:
        rules = LOCAL_RULES[entity]
        links = ExternalRef.objects.filter(connection=self.connection, entity=entity, local_id=OuterRef("pk"))
        rows = rules.model.objects.annotate(
            linked_remote_id=Subquery(links.values("remote_id")[:1]),
            linked_remote_deleted=Subquery(links.values("remote_deleted")[:1]),
        ).order_by("pk")
        what = row.label.lower()
        read = 0
        for obj in rows.iterator(chunk_size=LOCAL_CHUNK):
            read += 1
            if read % LOCAL_CHUNK == 0:
                self._tick(LOCAL_CHUNK, f"Reading {what} in Concord: {read} so far")
            if not self.store.syncs(entity, obj):
                continue
            live = rules.live(obj)
            if not live:
                row.local.inactive += 1
            else:
                row.local.count += 1
                for measure in row.measures:
                    row.local.add(measure, obj.currency, getattr(obj, rules.amounts[measure]))
            if obj.linked_remote_id is None:
                listing.add(Difference(entity, LOCAL_ONLY, str(obj), local_id=obj.pk, customer_id=rules.customer(obj)))
            elif obj.linked_remote_id not in seen and live:
                listing.add(
                    Difference(
                        entity,
                        LOCAL_ONLY,
                        str(obj),
                        local_id=obj.pk,
                        remote_id=obj.linked_remote_id,
                        customer_id=rules.customer(obj),
                        note="Deleted in the package."
                        if obj.linked_remote_deleted
                        else "Linked to a record the package no longer has.",
                    )
                )
        self._tick(read % LOCAL_CHUNK, f"Read {what} in Concord: {read}")

    # AR per customer.

    def _remote_ar(self, remote_id: str) -> tuple[Decimal | None, str]:
        customer = self.remote_customers.get(remote_id)
        if customer is None:
            return None, ""
        if customer.reported is not None:
            return customer.reported, "reported"
        return self.derived_ar.get(remote_id, Decimal("0.00")), "derived"

    def _compare_balances(self, row: EntityReport) -> None:
        report = self.report
        for remote_id, customer in self.remote_customers.items():
            if customer.active:
                row.remote.add("balance", customer.currency, self._remote_ar(remote_id)[0])
        matched: set[str] = set()

        def differs(difference: BalanceDifference) -> None:
            if len(report.balance_differences) < MAX_LISTED:
                report.balance_differences.append(difference)
            else:
                report.balance_differences_omitted += 1

        links = ExternalRef.objects.filter(
            connection=self.connection, entity=canonical.CUSTOMER, local_id=OuterRef("pk")
        ).values("remote_id")[:1]
        customers = (
            Customer.objects.annotate(linked_remote_id=Subquery(links))
            .order_by("pk")
            .values_list("pk", "display_name", "currency", "ar_balance", "linked_remote_id")
        )
        for local_id, name, currency, balance, remote_id in customers.iterator(chunk_size=LOCAL_CHUNK):
            report.balances_compared += 1
            remote, source = self._remote_ar(remote_id) if remote_id else (None, "")
            if remote is not None:
                matched.add(remote_id)
            remote_currency = self.remote_customers[remote_id].currency if remote is not None else currency
            if balance != (remote or Decimal("0")) or remote_currency != currency:
                differs(
                    BalanceDifference(
                        name,
                        currency,
                        balance,
                        remote,
                        local_id=local_id,
                        remote_id=remote_id or "",
                        remote_source=source,
                    )
                )
        for remote_id, customer in self.remote_customers.items():
            if remote_id in matched:
                continue
            report.balances_compared += 1
            remote, source = self._remote_ar(remote_id)
            if remote:
                differs(
                    BalanceDifference(
                        customer.label, customer.currency, None, remote, remote_id=remote_id, remote_source=source
                    )
                )


class _CachedRemoteIds:
    """`remote_id_of` for ConcordStore.to_record over one page: the same customer or product is
    named by many documents, and is looked up once."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.cache: dict[tuple[str, int], str | None] = {}

    def __call__(self, entity: str, local_id: int) -> str | None:
        key = (entity, local_id)
        if key not in self.cache:
            self.cache[key] = (
                ExternalRef.objects.filter(connection=self.connection, entity=entity, local_id=local_id)
                .values_list("remote_id", flat=True)
                .first()
            )
        return self.cache[key]

    def clear(self) -> None:
        self.cache.clear()


def reconcile(*, connection: Connection, progress: Progress | None = None) -> Report:
    """Compare Concord's books with the package's for `connection` (see the module's docstring).
    `progress(done, message)` is called as records are read. Refused for a connection with no
    usable grant; the adapter's errors (rate limits, the package down) propagate."""
    if connection.status in (Connection.Status.CONNECTING, Connection.Status.NEEDS_REAUTHORIZATION):
        raise ValidationError(
            f"{connection} is {connection.get_status_display().lower()}: connect it to read the package's books."
        )
    return _Reconciler(connection, progress).run()


# --- JSON ------------------------------------------------------------------------------------------


def _money_out(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _money_in(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _side_out(side: Side) -> dict:
    return {
        "count": side.count,
        "inactive": side.inactive,
        "amounts": {
            measure: {currency: str(amount) for currency, amount in sums.items()}
            for measure, sums in side.amounts.items()
        },
    }


def _side_in(data: dict) -> Side:
    return Side(
        count=data["count"],
        inactive=data["inactive"],
        amounts={
            measure: {currency: Decimal(amount) for currency, amount in sums.items()}
            for measure, sums in data["amounts"].items()
        },
    )


def report_to_json(report: Report) -> dict:
    """The report as JSON-safe data: amounts as strings (exact), times in ISO 8601."""
    return {
        "version": 1,
        "connection_id": report.connection_id,
        "connection_name": report.connection_name,
        "provider": report.provider,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "agrees": report.agrees,
        "entities": [
            {
                "entity": row.entity,
                "measures": list(row.measures),
                "local": _side_out(row.local),
                "remote": _side_out(row.remote),
                "local_only": row.local_only,
                "remote_only": row.remote_only,
                "differing": row.differing,
                "unreadable": row.unreadable,
                "agrees": row.agrees,
            }
            for row in report.entities
        ],
        "differences": [
            {
                "entity": d.entity,
                "kind": d.kind,
                "label": d.label,
                "local_id": d.local_id,
                "remote_id": d.remote_id,
                "customer_id": d.customer_id,
                "fields": [{"name": f.name, "local": f.local, "remote": f.remote} for f in d.fields],
                "note": d.note,
            }
            for d in report.differences
        ],
        "differences_omitted": report.differences_omitted,
        "balances_compared": report.balances_compared,
        "balance_differences": [
            {
                "label": b.label,
                "currency": b.currency,
                "local": _money_out(b.local),
                "remote": _money_out(b.remote),
                "local_id": b.local_id,
                "remote_id": b.remote_id,
                "remote_source": b.remote_source,
            }
            for b in report.balance_differences
        ],
        "balance_differences_omitted": report.balance_differences_omitted,
    }


def report_from_json(data: dict) -> Report:
    """The report again from `report_to_json`'s output (the computed flags are recomputed)."""
    return Report(
        connection_id=data["connection_id"],
        connection_name=data["connection_name"],
        provider=data["provider"],
        started_at=datetime.fromisoformat(data["started_at"]),
        finished_at=datetime.fromisoformat(data["finished_at"]) if data["finished_at"] else None,
        entities=[
            EntityReport(
                entity=row["entity"],
                measures=tuple(row["measures"]),
                local=_side_in(row["local"]),
                remote=_side_in(row["remote"]),
                local_only=row["local_only"],
                remote_only=row["remote_only"],
                differing=row["differing"],
                unreadable=row["unreadable"],
            )
            for row in data["entities"]
        ],
        differences=[
            Difference(
                entity=d["entity"],
                kind=d["kind"],
                label=d["label"],
                local_id=d["local_id"],
                remote_id=d["remote_id"],
                customer_id=d["customer_id"],
                fields=[FieldDifference(f["name"], f["local"], f["remote"]) for f in d["fields"]],
                note=d["note"],
            )
            for d in data["differences"]
        ],
        differences_omitted=data["differences_omitted"],
        balances_compared=data["balances_compared"],
        balance_differences=[
            BalanceDifference(
                label=b["label"],
                currency=b["currency"],
                local=_money_in(b["local"]),
                remote=_money_in(b["remote"]),
                local_id=b["local_id"],
                remote_id=b["remote_id"],
                remote_source=b["remote_source"],
            )
            for b in data["balance_differences"]
        ],
        balance_differences_omitted=data["balance_differences_omitted"],
    )


def summary(report: Report) -> str:
    """One line for a job's outcome or a command's last line."""
    if report.agrees:
        return "The books agree: every count, total and customer balance is the same on both sides."
    differing = sum(row.differences for row in report.entities)
    rows = [row.label.lower() for row in report.entities if not row.agrees]
    return (
        f"The books differ ({', '.join(rows) or 'customer balances'}): {differing} record"
        f"{'s' if differing != 1 else ''} and {report.balances_differing} customer balance"
        f"{'s' if report.balances_differing != 1 else ''}."
    )


# --- As a background job ---------------------------------------------------------------------------


def start_reconciliation(*, actor, connection: Connection) -> BackgroundJob:
    """A job computing the report, queued once the transaction commits."""
    from . import reconciliation_tasks

    if connection.status in (Connection.Status.CONNECTING, Connection.Status.NEEDS_REAUTHORIZATION):
        raise ValidationError(
            f"{connection} is {connection.get_status_display().lower()}: connect it to read the package's books."
        )
    job = jobs.create_job(
        kind=JOB_KIND,
        label=f"Reconciliation of {connection}",
        actor=actor,
        params={"connection_id": connection.pk},
    )
    return jobs.enqueue(job=job, task=reconciliation_tasks.reconcile_connection)


def run_job(*, job_id: int) -> None:
    """Compute the report of the job's connection with the job's progress, and keep it as the job's
    result file (JSON). A job already finished (a redelivered task) is left as it is."""
    job = jobs.start(job_id=job_id, message="Reading the package's books…")
    if job.is_finished:
        return
    connection = Connection.objects.get(pk=job.params["connection_id"])

    def work(job_id: int) -> None:
        report = reconcile(
            connection=connection,
            progress=lambda done, message: jobs.advance(job_id=job_id, done=done, message=message),
        )
        body = json.dumps(report_to_json(report), ensure_ascii=False).encode()
        jobs.succeed(
            job_id=job_id,
            message=summary(report),
            file=ContentFile(body),
            file_name=f"reconciliation-{connection.pk}-{report.started_at:%Y%m%d-%H%M%S}.json",
            result_url=reverse("reconciliation:report", kwargs={"connection_pk": connection.pk}),
        )

    jobs.run_tracked(job_id=job_id, work=work, hint=JOB_HINT)


def jobs_of(connection: Connection):
    return BackgroundJob.objects.filter(kind=JOB_KIND, params__connection_id=connection.pk).order_by(
        "-created_at", "-id"
    )


def read_job_report(job: BackgroundJob) -> Report | None:
    """The report a finished job kept, or None if it has none."""
    if job.status != BackgroundJob.Status.SUCCEEDED or not job.result_file:
        return None
    with job.result_file.open("rb") as stored:
        return report_from_json(json.loads(stored.read()))
