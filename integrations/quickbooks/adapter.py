"""QuickBooks Online behind the engine's Adapter interface.

Reads: an incremental query on `Metadata.LastUpdatedTime` (keyset paging, so records edited
while a pull runs are neither skipped nor lost), and Change Data Capture for the deletes a query
cannot see. Writes: QBO's batch endpoint, 30 operations per call, each item's `bId` the
operation's request id and the call's `requestid` derived from all of them, so that a retry of a
lost batch replays instead of writing twice.

The cursor is a UTC instant, `2024-05-01T17:33:39+00:00`, meaning "every record updated before
this was read"; a pull reads `LastUpdatedTime >= cursor`. Only when more records share one second
than a page holds does it carry a position too (`…+00:00#0001001`, STARTPOSITION within that
second). Both forms sort as text in time order, which is how the engine keeps a cursor from
moving back. Deletes are looked up by CDC from where the pull started, once its last page is read.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from integrations.core import canonical
from integrations.core.adapter import Adapter, Mapping, Page, PushOperation, PushResult, RemoteState
from integrations.core.errors import RemoteNotFound, SyncError, TransientError, ValidationRejected

from . import mapping as rules
from . import webhooks
from .client import MAX_RESULTS, QuickBooksClient, fault_error, find_fault, query_rows

log = logging.getLogger(__name__)

# Each pull re-reads this much before the last change it saw: QBO stamps times to the second
# and a change committed late may carry an earlier stamp than one already read.
OVERLAP = timedelta(seconds=30)
# CDC answers for changes of the last 30 days only; a day's margin keeps a cursor near the edge
# from becoming unusable between the check and the call.
CDC_REACH = timedelta(days=30)
CDC_SAFETY = timedelta(days=1)
# A CDC answer this large may have been cut off (§8): read on from its last change.
CDC_LIMIT = 1000


@dataclass
class _Pull:
    """A pull of one entity across several `changes` calls of one run."""

    window_start: str
    expected_cursor: str
    newest: datetime | None = None


class QuickBooksAdapter(Adapter):
    provider = "quickbooks"
    entities = canonical.ENTITIES
    batch_size = 30

    def __init__(
        self,
        *,
        client: QuickBooksClient,
        mapping: Mapping,
        verifier_token: str | None = None,
        page_size: int = MAX_RESULTS,
        overlap: timedelta = OVERLAP,
        clock: Callable[[], datetime] = timezone.now,
        cdc_limit: int = CDC_LIMIT,
    ):
        """`clock` is "now" for CDC's 30-day reach and `cdc_limit` the most objects one CDC answer
        holds (QBO's; tests pass the simulator's)."""
        super().__init__(client=client, mapping=mapping)
        self.verifier_token = verifier_token
        self.page_size = page_size
        self.overlap = overlap
        self.clock = clock
        self.cdc_limit = cdc_limit
        self._pulls: dict[str, _Pull] = {}

    # --- Reading ----------------------------------------------------------------------------

    def changes(self, entity: str, *, cursor: str) -> Page:
        qbo = rules.QBO_ENTITY[entity]
        since, start = parse_cursor(cursor)
        pull = self._pulls.get(entity)
        if pull is None or pull.expected_cursor != cursor:
            # A new pull: its deletes are looked up from here once its last page is read.
            pull = _Pull(window_start=cursor, expected_cursor=cursor)
        conditions = []
        if since is not None:
            conditions.append(f"Metadata.LastUpdatedTime >= '{format_instant(since)}'")
        if entity in rules.NAME_LISTS:
            # Inactive customers and items are hidden from queries unless asked for.
            conditions.append("Active IN (true, false)")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        # QBO's query language, not SQL; every interpolated value is ours (entity names from the
        # table above, an instant this module formatted, integers).
        rows = query_rows(
            self.client.query(
                f"SELECT * FROM {qbo}{where} ORDERBY Metadata.LastUpdatedTime "  # noqa: S608
                f"STARTPOSITION {start} MAXRESULTS {self.page_size}"
            )
        )
        states = [self._state(entity, row) for row in rows]
        stamps = [state.updated_at for state in states if state.updated_at is not None]
        newest = max(stamps, default=None)
        newest_of_pull = max((stamp for stamp in (newest, pull.newest) if stamp is not None), default=None)
        if len(rows) >= self.page_size:
            # More to read now. The rows stamped with the newest second may continue on the next
            # page, so the next page starts at that second (its rows are read twice; the engine
            # recognises a record it already has). When the whole page is that one second,
            # keyset paging cannot move on and the position within it does.
            if newest is None or (since is not None and _floor(newest) <= since):
                next_cursor = format_cursor(since, start + len(rows))
            else:
                next_cursor = format_cursor(_floor(newest), 1)
            self._pulls[entity] = _Pull(pull.window_start, next_cursor, newest_of_pull)
            return Page(states=states, next_cursor=next_cursor, complete=False)
        self._pulls.pop(entity, None)
        states.extend(self._deleted_since(entity, pull.window_start))
        # The next pull starts at a whole second (never a position: positions shift as records
        # change), a little before the newest change read, and never before this pull's start.
        next_cursor = format_cursor(parse_cursor(pull.window_start)[0], 1)
        if newest_of_pull is not None:
            next_cursor = max(next_cursor, format_cursor(_floor(newest_of_pull) - self.overlap, 1))
        return Page(states=states, next_cursor=next_cursor, complete=True)

    def _deleted_since(self, entity: str, cursor: str) -> list[RemoteState]:
        """Tombstones from Change Data Capture since `cursor` (none when the feed cannot reach it)."""
        since, _ = parse_cursor(cursor)
        if since is None or not self.cursor_is_usable(cursor, now=self.clock()):
            return []
        qbo = rules.QBO_ENTITY[entity]
        tombstones: dict[str, RemoteState] = {}
        while True:
            try:
                changed = self.client.cdc([qbo], since)[qbo]
            except ValidationRejected as refused:
                # QBO's clock says the window is past its reach after all: the engine's full id
                # scan finds these deletes (cursor_is_usable turns False by the next run).
                log.warning("QuickBooks CDC for %s since %s refused: %s", qbo, since, refused)
                return list(tombstones.values())
            for row in changed:
                if str(row.get("status") or "").lower() == "deleted":
                    remote_id = str(row.get("Id"))
                    tombstones[remote_id] = RemoteState(
                        entity=entity,
                        remote_id=remote_id,
                        version=str(row.get("SyncToken") or ""),
                        updated_at=_updated_at(row),
                        record=None,
                        deleted=True,
                        raw=row,
                    )
            if len(changed) < self.cdc_limit:
                return list(tombstones.values())
            # Possibly cut off: ask again from the last change it did hold.
            stamps = [stamp for stamp in (_updated_at(row) for row in changed) if stamp is not None]
            latest = _floor(max(stamps)) if stamps else None
            if latest is None or latest <= since:
                log.warning(
                    "QuickBooks CDC for %s returned %d changes within one second; the daily full scan finds "
                    "any delete it left out",
                    qbo,
                    len(changed),
                )
                return list(tombstones.values())
            since = latest

    def fetch(self, entity: str, remote_id: str) -> RemoteState:
        qbo = rules.QBO_ENTITY[entity]
        try:
            row = self.client.get(qbo, remote_id)
        except RemoteNotFound:
            return RemoteState(
                entity=entity, remote_id=remote_id, version="", updated_at=None, record=None, deleted=True
            )
        return self._state(entity, row)

    def remote_ids(self, entity: str) -> set[str]:
        # QBO selects whole objects only; one page at a time is in memory, and only the ids are kept.
        qbo = rules.QBO_ENTITY[entity]
        where = " WHERE Active IN (true, false)" if entity in rules.NAME_LISTS else ""
        statement = f"SELECT * FROM {qbo}{where} ORDERBY Id"  # noqa: S608 (QBO's query language, our own values)
        return {str(row["Id"]) for row in self.client.query_all(statement, page_size=self.page_size)}

    def cursor_is_usable(self, cursor: str, *, now: datetime) -> bool:
        since, _ = parse_cursor(cursor)
        return since is None or since >= now - (CDC_REACH - CDC_SAFETY)

    def _state(self, entity: str, row: dict) -> RemoteState:
        remote_id = str(row.get("Id"))
        version = str(row.get("SyncToken") or "0")
        try:
            record = rules.from_qbo(entity, row, self.mapping)
        except ValidationRejected as exc:
            # Named, so that the person fixing the mapping knows which record it was; the engine
            # quarantines this one record and reads on.
            error = type(exc)(f"QuickBooks {rules.QBO_ENTITY[entity]} {remote_id}: {exc}", code=exc.code, payload=row)
            return RemoteState(entity, remote_id, version, _updated_at(row), None, raw=row, error=error)
        except (ValueError, TypeError, KeyError) as exc:
            error = ValidationRejected(
                f"QuickBooks {rules.QBO_ENTITY[entity]} {remote_id} cannot be read: {exc!r}",
                code="unreadable",
                payload=row,
            )
            return RemoteState(entity, remote_id, version, _updated_at(row), None, raw=row, error=error)
        return RemoteState(
            entity=entity,
            remote_id=remote_id,
            version=str(row.get("SyncToken") or "0"),
            updated_at=_updated_at(row),
            record=record,
            raw=row,
        )

    # --- Writing ----------------------------------------------------------------------------

    def push(self, operations: Sequence[PushOperation]) -> list[PushResult]:
        results: dict[str, PushResult] = {}
        for start in range(0, len(operations), self.batch_size):
            chunk = operations[start : start + self.batch_size]
            items = []
            for operation in chunk:
                try:
                    items.append(self._batch_item(operation))
                except SyncError as exc:
                    results[operation.request_id] = PushResult(operation.request_id, error=exc)
            if items:
                results.update(self._send_batch(chunk, items))
        return [results[operation.request_id] for operation in operations]

    def _batch_item(self, operation: PushOperation) -> dict:
        qbo = rules.QBO_ENTITY[operation.entity]
        kind = operation.kind
        if kind == "delete" and operation.entity in rules.NAME_LISTS:
            kind = "deactivate"  # customers and items cannot be deleted (§1)
        item: dict = {"bId": operation.request_id}
        if kind == "create":
            item["operation"] = "create"
            item[qbo] = rules.to_qbo(operation.record, self.mapping, creating=True)
        elif kind == "update":
            # Always sparse: a full update would clear every field Concord does not map (BillEmail,
            # CustomerMemo, custom fields…). Without `changed`, every mapped field is sent.
            fields = operation.changed or None
            body = rules.to_qbo(operation.record, self.mapping, fields=fields)
            item["operation"] = "update"
            item[qbo] = {"Id": operation.remote_id, "SyncToken": operation.version, "sparse": True, **body}
        elif kind == "deactivate":
            item["operation"] = "update"
            item[qbo] = {"Id": operation.remote_id, "SyncToken": operation.version, "sparse": True, "Active": False}
        elif kind == "delete":
            item["operation"] = "delete"
            item[qbo] = {"Id": operation.remote_id, "SyncToken": operation.version}
        elif kind == "void":
            item["operation"] = "update"
            item["optionsData"] = "void"
            item[qbo] = {"Id": operation.remote_id, "SyncToken": operation.version, "sparse": True}
        else:
            raise ValidationRejected(f"Unknown push operation {operation.kind!r}", code="operation")
        return item

    def _send_batch(self, chunk: Sequence[PushOperation], items: list[dict]) -> dict[str, PushResult]:
        # QBO's requestid covers the whole call. Derived from the operations' own request ids, a
        # retry of the same operations after a lost answer is replayed by QBO, not done twice.
        request_id = batch_request_id(item["bId"] for item in items)
        answers = self.client.batch(items, request_id=request_id)
        by_id = {operation.request_id: operation for operation in chunk}
        results = {}
        for item in items:
            operation = by_id[item["bId"]]
            answer = answers.get(item["bId"])
            results[operation.request_id] = self._result(operation, answer)
        return results

    def _result(self, operation: PushOperation, answer: dict | None) -> PushResult:
        if answer is None:
            return PushResult(
                operation.request_id,
                error=TransientError("QuickBooks' batch answer left this operation out", code="batch"),
            )
        fault = find_fault(answer)
        if fault is not None:
            return PushResult(operation.request_id, error=fault_error(fault))
        qbo = rules.QBO_ENTITY[operation.entity]
        row = answer.get(qbo)
        if not isinstance(row, dict):
            return PushResult(
                operation.request_id,
                error=TransientError(f"QuickBooks' batch answer holds no {qbo}: {str(answer)[:200]}", code="batch"),
            )
        remote_id = str(row.get("Id") or operation.remote_id)
        if str(row.get("status") or "").lower() == "deleted":
            state = RemoteState(operation.entity, remote_id, "", _updated_at(row), None, deleted=True, raw=row)
            return PushResult(operation.request_id, state=state)
        try:
            record = rules.from_qbo(operation.entity, row, self.mapping)
        except (SyncError, ValueError, TypeError, KeyError):
            # The write happened: reporting an error would make the engine write it again.
            log.warning("QuickBooks %s %s written but not readable back", qbo, remote_id, exc_info=True)
            record = None
        version = str(row.get("SyncToken") or "0")
        return PushResult(
            operation.request_id,
            state=RemoteState(operation.entity, remote_id, version, _updated_at(row), record, raw=row),
        )

    # --- Archived payloads ------------------------------------------------------------------

    def states_in(self, payload) -> list[RemoteState]:
        """Records in any QBO answer: one entity, a query page, a batch answer or a CDC answer."""
        states: list[RemoteState] = []

        def take(container) -> None:
            if not isinstance(container, dict):
                return
            for qbo, entity in rules.CANONICAL_ENTITY.items():
                rows = container.get(qbo)
                for row in rows if isinstance(rows, list) else [rows] if isinstance(rows, dict) else []:
                    if str(row.get("status") or "").lower() == "deleted":
                        states.append(
                            RemoteState(entity, str(row.get("Id")), "", _updated_at(row), None, deleted=True, raw=row)
                        )
                    else:
                        states.append(self._state(entity, row))

        if not isinstance(payload, dict):
            return states
        take(payload)
        take(payload.get("QueryResponse"))
        for item in payload.get("BatchItemResponse") or []:
            take(item)
            take(item.get("QueryResponse") if isinstance(item, dict) else None)
        for answer in payload.get("CDCResponse") or []:
            for page in (answer or {}).get("QueryResponse") or []:
                take(page)
        return states

    # --- Webhooks ---------------------------------------------------------------------------

    def webhook_targets(self, body: bytes, headers: dict[str, str]) -> Iterator[tuple[str, str, str]]:
        seen = set()
        for notification in webhooks.verified_notifications(body, headers, verifier_token=self.verifier_token):
            target = (notification.realm_id, notification.entity, notification.remote_id)
            if target not in seen:
                seen.add(target)
                yield target


# --- Cursors and times -----------------------------------------------------------------------------


def format_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def format_cursor(since: datetime | None, start: int) -> str:
    instant = format_instant(since) if since is not None else ""
    return instant if start <= 1 else f"{instant}#{start:07d}"


def parse_cursor(cursor: str) -> tuple[datetime | None, int]:
    if not cursor:
        return None, 1
    instant, _, position = cursor.partition("#")
    since = datetime.fromisoformat(instant) if instant else None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since, int(position) if position else 1


def _floor(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _updated_at(row: dict) -> datetime | None:
    text = (row.get("MetaData") or {}).get("LastUpdatedTime")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def batch_request_id(request_ids) -> str:
    """One requestid (≤ 50 characters) for a batch, the same whatever the operations' order."""
    return hashlib.sha1("\n".join(sorted(request_ids)).encode(), usedforsecurity=False).hexdigest()
