"""Three-way merge of one record: the state both sides agreed on at the last sync (the base),
Concord's state now and the accounting package's state now, compared field by field."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

CONCORD = "concord"
REMOTE = "remote"
ASK = "ask"
POLICIES = (CONCORD, REMOTE, ASK)


@dataclass
class Merge:
    # Fields whose remote value Concord takes.
    to_local: dict = field(default_factory=dict)
    # Fields whose Concord value the package must take.
    to_remote: dict = field(default_factory=dict)
    # Fields both sides changed, differently, whose policy is "ask".
    conflicts: list[str] = field(default_factory=list)
    # The state both sides will agree on once the above is applied (conflicting fields keep
    # their base value, so they still differ on both sides until a person decides).
    agreed: dict = field(default_factory=dict)

    @property
    def is_noop(self) -> bool:
        return not (self.to_local or self.to_remote or self.conflicts)


def three_way(
    *,
    base: dict,
    local: dict,
    remote: dict,
    policy: Callable[[str], str],
    read_only: Iterable[str] = (),
) -> Merge:
    """Non-overlapping changes merge; a field changed on both sides to the same value is agreed;
    a field changed on both sides differently follows `policy(field)`. Read-only fields (balances
    the package computes) are taken from the remote side for the record and never merged."""
    read_only = set(read_only)
    merge = Merge()
    for name in sorted(set(base) | set(local) | set(remote)):
        if name in read_only:
            merge.agreed[name] = remote.get(name)
            continue
        was, mine, theirs = base.get(name), local.get(name), remote.get(name)
        if mine == theirs:
            merge.agreed[name] = mine
        elif mine == was:
            merge.to_local[name] = theirs
            merge.agreed[name] = theirs
        elif theirs == was:
            merge.to_remote[name] = mine
            merge.agreed[name] = mine
        else:
            chosen = policy(name)
            if chosen == CONCORD:
                merge.to_remote[name] = mine
                merge.agreed[name] = mine
            elif chosen == REMOTE:
                merge.to_local[name] = theirs
                merge.agreed[name] = theirs
            else:
                merge.conflicts.append(name)
                merge.agreed[name] = was
    return merge
