"""The one interface every accounting package sits behind.

An adapter turns canonical records into the vendor's wire format and back, and performs reads
and writes through its client (which owns HTTP, OAuth, pacing and retries of single requests).
The engine (integrations/core/engine.py) calls only what is declared here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .canonical import Record


@dataclass(frozen=True)
class RemoteState:
    """One remote record as it is now (or its tombstone)."""

    entity: str
    remote_id: str
    # The vendor's concurrency token (QBO SyncToken, Xero UpdatedDateUTC, Tryton write_date).
    version: str
    updated_at: datetime | None
    record: Record | None
    deleted: bool = False
    # The vendor's own JSON for this record, archived by the engine.
    raw: Any = None
    # Set when the adapter could not read the record (a missing mapping, content it does not
    # understand): the engine quarantines that record and goes on with the others.
    error: Exception | None = None


@dataclass(frozen=True)
class Page:
    """Changes since a cursor: the states, and the cursor to resume from next time."""

    states: list[RemoteState]
    next_cursor: str
    # False when the provider says there is more to read right away.
    complete: bool = True


@dataclass(frozen=True)
class PushOperation:
    """One write. `request_id` makes a retry after a lost response a no-op on the vendor's side."""

    kind: str  # "create" | "update" | "void" | "delete" | "deactivate"
    entity: str
    request_id: str
    record: Record | None = None
    remote_id: str = ""
    version: str = ""
    # For updates: the canonical field names that changed (adapters may send a sparse update).
    changed: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class PushResult:
    request_id: str
    state: RemoteState | None = None
    error: Exception | None = None


@dataclass(frozen=True)
class Mapping:
    """The rules in force for one run: one version of the connection's mapping tables.

    Each table maps Concord's value to the vendor's (account code → account id, tax rate name →
    tax code, product SKU → item id, payment method → method id, terms days → term id)."""

    version: int
    accounts: dict[str, str] = field(default_factory=dict)
    tax_codes: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)
    payment_methods: dict[str, str] = field(default_factory=dict)
    terms: dict[str, str] = field(default_factory=dict)

    def reverse(self, table: str) -> dict[str, str]:
        """The package's value → Concord's. Defaults (keys starting with "*") are never read back.
        When several Concord values share one package value (two revenue accounts booked to one
        income account, every payment method into one bank account) the first in sort order is
        the one read back: the tables are stored as JSON objects, whose order PostgreSQL does not
        keep, so "the first listed" would not be a rule."""
        reversed_table: dict[str, str] = {}
        for local, remote in sorted(getattr(self, table).items()):
            if not local.startswith("*"):
                reversed_table.setdefault(str(remote), local)
        return reversed_table


class Adapter(ABC):
    """A provider's translation layer. Instances are built per connection and per run."""

    provider: str = ""
    # Canonical entities this provider syncs, in dependency order.
    entities: tuple[str, ...] = ()
    # Writes per batched call (1 = no batch endpoint).
    batch_size: int = 1
    # Canonical fields the vendor has nowhere to keep, per entity (Xero: a contact's legal name).
    # The engine treats them as agreed: Concord's value is never pushed, nor overwritten by the
    # vendor's empty one.
    fields_not_held: dict[str, frozenset[str]] = {}

    def __init__(self, *, client, mapping: Mapping):
        self.client = client
        self.mapping = mapping

    @abstractmethod
    def changes(self, entity: str, *, cursor: str) -> Page:
        """Records of `entity` changed since `cursor` ("" = from the beginning), deletes included
        where the vendor reports them. Called again with `next_cursor` while `complete` is False."""

    @abstractmethod
    def fetch(self, entity: str, remote_id: str) -> RemoteState:
        """The current state of one record; a tombstone (deleted=True) if it no longer exists."""

    @abstractmethod
    def remote_ids(self, entity: str) -> set[str]:
        """Every live id of `entity`: the full scan that finds deletes a change feed no longer holds."""

    @abstractmethod
    def push(self, operations: Sequence[PushOperation]) -> list[PushResult]:
        """Perform writes (batched where the vendor allows); one result per operation, by request_id.
        An operation that fails carries its error in its result; a failure of the whole call raises."""

    def cursor_is_usable(self, cursor: str, *, now: datetime) -> bool:
        """False when the vendor's change feed no longer reaches back to `cursor` (QBO CDC's 30 days):
        the engine then also runs `remote_ids` to find deletes."""
        return True

    def states_in(self, payload: Any) -> list[RemoteState]:
        """Every record an archived response body holds, whatever call it answered (the replay
        command rebuilds a record's history from these)."""
        return []

    def webhook_targets(self, body: bytes, headers: dict[str, str]) -> Iterator[tuple[str, str, str]]:
        """(tenant id, entity, remote id) named by a verified webhook body."""
        return iter(())
