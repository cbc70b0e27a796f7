"""Xero behind the engine's Adapter interface.

Reads: `If-Modified-Since` with `order=UpdatedDateUTC ASC` (Xero's only change feed, §8), paged
by time rather than by page number, so that a record edited while a pull runs (it moves to the
end) never shifts another one past a page boundary unread. Archived contacts are read too
(`includeArchived=true`) and carried as inactive; VOIDED documents as voids and DELETED ones as
tombstones. Items, which Xero deletes outright, and anything else a pull cannot see are found by
the engine's full id scan (`remote_ids`).

Writes: batches of up to 50 records per call with `summarizeErrors=false`, so each record's
validation errors come back in its own place (→ ValidationRejected, quarantined by the engine)
while the others are saved. Every write carries an `Idempotency-Key`: a single record's is its
operation's request id; a batch's is derived from all of its members', so that a retry of the
same operations after a lost answer is replayed by Xero, not repeated.

Xero has no concurrency token; a record's UpdatedDateUTC (ISO, to the millisecond) is its
version. An update first reads the records it will change (one call per batch) and sends only
those whose UpdatedDateUTC is still the one Concord last saw; the others get StaleVersion, and
the engine refetches, merges and queues them again. The read-then-write leaves a window of one
call in which an edit in Xero can still be overwritten: Xero offers nothing narrower.

The cursor is a UTC instant, `2024-05-01T17:33:39+00:00`, meaning "every record updated before
this was read"; when more records share one second than a page holds it carries a page number
too (`…+00:00#0000002`). Both forms sort as text in time order.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from integrations.core import canonical
from integrations.core.adapter import Adapter, Mapping, Page, PushOperation, PushResult, RemoteState
from integrations.core.errors import (
    RemoteNotFound,
    StaleVersion,
    SyncError,
    TransientError,
    ValidationRejected,
)

from . import mapping as rules
from . import webhooks
from .client import PAGE_SIZE, XeroClient, item_error

log = logging.getLogger(__name__)

# Each pull re-reads this much before the newest change it saw: a change committed late may
# carry an earlier stamp than one already read. Upserts make reading a record twice harmless.
OVERLAP = timedelta(seconds=30)
# Xero recommends at most 50 records per write (§9).
BATCH_SIZE = 50
# If-Modified-Since is given to the second; stepping back one more makes sure every record of the
# newest second read is read again, whether Xero compares "later than" or "at or after".
_SECOND = timedelta(seconds=1)
# Document statuses Xero deletes rather than voids (§5).
_UNAPPROVED = frozenset({"DRAFT", "SUBMITTED"})
_GONE = frozenset({"VOIDED", "DELETED"})


@dataclass
class _Pull:
    """A pull of one entity across several `changes` calls of one run."""

    window_start: str
    expected_cursor: str
    newest: datetime | None = None


class XeroAdapter(Adapter):
    provider = "xero"
    entities = (canonical.CUSTOMER, canonical.PRODUCT, canonical.INVOICE, canonical.CREDIT_NOTE, canonical.PAYMENT)
    batch_size = BATCH_SIZE
    # Canonical fields Xero cannot keep (a contact has no legal name): the engine must not read
    # their absence as a remote edit.
    fields_not_held = rules.NOT_HELD

    def __init__(
        self,
        *,
        client: XeroClient,
        mapping: Mapping,
        webhook_key: str | None = None,
        page_size: int = PAGE_SIZE,
        overlap: timedelta = OVERLAP,
    ):
        super().__init__(client=client, mapping=mapping)
        self.webhook_key = webhook_key
        self.page_size = page_size
        self.overlap = overlap
        self.items = rules.ItemCodes(self._item_codes)
        self.context = rules.Context(mapping=mapping, items=self.items)
        self._pulls: dict[str, _Pull] = {}
        # Invoice id → currency, for payments (see _with_invoice_currency).
        self._currencies: dict[str, str] = {}

    # --- Reading ----------------------------------------------------------------------------

    def changes(self, entity: str, *, cursor: str) -> Page:
        collection = rules.COLLECTION[entity]
        since, page_number = parse_cursor(cursor)
        pull = self._pulls.get(entity)
        if pull is None or pull.expected_cursor != cursor:
            pull = _Pull(window_start=cursor, expected_cursor=cursor)
        paged = collection != "Items"  # Xero serves every item in one answer
        rows = self.client.page(
            collection,
            page=page_number if paged else None,
            page_size=self.page_size,
            modified_since=since,
            order="UpdatedDateUTC ASC",
            **self._filters(collection),
        )
        states = [self._state(entity, row) for row in rows if rules.is_synced_kind(collection, row)]
        stamps = [stamp for stamp in (rules.updated_at(row) for row in rows) if stamp is not None]
        newest = max(stamps, default=None)
        newest_of_pull = max((stamp for stamp in (newest, pull.newest) if stamp is not None), default=None)
        if paged and len(rows) >= self.page_size:
            # More to read now: from a little before the newest change on this page, from page 1.
            # When the whole page is one second, time cannot move on and the page number does.
            boundary = _floor(newest) - _SECOND if newest is not None else None
            if boundary is None or (since is not None and boundary <= since):
                next_cursor = format_cursor(since, page_number + 1)
            else:
                next_cursor = format_cursor(boundary, 1)
            self._pulls[entity] = _Pull(pull.window_start, next_cursor, newest_of_pull)
            return Page(states=states, next_cursor=next_cursor, complete=False)
        self._pulls.pop(entity, None)
        # The next pull starts a little before the newest change read, never before this one did.
        next_cursor = format_cursor(parse_cursor(pull.window_start)[0], 1)
        if newest_of_pull is not None:
            next_cursor = max(next_cursor, format_cursor(_floor(newest_of_pull) - self.overlap, 1))
        return Page(states=states, next_cursor=next_cursor, complete=True)

    @staticmethod
    def _filters(collection: str) -> dict:
        if collection == "Contacts":
            return {"params": {"includeArchived": "true"}}
        if collection in rules.SALES_TYPE:
            key, wanted = rules.SALES_TYPE[collection]
            return {"where": f'{key}=="{wanted}"'}
        if collection == "Payments":
            return {"where": f'PaymentType=="{rules.PAYMENT_TYPE}"'}
        return {}

    def fetch(self, entity: str, remote_id: str) -> RemoteState:
        try:
            row = self.client.get(rules.COLLECTION[entity], remote_id)
        except RemoteNotFound:
            return RemoteState(
                entity=entity, remote_id=remote_id, version="", updated_at=None, record=None, deleted=True
            )
        return self._state(entity, row)

    def remote_ids(self, entity: str) -> set[str]:
        """Every record Xero still holds of `entity` (deleted documents are left out; deleted
        payments stay in, as the voids they are to Concord)."""
        collection = rules.COLLECTION[entity]
        id_key = rules.ID_KEY[collection]
        filters = self._filters(collection)
        if collection == "Items":
            rows = self.client.page(collection, **filters)
            return {str(row[id_key]) for row in rows if row.get(id_key)}
        found: set[str] = set()
        page_number = 1
        while True:
            rows = self.client.page(collection, page=page_number, page_size=self.page_size, **filters)
            found.update(
                str(row[id_key])
                for row in rows
                if row.get(id_key) and rules.is_synced_kind(collection, row) and not rules.is_deleted(entity, row)
            )
            if len(rows) < self.page_size:
                return found
            page_number += 1

    def _state(self, entity: str, row: dict) -> RemoteState:
        collection = rules.COLLECTION[entity]
        remote_id = str(row.get(rules.ID_KEY[collection]) or "")
        version, stamp = rules.version_of(row), rules.updated_at(row)
        if entity == canonical.PRODUCT:
            self.items.learn(remote_id, str(row.get("Code") or ""))
        elif entity == canonical.INVOICE and row.get("CurrencyCode"):
            self._currencies[remote_id] = str(row["CurrencyCode"])
        elif entity == canonical.PAYMENT:
            row = self._with_invoice_currency(row)
        if rules.is_deleted(entity, row):
            return RemoteState(entity, remote_id, version, stamp, None, deleted=True, raw=row)
        try:
            record = rules.from_xero(entity, row, self.context)
        except ValidationRejected as exc:
            # Named, so that the person fixing the mapping knows which record it was; the engine
            # quarantines this one record and reads on.
            error = type(exc)(f"Xero {collection} {remote_id}: {exc}", code=exc.code, payload=row)
            return RemoteState(entity, remote_id, version, stamp, None, raw=row, error=error)
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            error = ValidationRejected(
                f"Xero {collection} {remote_id} cannot be read: {exc!r}", code="unreadable", payload=row
            )
            return RemoteState(entity, remote_id, version, stamp, None, raw=row, error=error)
        return RemoteState(entity, remote_id, version, stamp, record, raw=row)

    def _with_invoice_currency(self, row: dict) -> dict:
        """A payment is in its invoice's currency, which Xero's payment answers may leave out of
        the invoice they summarise. A payment at a rate other than 1 is in a foreign currency:
        its invoice's (read once per run) is added to the row."""
        invoice = row.get("Invoice")
        if not isinstance(invoice, dict) or invoice.get("CurrencyCode") or not invoice.get("InvoiceID"):
            return row
        rate = rules.as_decimal(row.get("CurrencyRate"))
        if rate is None or rate == 1:
            return row
        invoice_id = str(invoice["InvoiceID"])
        if invoice_id not in self._currencies:
            try:
                self._currencies[invoice_id] = str(self.client.get("Invoices", invoice_id).get("CurrencyCode") or "")
            except RemoteNotFound:
                self._currencies[invoice_id] = ""
        if not self._currencies[invoice_id]:
            return row
        return {**row, "Invoice": {**invoice, "CurrencyCode": self._currencies[invoice_id]}}

    def _item_codes(self):
        for row in self.client.page("Items"):
            yield str(row.get("ItemID") or ""), str(row.get("Code") or "")

    # --- Writing ----------------------------------------------------------------------------

    def push(self, operations: Sequence[PushOperation]) -> list[PushResult]:
        results: dict[str, PushResult] = {}
        by_entity: dict[str, list[PushOperation]] = defaultdict(list)
        for operation in operations:
            by_entity[operation.entity].append(operation)
        for entity, group in by_entity.items():
            for start in range(0, len(group), self.batch_size):
                results.update(self._push_batch(entity, group[start : start + self.batch_size]))
        return [results[operation.request_id] for operation in operations]

    def _push_batch(self, entity: str, operations: Sequence[PushOperation]) -> dict[str, PushResult]:
        results: dict[str, PushResult] = {}
        if entity not in rules.COLLECTION:
            for operation in operations:
                results[operation.request_id] = PushResult(
                    operation.request_id,
                    error=ValidationRejected(f"Concord does not sync {entity} records with Xero", code="entity"),
                )
            return results
        collection = rules.COLLECTION[entity]
        existing = [operation for operation in operations if operation.kind != "create"]
        current = self._current(collection, [operation.remote_id for operation in existing]) if existing else {}
        creates: list[tuple[PushOperation, dict]] = []
        changes: list[tuple[PushOperation, dict]] = []
        for operation in operations:
            try:
                if operation.kind == "create":
                    creates.append((operation, rules.to_xero(operation.record, self.context, creating=True)))
                    continue
                row = current.get(operation.remote_id)
                if row is None:
                    raise RemoteNotFound(f"Xero has no {collection} {operation.remote_id}", code="404")
                body = self._change_body(collection, operation, row)
                if body is None:
                    # Already as wanted in Xero (voided, deleted, archived): nothing to send.
                    results[operation.request_id] = PushResult(operation.request_id, state=self._state(entity, row))
                elif body is _SEPARATE_CALL:
                    results[operation.request_id] = self._separate_call(entity, operation)
                else:
                    changes.append((operation, body))
            except SyncError as exc:
                results[operation.request_id] = PushResult(operation.request_id, error=exc)
        if creates:
            results.update(self._save(entity, creates, creating=True))
        if changes:
            results.update(self._save(entity, changes, creating=False))
        return results

    def _current(self, collection: str, remote_ids: Sequence[str]) -> dict[str, dict]:
        """The records an update, void or delete will change, as Xero holds them now (one call)."""
        id_key = rules.ID_KEY[collection]
        wanted = sorted({remote_id for remote_id in remote_ids if remote_id})
        if not wanted:
            return {}
        if collection == "Contacts":
            extra = {"params": {"IDs": ",".join(wanted), "includeArchived": "true"}}
        elif collection == "Invoices":
            extra = {"params": {"IDs": ",".join(wanted)}}
        else:
            extra = {"where": " OR ".join(f'{id_key}==Guid("{remote_id}")' for remote_id in wanted)}
        page = 1 if collection != "Items" else None
        rows = self.client.page(collection, page=page, page_size=max(len(wanted), 1), **extra)
        return {str(row.get(id_key)): row for row in rows if str(row.get(id_key)) in wanted}

    def _change_body(self, collection: str, operation: PushOperation, row: dict) -> dict | object | None:
        """The POST body of one update, void, delete or deactivation, None when Xero already has
        it so, `_SEPARATE_CALL` when it needs its own endpoint."""
        id_key = rules.ID_KEY[collection]
        remote_id = operation.remote_id
        kind = operation.kind
        status = str(row.get("Status") or "").upper()
        if kind == "update":
            if collection == "Payments":
                raise ValidationRejected(
                    "Xero does not change a payment: delete it there (or void it in Concord) and record it again.",
                    code="payment_update",
                )
            if operation.version and rules.version_of(row) != operation.version:
                raise StaleVersion(
                    f"Xero {collection} {remote_id} changed since Concord last read it "
                    f"({rules.version_of(row)}, not {operation.version})",
                    code="stale",
                    payload=row,
                )
            body = rules.to_xero(operation.record, self.context, fields=operation.changed or None)
            if collection == "Contacts":
                _keep_other_kinds(body, row)
            if collection == "Items":
                # Xero identifies an item in a batch by its Code as well: always sent.
                body.setdefault("Code", operation.record.sku)
            return {id_key: remote_id, **body}
        if collection == "Contacts" and kind in ("deactivate", "delete"):
            # Contacts are never deleted, only archived (§4).
            if str(row.get("ContactStatus") or "").upper() == "ARCHIVED":
                return None
            return {id_key: remote_id, "ContactStatus": "ARCHIVED"}
        if collection == "Items" and kind == "deactivate":
            if row.get("IsSold") is False:
                return None
            return {id_key: remote_id, "Code": row.get("Code"), "IsSold": False}
        if collection == "Items" and kind == "delete":
            return _SEPARATE_CALL
        if collection == "Payments" and kind in ("void", "delete"):
            return None if status == "DELETED" else _SEPARATE_CALL
        if collection in ("Invoices", "CreditNotes") and kind in ("void", "delete"):
            if status in _GONE:
                return None
            # Xero deletes drafts and voids approved documents: whichever applies carries the removal.
            return {id_key: remote_id, "Status": "DELETED" if status in _UNAPPROVED else "VOIDED"}
        raise ValidationRejected(f"Xero cannot {kind} {collection}", code="operation")

    def _separate_call(self, entity: str, operation: PushOperation) -> PushResult:
        """A write with its own endpoint: deleting a payment or an item."""
        try:
            if entity == canonical.PAYMENT:
                row = self.client.delete_payment(operation.remote_id, idempotency_key=operation.request_id)
                return PushResult(operation.request_id, state=self._state(entity, row))
            self.client.delete_item(operation.remote_id)
        except (ValidationRejected, RemoteNotFound) as exc:
            return PushResult(operation.request_id, error=exc)
        tombstone = RemoteState(entity, operation.remote_id, "", None, None, deleted=True)
        return PushResult(operation.request_id, state=tombstone)

    def _save(self, entity: str, pairs: list[tuple[PushOperation, dict]], *, creating: bool) -> dict[str, PushResult]:
        collection = rules.COLLECTION[entity]
        key = batch_idempotency_key(
            "PUT" if creating else "POST", collection, [operation.request_id for operation, _ in pairs]
        )
        try:
            rows = self.client.save(collection, [body for _, body in pairs], creating=creating, idempotency_key=key)
        except ValidationRejected as refused:
            if len(pairs) == 1:
                return {pairs[0][0].request_id: PushResult(pairs[0][0].request_id, error=refused)}
            # The whole call was refused (a malformed record can do that even with
            # summarizeErrors=false): each record alone finds the one at fault.
            log.warning("Xero refused a batch of %d %s (%s); sending them one by one", len(pairs), collection, refused)
            results = {}
            for pair in pairs:
                results.update(self._save(entity, [pair], creating=creating))
            return results
        results = {}
        for position, (operation, _) in enumerate(pairs):
            row = rows[position] if position < len(rows) else None
            results[operation.request_id] = self._result(entity, operation, row)
        return results

    def _result(self, entity: str, operation: PushOperation, row: dict | None) -> PushResult:
        if not row:
            return PushResult(
                operation.request_id,
                error=TransientError("Xero's batch answer left this record out", code="batch"),
            )
        refused = item_error(row)
        if refused is not None:
            return PushResult(operation.request_id, error=refused)
        state = self._state(entity, row)
        if state.error is not None:
            # The write happened: reporting an error would make the engine write it again.
            log.warning("Xero %s %s written but not readable back: %s", entity, state.remote_id, state.error)
            state = RemoteState(entity, state.remote_id, state.version, state.updated_at, None, raw=row)
        return PushResult(operation.request_id, state=state)

    # --- Archived payloads ------------------------------------------------------------------

    def states_in(self, payload) -> list[RemoteState]:
        """Records in any Xero answer: a single GET, a page or a batch answer."""
        if not isinstance(payload, dict):
            return []
        states: list[RemoteState] = []
        for collection, entity in rules.CANONICAL_ENTITY.items():
            rows = payload.get(collection)
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict) and rules.is_synced_kind(collection, row) and item_error(row) is None:
                    states.append(self._state(entity, row))
        return states

    # --- Webhooks ---------------------------------------------------------------------------

    def webhook_targets(self, body: bytes, headers: dict[str, str]) -> Iterator[tuple[str, str, str]]:
        return webhooks.webhook_targets(body, headers, webhook_key=self.webhook_key)


