"""The sync engine: pull what changed on the accounting package, push what changed in Concord,
merge when both changed, and set aside what cannot be synced — provider-neutral.

Guarantees, and what gives them:
- Nothing duplicated: a remote record is linked to at most one local record and the other way
  round (unique constraints on ExternalRef); pulls are upserts by remote id; every push carries
  the outbox entry's request id, which the vendor replays instead of repeating.
- Nothing lost: local changes are written to the outbox in the same transaction as the change;
  an entry is marked done only when the push is confirmed and nothing changed meanwhile; a
  remote change is read again until the cursor has moved past it, and deletes the change feed
  no longer holds are found by a full id scan.
- Conflicts shown: when both sides changed the same field differently and its policy is "ask",
  the engine opens a Conflict and leaves that field alone on both sides.
- Failures visible: a record that fails validation, or keeps failing, goes to quarantine with the
  error and the payload; a transient failure of the whole call leaves the run partial and the
  outbox entries pending with exponential backoff.

Two runs of one connection can overlap (a webhook run and the schedule, two workers): each
outbox entry is claimed with a lease under SKIP LOCKED, each remote record is applied under a
lock on its link, and a cursor only moves forward.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import Case, F, Value, When
from django.utils import timezone

from . import canonical, errors
from .adapter import Adapter, PushOperation, PushResult, RemoteState
from .local import LocalStore
from .merge import three_way
from .throttle import backoff_delay

log = logging.getLogger(__name__)

# An outbox entry claimed by a run is left alone by others this long (a killed worker's claim
# lapses after it, and the entry is pushed again with the same request id).
CLAIM_LEASE = timedelta(minutes=5)
# A record whose push failed this many times for transient reasons goes to quarantine.
MAX_PUSH_ATTEMPTS = 8
# Outbox entries claimed per round.
CLAIM_SIZE = 90
# How often a full id scan looks for deletes when the change feed cannot reach back far enough.
FULL_SCAN_EVERY = timedelta(hours=24)
# Rows per outbox INSERT statement.
ENQUEUE_CHUNK = 2000
# How many times one record may pull a missing dependency before it is quarantined.
MAX_DEPENDENCY_DEPTH = 4


@dataclass
class Context:
    """What one run works with."""

    connection: object  # integrations.models.Connection
    run: object  # integrations.models.SyncRun
    adapter: Adapter
    local: LocalStore
    actor: object
    pulls: frozenset[str]
    pushes: frozenset[str]
    progress: Callable[[], None] = lambda: None

    def count(self, entity: str, what: str, by: int = 1) -> None:
        counts = self.run.counts.setdefault(entity, {})
        counts[what] = counts.get(what, 0) + by


def _models():
    # Imported late: integrations.models imports the core's canonical names at load time.
    from integrations import models

    return models


# --- links ------------------------------------------------------------------------------------


def remote_id_of(connection_id: int) -> Callable[[str, int], str | None]:
    ExternalRef = _models().ExternalRef

    def lookup(entity: str, local_id: int) -> str | None:
        return (
            ExternalRef.objects.filter(connection_id=connection_id, entity=entity, local_id=local_id)
            .values_list("remote_id", flat=True)
            .first()
        )

    return lookup


def local_id_of(connection_id: int) -> Callable[[str, str], int | None]:
    ExternalRef = _models().ExternalRef

    def lookup(entity: str, remote_id: str) -> int | None:
        return (
            ExternalRef.objects.filter(connection_id=connection_id, entity=entity, remote_id=remote_id)
            .values_list("local_id", flat=True)
            .first()
        )

    return lookup


# --- outbox -----------------------------------------------------------------------------------


def enqueue(*, connection_id: int, entity: str, local_ids: Sequence[int], operation: str = "upsert") -> None:
    """Note local changes for a connection; within the caller's transaction. A record that
    already has a pending entry gets its `changed_at` moved on instead of a second entry, so a
    run pushing the earlier state knows it must push again."""
    if not local_ids:
        return
    # Chunks keep a statement under PostgreSQL's 65,535 parameters (9 a row).
    if len(local_ids) > ENQUEUE_CHUNK:
        for start in range(0, len(local_ids), ENQUEUE_CHUNK):
            enqueue(
                connection_id=connection_id,
                entity=entity,
                local_ids=local_ids[start : start + ENQUEUE_CHUNK],
                operation=operation,
            )
        return
    OutboxEntry = _models().OutboxEntry
    table = OutboxEntry._meta.db_table
    # Adapted by hand, as the ORM would: SQLite keeps naive UTC text, PostgreSQL a timestamptz.
    now = db_connection.ops.adapt_datetimefield_value(timezone.now())
    rows = [(connection_id, entity, local_id, operation, uuid.uuid4().hex) for local_id in local_ids]
    placeholders = ", ".join(["(%s, %s, %s, %s, 'pending', %s, 0, %s, '', %s, %s, '')"] * len(rows))
    params: list = []
    for connection, ent, local_id, op, request_id in rows:
        params += [connection, ent, local_id, op, request_id, now, now, now]
    # Raw SQL: the ORM cannot name a partial unique index as the ON CONFLICT target. Only the
    # table name is interpolated (from the model); every value is a bound parameter.
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (connection_id, entity, local_id, operation, status, request_id, attempts, "  # noqa: S608
            f"next_attempt_at, last_error, created_at, changed_at, batch_key) VALUES {placeholders} "
            "ON CONFLICT (connection_id, entity, local_id) WHERE status = 'pending' "
            "DO UPDATE SET changed_at = EXCLUDED.changed_at, operation = EXCLUDED.operation",
            params,
        )


def _claim(ctx: Context) -> list:
    """Pending, due entries for this connection, leased to this run (others skip them). A batch
    that failed as a whole is claimed whole, so that it is sent again with the same members."""
    OutboxEntry = _models().OutboxEntry
    now = timezone.now()
    order = Case(*[When(entity=e, then=Value(i)) for i, e in enumerate(canonical.ENTITIES)], default=Value(99))
    due = OutboxEntry.objects.select_for_update(skip_locked=True).filter(
        connection=ctx.connection, status=OutboxEntry.Status.PENDING, next_attempt_at__lte=now, entity__in=ctx.pushes
    )
    with transaction.atomic():
        entries = list(due.annotate(rank=order).order_by("rank", "batch_key", "id")[:CLAIM_SIZE])
        batches = {entry.batch_key for entry in entries if entry.batch_key}
        if batches:
            claimed = {entry.pk for entry in entries}
            entries += [
                member for member in due.filter(batch_key__in=batches).order_by("id") if member.pk not in claimed
            ]
        if entries:
            OutboxEntry.objects.filter(pk__in=[e.pk for e in entries]).update(next_attempt_at=now + CLAIM_LEASE)
    for entry in entries:
        entry.claimed_at = now
    return entries


def _finish_entry(entry, *, status: str, error: str = "") -> None:
    """Close an entry, unless the record changed again since it was claimed: then it stays
    pending (with a new request id: the content differs) for the next round."""
    OutboxEntry = _models().OutboxEntry
    now = timezone.now()
    closed = OutboxEntry.objects.filter(pk=entry.pk, changed_at__lte=entry.claimed_at).update(
        status=status, processed_at=now, last_error=error[:2000]
    )
    if not closed:
        OutboxEntry.objects.filter(pk=entry.pk).update(
            next_attempt_at=now, request_id=uuid.uuid4(), attempts=0, last_error="", batch_key=""
        )


def _retry_entry(entry, *, error: str) -> None:
    _retry_entries([entry], error=error)


def _retry_entries(entries: list, *, error: str) -> None:
    """Due again after one backoff, the same for all: a batch that failed whole stays due
    together, and is claimed and sent together."""
    OutboxEntry = _models().OutboxEntry
    delay = backoff_delay(max(entry.attempts for entry in entries), base=30.0, cap=3600.0)
    OutboxEntry.objects.filter(pk__in=[entry.pk for entry in entries]).update(
        next_attempt_at=timezone.now() + timedelta(seconds=delay), last_error=error[:2000]
    )


def _uncount_attempt(entries: list) -> None:
    OutboxEntry = _models().OutboxEntry
    OutboxEntry.objects.filter(pk__in=[entry.pk for entry in entries]).update(attempts=F("attempts") - 1)
    for entry in entries:
        entry.attempts -= 1


def _count_attempt(entries: list) -> None:
    """An attempt is a push sent, not a claim: entries claimed by a run that stopped before
    sending them (a rate limit, a killed worker) have not been tried."""
    OutboxEntry = _models().OutboxEntry
    OutboxEntry.objects.filter(pk__in=[entry.pk for entry in entries]).update(attempts=F("attempts") + 1)
    for entry in entries:
        entry.attempts += 1


# --- quarantine and conflicts ------------------------------------------------------------------


def quarantine(
    ctx: Context, *, entity: str, direction: str, error: Exception, local_id=None, remote_id="", payload=None
):
    """Set a record aside with why; a second failure of the same record updates the same item."""
    QuarantineItem = _models().QuarantineItem
    now = timezone.now()
    text = str(error) or error.__class__.__name__
    code = getattr(error, "code", "") or error.__class__.__name__
    payload = payload if isinstance(payload, dict) else {"payload": payload} if payload is not None else {}
    # The vendor's JSON as parsed (Decimals for amounts) made storable as it reads.
    payload = json.loads(json.dumps(payload, default=str))
    with transaction.atomic():
        item = (
            QuarantineItem.objects.select_for_update()
            .filter(
                connection=ctx.connection,
                entity=entity,
                direction=direction,
                local_id=local_id,
                remote_id=remote_id or "",
                status__in=["open", "retrying"],
            )
            .first()
        )
        if item is None:
            item = QuarantineItem(
                connection=ctx.connection,
                entity=entity,
                direction=direction,
                local_id=local_id,
                remote_id=remote_id or "",
            )
        else:
            item.attempts += 1
        item.status, item.error, item.error_code, item.payload, item.last_failed_at = (
            "open",
            text,
            str(code)[:50],
            payload,
            now,
        )
        item._history_user = ctx.actor
        item.save()
    ctx.count(entity, "quarantined")
    log.warning("sync %s: quarantined %s %s/%s: %s", ctx.connection.pk, entity, local_id, remote_id, text)


def _open_conflict(ctx: Context, *, entity, ref, fields, base, local, remote, version, kind="edit", detail=""):
    Conflict = _models().Conflict
    existing = (
        Conflict.objects.select_for_update()
        .filter(connection=ctx.connection, entity=entity, remote_id=ref.remote_id, status="open")
        .first()
    )
    conflict = existing or Conflict(connection=ctx.connection, entity=entity, remote_id=ref.remote_id)
    content = (ref.local_id, kind, sorted(fields), base, local, remote, version, detail[:500])
    if existing is not None and content == (
        existing.local_id,
        existing.kind,
        existing.fields,
        existing.base,
        existing.local,
        existing.remote,
        existing.remote_version,
        existing.detail,
    ):
        return  # the same open conflict read again: nothing new for a person to see
    conflict.local_id, conflict.kind, conflict.fields = ref.local_id, kind, sorted(fields)
    conflict.base, conflict.local, conflict.remote = base, local, remote
    conflict.remote_version, conflict.detail = version, detail[:500]
    conflict._history_user = ctx.actor
    conflict.save()
    ctx.count(entity, "conflicts")


# --- pull ---------------------------------------------------------------------------------------


def apply_remote(ctx: Context, state: RemoteState, *, depth: int = 0) -> None:
    """Bring one remote record into Concord: create, update (merging), or mirror its deletion."""
    models = _models()
    entity = state.entity
    try:
        if state.error is not None:
            raise state.error
        with transaction.atomic():
            _lock_remote_record(ctx, entity, state.remote_id)
            ref = (
                models.ExternalRef.objects.select_for_update()
                .filter(connection=ctx.connection, entity=entity, remote_id=state.remote_id)
                .first()
            )
            if state.deleted or (state.record is not None and getattr(state.record, "voided", False)):
                _apply_removal(ctx, state, ref)
            elif ref is None:
                _apply_new(ctx, state)
            else:
                _apply_change(ctx, state, ref)
    except IntegrityError:
        # Another run linked the same remote record meanwhile (two runs at once): this record's
        # transaction is rolled back whole, and applied again it finds the link and merges.
        if depth >= MAX_DEPENDENCY_DEPTH:
            raise
        apply_remote(ctx, state, depth=depth + 1)
    except errors.DependencyMissing as missing:
        if depth >= MAX_DEPENDENCY_DEPTH:
            quarantine(
                ctx, entity=entity, direction="pull", error=missing, remote_id=state.remote_id, payload=state.raw
            )
            return
        # Pull the record it refers to first, then this one again.
        apply_remote(ctx, ctx.adapter.fetch(missing.entity, missing.remote_id), depth=depth + 1)
        apply_remote(ctx, state, depth=depth + 1)
    except (errors.ValidationRejected, errors.DependencyNotSynced) as rejected:
        quarantine(ctx, entity=entity, direction="pull", error=rejected, remote_id=state.remote_id, payload=state.raw)
    except errors.CannotMirror:
        raise
    except (ValueError, TypeError, KeyError) as broken:
        # Content Concord cannot read is set aside, not retried forever.
        quarantine(ctx, entity=entity, direction="pull", error=broken, remote_id=state.remote_id, payload=state.raw)


def _lock_remote_record(ctx: Context, entity: str, remote_id: str) -> None:
    """Serialise two runs applying the same remote record. A row lock on the link is not enough:
    before the first pull there is no link to lock, and both runs would create the local record
    (the loser's transaction rolls back on the link's unique constraint, but local side effects
    such as an invoice number are already drawn). Held until the record's transaction ends."""
    if db_connection.vendor != "postgresql":
        return  # SQLite (make run) serialises every write anyway
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))",
            [ctx.connection.pk, f"{entity}:{remote_id}"],
        )


