"""The engine's view of Concord's own records: read them as canonical records, and write
canonical changes through Concord's services. `integrations/local.py` implements it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

from .canonical import Record

# (entity, local id) → the remote id, or None when not linked yet.
RemoteIdOf = Callable[[str, int], "str | None"]
# (entity, remote id) → the local id, or None when not pulled yet.
LocalIdOf = Callable[[str, str], "int | None"]


class LocalStore(ABC):
    def syncs(self, entity: str, obj) -> bool:
        """Whether this local record is shared with the package at all (a draft invoice is not)."""
        return True

    @abstractmethod
    def awaiting_first_push(self, entity: str) -> Iterable[int]:
        """Ids of local records of `entity` the package should have that are linked to nothing
        yet: a connection's first run queues them, so that what Concord had before it was
        connected reaches the package (or is matched to the package's twin)."""

    @abstractmethod
    def get(self, entity: str, local_id: int):
        """The local record, or None if it no longer exists."""

    @abstractmethod
    def to_record(self, entity: str, obj, *, remote_id_of: RemoteIdOf) -> Record:
        """The canonical record of a local one. Raises DependencyNotSynced when it refers to a
        record with no remote twin yet."""

    @abstractmethod
    def removal(self, entity: str, obj) -> str:
        """How the remote twin should mirror this record's local state: "" (it is live),
        "void" (voided here) or "delete" (gone here)."""

    @abstractmethod
    def match(self, entity: str, record: Record, *, local_id_of: LocalIdOf):
        """An existing, not yet linked local record that is the same thing (first sync of a
        company that already has data on both sides), or None."""

    @abstractmethod
    def create(self, entity: str, record: Record, *, local_id_of: LocalIdOf, actor):
        """Create the local twin of a remote record. Raises DependencyMissing, ValidationRejected."""

    @abstractmethod
    def update(self, entity: str, obj, record: Record, changed: set[str], *, local_id_of: LocalIdOf, actor):
        """Apply the `changed` canonical fields of `record` to `obj`. Raises CannotMirror when the
        change breaks a rule here, ValidationRejected when the values are invalid."""

    @abstractmethod
    def remove(self, entity: str, obj, *, actor) -> None:
        """Mirror a remote void or delete (void an invoice, deactivate a customer). Raises
        CannotMirror when the record cannot go (an invoice with payments applied)."""