# A marker: the operation goes through its own endpoint, not the batch.
_SEPARATE_CALL = object()
# A contact's phones and addresses Concord does not map, by kind, kept when it sends its own.
_OTHER_KINDS = (("Phones", "PhoneType", rules.MAIN_PHONE), ("Addresses", "AddressType", rules.BILLING_ADDRESS))


def _keep_other_kinds(body: dict, row: dict) -> None:
    """Xero takes a contact's Phones and Addresses as whole lists: the kinds Concord does not map
    (mobile, fax, street address…) are sent back as Xero holds them, so an update keeps them."""
    for key, type_key, ours in _OTHER_KINDS:
        if key in body:
            others = [entry for entry in row.get(key) or [] if isinstance(entry, dict) and entry.get(type_key) != ours]
            body[key] = [*body[key], *others]


# --- Cursors, keys ---------------------------------------------------------------------------------


def format_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def format_cursor(since: datetime | None, page: int) -> str:
    instant = format_instant(since) if since is not None else ""
    return instant if page <= 1 else f"{instant}#{page:07d}"


def parse_cursor(cursor: str) -> tuple[datetime | None, int]:
    if not cursor:
        return None, 1
    instant, _, page = cursor.partition("#")
    since = datetime.fromisoformat(instant) if instant else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since, int(page) if page else 1


def _floor(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def batch_idempotency_key(verb: str, collection: str, request_ids: Sequence[str]) -> str:
    """One Idempotency-Key for a batch, the same whatever the order of its operations. A single
    operation's key is its own request id."""
    if len(request_ids) == 1:
        return request_ids[0]
    joined = "\n".join([verb, collection, *sorted(request_ids)])
    return hashlib.sha256(joined.encode()).hexdigest()