def _link(ctx: Context, *, entity: str, local_id: int, state: RemoteState, agreed: dict | None = None):
    models = _models()
    record = state.record
    fields = agreed if agreed is not None else record.fields()
    return models.ExternalRef.objects.create(
        connection=ctx.connection,
        entity=entity,
        local_id=local_id,
        remote_id=state.remote_id,
        remote_version=state.version,
        synced_state=fields,
        synced_hash=plain_hash(fields, record.read_only),
        mapping_version=ctx.adapter.mapping.version,
    )


def _held_as_agreed(ctx: Context, entity: str, remote: dict, local: dict) -> dict:
    """The vendor's fields, with those it cannot hold taken as Concord's (so they never differ)."""
    not_held = ctx.adapter.fields_not_held.get(entity, ())
    if not not_held:
        return remote
    return {**remote, **{name: local[name] for name in not_held if name in local}}


def plain_hash(fields: dict, read_only) -> str:
    """The fingerprint Record.content_hash gives, of fields already in their plain form."""
    writable = {name: value for name, value in fields.items() if name not in read_only}
    return hashlib.sha256(json.dumps(writable, sort_keys=True).encode()).hexdigest()


def _apply_new(ctx: Context, state: RemoteState) -> None:
    entity, record = state.entity, state.record
    lookup = local_id_of(ctx.connection.pk)
    obj = ctx.local.match(entity, record, local_id_of=lookup)
    if obj is None:
        obj = ctx.local.create(entity, record, local_id_of=lookup, actor=ctx.actor)
        _link(ctx, entity=entity, local_id=obj.pk, state=state)
        ctx.count(entity, "created")
        return
    # Linking two records that existed apart: where they differ, the field policies decide (no
    # base: every difference counts as a change on both sides).
    ref = _link(ctx, entity=entity, local_id=obj.pk, state=state, agreed={})
    _apply_change(ctx, state, ref, local_obj=obj)
    ctx.count(entity, "linked")


