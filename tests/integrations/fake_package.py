"""A provider-neutral accounting package in memory, behind the engine's Adapter interface.

It keeps canonical records with ids and versions, reports changes after a cursor (a sequence
number), replays a request id it has already carried out, and refuses a stale version — the
behaviours the engine relies on, without any vendor's wire format (the QuickBooks contract
tests cover that against the simulator).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from integrations.core import errors
from integrations.core.adapter import Adapter, Mapping, Page, PushOperation, PushResult, RemoteState
from integrations.core.canonical import ENTITIES, Record


@dataclass
class Stored:
    record: Record
    version: int = 0
    seq: int = 0
    deleted: bool = False


@dataclass
class FakePackage:
    records: dict[tuple[str, str], Stored] = field(default_factory=dict)
    replies: dict[str, PushResult] = field(default_factory=dict)
    pushes: list[PushOperation] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(100))
    _seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    # Fault injection: the next N push calls fail as a whole; or commit and then "lose" the answer.
    fail_next_pushes: int = 0
    lose_next_answers: int = 0

    # --- the package's own users ---------------------------------------------------------------
    def add(self, record: Record) -> str:
        remote_id = str(next(self._ids))
        self.records[(record.entity, remote_id)] = Stored(record, seq=next(self._seq))
        return remote_id

    def edit(self, entity: str, remote_id: str, **changes) -> None:
        stored = self.records[(entity, remote_id)]
        stored.record = stored.record.replace(**changes)
        stored.version += 1
        stored.seq = next(self._seq)

    def delete(self, entity: str, remote_id: str) -> None:
        stored = self.records[(entity, remote_id)]
        stored.deleted, stored.version, stored.seq = True, stored.version + 1, next(self._seq)

    def live(self, entity: str) -> dict[str, Record]:
        return {rid: s.record for (ent, rid), s in self.records.items() if ent == entity and not s.deleted}

    def state(self, entity: str, remote_id: str) -> RemoteState:
        stored = self.records.get((entity, remote_id))
        if stored is None or stored.deleted:
            return RemoteState(entity, remote_id, str(stored.version if stored else 0), None, None, deleted=True)
        return RemoteState(entity, remote_id, str(stored.version), None, stored.record)

    def adapter(self, *, mapping: Mapping | None = None, batch_size: int = 30) -> FakeAdapter:
        adapter = FakeAdapter(client=self, mapping=mapping or Mapping(version=1))
        adapter.batch_size = batch_size
        return adapter


class FakeAdapter(Adapter):
    provider = "fake"
    entities = ENTITIES

    @property
    def package(self) -> FakePackage:
        return self.client

    def changes(self, entity: str, *, cursor: str) -> Page:
        after = int(cursor or 0)
        found = sorted(
            ((s.seq, rid) for (ent, rid), s in self.package.records.items() if ent == entity and s.seq > after)
        )
        page = found[:50]
        states = [self.package.state(entity, rid) for _, rid in page]
        next_cursor = str(page[-1][0]) if page else cursor
        return Page(states=states, next_cursor=next_cursor, complete=len(found) <= 50)

    def fetch(self, entity: str, remote_id: str) -> RemoteState:
        return self.package.state(entity, remote_id)

    def remote_ids(self, entity: str) -> set[str]:
        return set(self.package.live(entity))

    def push(self, operations) -> list[PushResult]:
        package = self.package
        if package.fail_next_pushes:
            package.fail_next_pushes -= 1
            raise errors.TransientError("503 Service Unavailable")
        results = [self._one(op) for op in operations]
        if package.lose_next_answers:
            package.lose_next_answers -= 1
            raise errors.TransientError("Connection reset after the package committed")
        return results

    def _one(self, op: PushOperation) -> PushResult:
        package = self.package
        if op.request_id in package.replies:
            return package.replies[op.request_id]
        package.pushes.append(op)
        if op.kind == "create":
            remote_id = package.add(op.record)
            result = PushResult(op.request_id, package.state(op.entity, remote_id))
        else:
            stored = package.records.get((op.entity, op.remote_id))
            if stored is None or stored.deleted:
                return PushResult(op.request_id, error=errors.RemoteNotFound("Object Not Found", code="610"))
            if str(stored.version) != op.version:
                return PushResult(op.request_id, error=errors.StaleVersion("Stale Object Error", code="5010"))
            if op.kind == "update":
                package.edit(op.entity, op.remote_id, **{name: getattr(op.record, name) for name in op.changed})
            elif op.kind == "void":
                package.edit(op.entity, op.remote_id, voided=True)
            elif op.kind == "deactivate":
                package.edit(op.entity, op.remote_id, active=False)
            else:
                package.delete(op.entity, op.remote_id)
            result = PushResult(op.request_id, package.state(op.entity, op.remote_id))
        package.replies[op.request_id] = result
        return result