def _apply_change(ctx: Context, state: RemoteState, ref, *, local_obj=None) -> None:
    entity, record = state.entity, state.record
    seen = _held_as_agreed(ctx, entity, record.fields(), ref.synced_state)
    if ref.remote_version == state.version and ref.synced_hash == plain_hash(seen, record.read_only):
        return  # the echo of our own push, or a record seen twice in overlapping pages
    obj = local_obj or ctx.local.get(entity, ref.local_id)
    if obj is None:
        return  # deleted here: the push of its deletion settles it
    mine = ctx.local.to_record(entity, obj, remote_id_of=remote_id_of(ctx.connection.pk)).fields()
    theirs = _held_as_agreed(ctx, entity, record.fields(), mine)
    merge = three_way(
        base=ref.synced_state,
        local=mine,
        remote=theirs,
        policy=lambda name: ctx.connection.policy_for(entity, name),
        read_only=record.read_only,
    )
    if merge.to_local:
        try:
            with transaction.atomic():
                ctx.local.update(
                    entity,
                    obj,
                    record,
                    set(merge.to_local),
                    local_id_of=local_id_of(ctx.connection.pk),
                    actor=ctx.actor,
                )
        except errors.CannotMirror as refused:
            # Concord cannot take the remote change: a person decides between the two versions.
            _open_conflict(
                ctx,
                entity=entity,
                ref=ref,
                fields=list(merge.to_local),
                base=ref.synced_state,
                local=mine,
                remote=theirs,
                version=state.version,
                detail=str(refused),
            )
            merge.conflicts.extend(merge.to_local)
            merge.to_local.clear()
        else:
            ctx.count(entity, "updated")
    if merge.conflicts:
        _open_conflict(
            ctx,
            entity=entity,
            ref=ref,
            fields=merge.conflicts,
            base=ref.synced_state,
            local=mine,
            remote=theirs,
            version=state.version,
        )
    # The new base is the package's state as it now is, except for fields under a conflict,
    # which keep the old base until a person decides. A field Concord must push therefore differs
    # from the base on Concord's side only, which is what the push looks for.
    base = dict(theirs)
    for name in merge.conflicts:
        base[name] = ref.synced_state.get(name)
    ref.remote_version = state.version
    ref.synced_state = base
    ref.synced_hash = plain_hash(base, record.read_only)
    ref.mapping_version = ctx.adapter.mapping.version
    ref.last_synced_at = timezone.now()
    ref.save()
    if merge.to_remote and entity in ctx.pushes:
        enqueue(connection_id=ctx.connection.pk, entity=entity, local_ids=[ref.local_id])


def _apply_removal(ctx: Context, state: RemoteState, ref) -> None:
    entity = state.entity
    if ref is None:
        if state.deleted:
            return  # never seen here: nothing to mirror
        # A record created and voided remotely before Concord saw it: keep it, voided.
        _apply_new(ctx, RemoteState(**{**state.__dict__, "record": state.record.replace(voided=False)}))
        ref = _models().ExternalRef.objects.get(connection=ctx.connection, entity=entity, remote_id=state.remote_id)
    if ref.remote_deleted:
        return
    obj = ctx.local.get(entity, ref.local_id)
    removed_here = False
    if obj is not None and ctx.local.removal(entity, obj) == "":
        try:
            with transaction.atomic():
                ctx.local.remove(entity, obj, actor=ctx.actor)
            removed_here = True
        except errors.CannotMirror as refused:
            _open_conflict(
                ctx,
                entity=entity,
                ref=ref,
                fields=["deleted"],
                base=ref.synced_state,
                local=ctx.local.to_record(entity, obj, remote_id_of=remote_id_of(ctx.connection.pk)).fields(),
                remote={"deleted": True} if state.deleted else state.record.fields(),
                version=state.version,
                kind="delete",
                detail=str(refused),
            )
            return
    before = (ref.remote_deleted, ref.remote_version, ref.synced_hash)
    ref.remote_deleted = state.deleted
    ref.remote_version = state.version or ref.remote_version
    if state.record is not None:
        ref.synced_state = state.record.fields()
        ref.synced_hash = state.record.content_hash()
    if not removed_here and before == (ref.remote_deleted, ref.remote_version, ref.synced_hash):
        return  # a void read again (the full pull, an overlapping page): nothing happened
    ref.last_synced_at = timezone.now()
    ref.save()
    ctx.count(entity, "deleted" if state.deleted else "voided")


def pull_entity(ctx: Context, entity: str) -> None:
    """Everything of `entity` changed remotely since the cursor, then deletes by full scan when the
    change feed no longer reaches back to the cursor."""
    SyncCursor = _models().SyncCursor
    cursor, _ = SyncCursor.objects.get_or_create(connection=ctx.connection, entity=entity)
    started_from = cursor.value
    feed_reaches = not started_from or ctx.adapter.cursor_is_usable(started_from, now=timezone.now())
    value = started_from
    while True:
        ctx.run.phase = f"Pulling {entity}"
        ctx.progress()
        page = ctx.adapter.changes(entity, cursor=value)
        for state in page.states:
            apply_remote(ctx, state)
            ctx.count(entity, "pulled")
            ctx.run.done += 1
        if page.next_cursor and page.next_cursor != value:
            value = page.next_cursor
            # Only forward: an overlapping run may have moved it further already.
            SyncCursor.objects.filter(pk=cursor.pk).filter(value__lt=value).update(value=value)
        ctx.progress()
        if page.complete or not page.states:
            break
    due_scan = cursor.full_scan_at is None or cursor.full_scan_at < timezone.now() - FULL_SCAN_EVERY
    if started_from and (not feed_reaches or due_scan):
        find_remote_deletes(ctx, entity)
        SyncCursor.objects.filter(pk=cursor.pk).update(full_scan_at=timezone.now())


def find_remote_deletes(ctx: Context, entity: str) -> None:
    """Links whose remote record is no longer among the live ids were deleted remotely."""
    ExternalRef = _models().ExternalRef
    ctx.run.phase = f"Looking for deleted {entity}"
    ctx.progress()
    live = ctx.adapter.remote_ids(entity)
    gone = ExternalRef.objects.filter(connection=ctx.connection, entity=entity, remote_deleted=False).exclude(
        remote_id__in=live
    )
    for remote_id in gone.values_list("remote_id", flat=True).iterator():
        state = ctx.adapter.fetch(entity, remote_id)
        if state.deleted:
            apply_remote(ctx, state)


def pull_targets(ctx: Context, targets: Sequence[tuple[str, str]]) -> None:
    """The records a webhook named, fetched one by one."""
    for entity, remote_id in targets:
        if entity not in ctx.pulls:
            continue
        ctx.run.phase = f"Pulling {entity} {remote_id}"
        apply_remote(ctx, ctx.adapter.fetch(entity, remote_id))
        ctx.count(entity, "pulled")
        ctx.run.done += 1
        ctx.progress()


# --- push ---------------------------------------------------------------------------------------


def queue_first_push(ctx: Context) -> int:
    """Queue, once per connection, every local record the package should have and no link covers:
    what Concord held before the connection existed. Pushed (or matched to the package's twin by
    the pull that ran first) like any change. Returns how many were queued."""
    Connection = _models().Connection
    queued = 0
    for entity in canonical.ENTITIES:
        if entity in ctx.pushes:
            ids = list(ctx.local.awaiting_first_push(entity))
            enqueue(connection_id=ctx.connection.pk, entity=entity, local_ids=ids)
            queued += len(ids)
    Connection.objects.filter(pk=ctx.connection.pk).update(first_push_queued_at=timezone.now())
    ctx.connection.first_push_queued_at = timezone.now()
    return queued


def push_pending(ctx: Context) -> None:
    """Push claimed outbox entries until none is due."""
    while True:
        entries = _claim(ctx)
        if not entries:
            return
        ctx.run.phase = "Pushing changes"
        ctx.run.total += len(entries)
        ctx.progress()
        by_entity: dict[str, list] = defaultdict(list)
        for entry in entries:
            by_entity[entry.entity].append(entry)
        for entity in canonical.ENTITIES:
            if entity in by_entity:
                _push_entries(ctx, entity, by_entity[entity])
        ctx.progress()


def _push_entries(ctx: Context, entity: str, entries: list) -> None:
    ExternalRef = _models().ExternalRef
    lookup = remote_id_of(ctx.connection.pk)
    operations: list[tuple[object, PushOperation, object]] = []
    refs = {
        ref.local_id: ref
        for ref in ExternalRef.objects.filter(
            connection=ctx.connection, entity=entity, local_id__in=[e.local_id for e in entries]
        )
    }
    for entry in entries:
        ref = refs.get(entry.local_id)
        obj = ctx.local.get(entity, entry.local_id)
        try:
            operation = _operation_for(ctx, entity, entry, obj, ref, lookup)
        except errors.DependencyNotSynced as missing:
            # The record it refers to goes first; this one waits a little.
            enqueue(connection_id=ctx.connection.pk, entity=missing.entity, local_ids=[missing.local_id])
            _retry_entry(entry, error=str(missing))
            continue
        except (errors.ValidationRejected, ValueError) as rejected:
            quarantine(ctx, entity=entity, direction="push", error=rejected, local_id=entry.local_id)
            _finish_entry(entry, status="quarantined", error=str(rejected))
            continue
        if operation is None:
            _finish_entry(entry, status="skipped")
            continue
        operations.append((entry, operation, ref))
    for chunk in _chunks(operations, max(ctx.adapter.batch_size, 1)):
        members = [entry for entry, _, _ in chunk]
        _count_attempt(members)
        try:
            results = ctx.adapter.push([operation for _, operation, _ in chunk])
        except errors.TransientError as failed:
            key = members[0].batch_key or uuid.uuid4().hex
            _models().OutboxEntry.objects.filter(pk__in=[entry.pk for entry in members]).update(batch_key=key)
            if isinstance(failed, errors.RateLimited | errors.CircuitOpen):
                # Refused before the records were looked at (a rate limit, the breaker): no
                # attempt used, so that a day's limit cannot wear records into quarantine.
                _uncount_attempt(members)
                _retry_entries(members, error=str(failed))
                ctx.run.errors.append(f"{entity}: {failed}")
                raise
            given_up = [entry for entry in members if entry.attempts >= MAX_PUSH_ATTEMPTS]
            for entry in given_up:
                _retry_or_quarantine(ctx, entity, entry, failed)
            if len(given_up) < len(members):
                _retry_entries([entry for entry in members if entry not in given_up], error=str(failed))
            ctx.run.errors.append(f"{entity}: {failed}")
            continue
        by_request = {result.request_id: result for result in results}
        for entry, operation, ref in chunk:
            _settle(ctx, entity, entry, operation, ref, by_request.get(operation.request_id))
        ctx.run.done += len(chunk)
        ctx.progress()


def _chunks(operations: list, size: int) -> list[list]:
    """Batches to send: a batch that failed as a whole goes again with exactly the same members;
    the other operations fill new batches."""
    again: dict[str, list] = defaultdict(list)
    fresh = []
    for item in operations:
        (again[item[0].batch_key] if item[0].batch_key else fresh).append(item)
    chunks = list(again.values())
    chunks += [fresh[start : start + size] for start in range(0, len(fresh), size)]
    return chunks


def _operation_for(ctx: Context, entity, entry, obj, ref, lookup) -> PushOperation | None:
    request_id = str(entry.request_id)
    if obj is None:
        # Gone here: the twin goes too (deactivated for name lists, deleted otherwise).
        if ref is None or ref.remote_deleted or ref.local_deleted:
            return None
        kind = "deactivate" if entity in (canonical.CUSTOMER, canonical.PRODUCT) else "delete"
        return PushOperation(kind, entity, request_id, remote_id=ref.remote_id, version=ref.remote_version)
    if not ctx.local.syncs(entity, obj):
        return None
    removal = ctx.local.removal(entity, obj)
    if removal:
        if ref is None or ref.remote_deleted:
            return None  # never pushed, or already gone there: nothing to mirror
        if ref.synced_state.get("voided") and removal == "void":
            return None
        return PushOperation(removal, entity, request_id, remote_id=ref.remote_id, version=ref.remote_version)
    record = ctx.local.to_record(entity, obj, remote_id_of=lookup)
    if ref is None:
        return PushOperation("create", entity, request_id, record=record)
    if ref.remote_deleted:
        return None
    fields = record.fields()
    held = _fields_in_conflict(ctx, entity, ref.remote_id) | set(ctx.adapter.fields_not_held.get(entity, ()))
    changed = frozenset(
        name
        for name, value in fields.items()
        if name not in record.read_only and name not in held and ref.synced_state.get(name) != value
    )
    if not changed:
        return None
    return PushOperation(
        "update",
        entity,
        request_id,
        record=record,
        remote_id=ref.remote_id,
        version=ref.remote_version,
        changed=changed,
    )


def _fields_in_conflict(ctx: Context, entity: str, remote_id: str) -> set[str]:
    """Fields a person has still to decide: neither side's value is pushed meanwhile."""
    open_conflicts = (
        _models()
        .Conflict.objects.filter(connection=ctx.connection, entity=entity, remote_id=remote_id, status="open")
        .values_list("fields", flat=True)
    )
    return {name for fields in open_conflicts for name in fields}


def _retry_or_quarantine(ctx: Context, entity: str, entry, failure: Exception) -> None:
    if entry.attempts >= MAX_PUSH_ATTEMPTS:
        quarantine(ctx, entity=entity, direction="push", error=failure, local_id=entry.local_id)
        _finish_entry(entry, status="quarantined", error=str(failure))
    else:
        _retry_entry(entry, error=str(failure))


def _settle(ctx: Context, entity: str, entry, operation: PushOperation, ref, result: PushResult | None) -> None:
    ExternalRef = _models().ExternalRef
    if result is None:
        _retry_or_quarantine(
            ctx, entity, entry, errors.TransientError("The package returned no result for this record.")
        )
        return
    error = result.error
    if isinstance(error, errors.StaleVersion):
        # Changed remotely since our last look: merge with the remote state, push again.
        try:
            apply_remote(ctx, ctx.adapter.fetch(entity, operation.remote_id))
        except errors.SyncError as failed:
            _retry_or_quarantine(ctx, entity, entry, failed)
            return
        _retry_entry(entry, error="Changed remotely meanwhile; merged and queued again.")
        _models().OutboxEntry.objects.filter(pk=entry.pk).update(next_attempt_at=timezone.now())
        return
    if isinstance(error, errors.RemoteNotFound) and ref is not None:
        # Deleted remotely: mirror the delete here rather than recreate it there.
        apply_remote(
            ctx,
            RemoteState(entity=entity, remote_id=ref.remote_id, version="", updated_at=None, record=None, deleted=True),
        )
        _finish_entry(entry, status="skipped", error=str(error))
        return
    if isinstance(error, errors.ValidationRejected | errors.RemoteNotFound):
        quarantine(
            ctx,
            entity=entity,
            direction="push",
            error=error,
            local_id=entry.local_id,
            payload=getattr(error, "payload", None),
        )
        _finish_entry(entry, status="quarantined", error=str(error))
        return
    if error is not None:
        _retry_or_quarantine(ctx, entity, entry, error)
        return
    state = result.state
    with transaction.atomic():
        if operation.kind == "create":
            try:
                with transaction.atomic():
                    agreed = _held_as_agreed(ctx, entity, state.record.fields(), operation.record.fields())
                    _link(ctx, entity=entity, local_id=entry.local_id, state=state, agreed=agreed)
            except IntegrityError:
                # Linked meanwhile by an overlapping run that pushed the same request id: the
                # vendor replayed the same record, so the link is already right.
                pass
        else:
            ref = ExternalRef.objects.select_for_update().get(pk=ref.pk)
            if operation.kind in ("delete", "deactivate"):
                ref.local_deleted = True
            if state is not None:
                ref.remote_version = state.version
                if state.record is not None:
                    local = operation.record.fields() if operation.record is not None else ref.synced_state
                    ref.synced_state = _held_as_agreed(ctx, entity, state.record.fields(), local)
                    ref.synced_hash = plain_hash(ref.synced_state, state.record.read_only)
                ref.remote_deleted = state.deleted
            elif operation.record is not None:
                ref.synced_state = operation.record.fields()
            ref.mapping_version = ctx.adapter.mapping.version
            ref.last_synced_at = timezone.now()
            ref.save()
        _finish_entry(entry, status="done")
    ctx.count(entity, "pushed")
