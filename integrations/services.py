"""Every write of the sync engine's own records: connections, their schedules, settings and
mappings, runs, conflicts and quarantine. The engine itself is integrations/core/engine.py."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.audit import save_as

from .core import errors
from .core.adapter import Mapping
from .core.engine import Context, enqueue, pull_entity, pull_targets, push_pending, queue_first_push
from .core.merge import POLICIES
from .models import (
    Conflict,
    Connection,
    EntitySetting,
    ExternalRef,
    MappingVersion,
    PayloadArchive,
    Provider,
    QuarantineItem,
    SyncRun,
    WebhookDelivery,
)
from .outbox import applying_remote_changes

log = logging.getLogger(__name__)

# A run holds its connection this long past its last sign of life.
RUN_LEASE = timedelta(minutes=10)
# Progress is written at most this often (the page polls it).
PROGRESS_EVERY = timedelta(seconds=1)
# After this many failed runs in a row the connection shows as failing.
FAILING_AFTER = 3
DEFAULT_EVERY_MINUTES = 15
SYSTEM_USERNAME = "concord-sync"
SYNC_TASK = "integrations.tasks.sync_connection_on_schedule"


def sync_actor():
    """The user that sync writes are attributed to in history ("changed by the sync")."""
    User = get_user_model()
    user, _ = User.objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"first_name": "Sync", "last_name": "engine", "is_active": False}
    )
    return user


def _adapter_entities(provider: str) -> tuple[str, ...]:
    from .providers import BUILDERS

    if provider not in BUILDERS:
        raise ValidationError({"provider": f"{provider} cannot be connected yet."})
    from .core.canonical import ENTITIES

    return ENTITIES


# --- connections ------------------------------------------------------------------------------


@transaction.atomic
def create_connection(*, actor, provider: str, name: str, every_minutes: int = DEFAULT_EVERY_MINUTES) -> Connection:
    """A connection waiting for its OAuth grant, with every entity flowing both ways, an empty
    first mapping version and a (disabled until connected) schedule."""
    if provider not in Provider.values:
        raise ValidationError({"provider": f"Unknown provider {provider!r}."})
    entities = _adapter_entities(provider)
    if not name.strip():
        raise ValidationError({"name": "Give the connection a name."})
    from .providers import pacing_defaults

    connection = Connection(name=name.strip(), provider=provider, created_by=actor, **pacing_defaults(provider))
    connection.full_clean()
    save_as(connection, actor=actor)
    for entity in entities:
        save_as(EntitySetting(connection=connection, entity=entity), actor=actor)
    save_as(MappingVersion(connection=connection, version=1, created_by=actor, note="Initial mapping"), actor=actor)
    _set_schedule(connection, every_minutes=every_minutes, enabled=False)
    return connection


def _set_schedule(connection: Connection, *, every_minutes: int, enabled: bool) -> None:
    if not 1 <= every_minutes <= 24 * 60:
        raise ValidationError({"every_minutes": "Run between once a minute and once a day."})
    interval, _ = IntervalSchedule.objects.get_or_create(every=every_minutes, period=IntervalSchedule.MINUTES)
    task = connection.schedule
    if task is None:
        task = PeriodicTask(name=f"Sync connection {connection.pk}", task=SYNC_TASK)
    task.interval, task.enabled = interval, enabled
    task.kwargs = json.dumps({"connection_id": connection.pk})
    task.save()
    if connection.schedule_id != task.pk:
        connection.schedule = task
        connection.save(update_fields=["schedule", "updated_at"])


@transaction.atomic
def set_schedule(*, actor, connection: Connection, every_minutes: int) -> Connection:
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    _set_schedule(connection, every_minutes=every_minutes, enabled=connection.status == Connection.Status.ACTIVE)
    connection._change_reason = f"Schedule: every {every_minutes} minutes"
    save_as(connection, actor=actor)
    return connection


@transaction.atomic
def begin_authorization(*, actor, connection: Connection, redirect_uri: str) -> str:
    """The vendor's consent page address; `state` ties the callback to this connection."""
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    connection.oauth_state = secrets.token_urlsafe(24)
    connection.save(update_fields=["oauth_state", "updated_at"])
    from .providers import authorization_module

    return authorization_module(connection.provider).authorization_url(
        state=connection.oauth_state, redirect_uri=redirect_uri
    )


def complete_authorization(*, actor, state: str, code: str, tenant_id: str, redirect_uri: str) -> Connection:
    """The vendor's redirect back: exchange the code, keep the tokens, start the schedule.

    QuickBooks names the company in its redirect. Xero does not: the new grant's organisations
    are listed, one is taken when there is one, and otherwise the connection waits (tokens kept,
    still "connecting") for a person to choose with `choose_tenant`."""
    from .providers import authorization_module
    from .tokens import save_tokens

    if not state:
        raise ValidationError("The authorisation answer carries no state; start again from the connection page.")
    connection = Connection.objects.filter(oauth_state=state).first()
    if connection is None:
        raise ValidationError("This authorisation answer does not match a connection being connected.")
    module = authorization_module(connection.provider)
    names_tenant = bool(getattr(module, "TENANT_PARAMETER", "realmId"))
    if not code or (names_tenant and not tenant_id):
        raise ValidationError("The package did not grant access (no code or company id in its answer).")
    if names_tenant:
        _refuse_tenant_clash(connection, tenant_id)
    # The HTTP exchange happens outside any transaction; the tokens are saved at once after it.
    tokens = module.exchange_code(code=code, redirect_uri=redirect_uri)
    if not names_tenant:
        with transaction.atomic():
            connection = Connection.objects.select_for_update().get(pk=connection.pk)
            connection.oauth_state = ""
            save_tokens(connection, tokens)
            connection.save(update_fields=["oauth_state", "updated_at"])
        tenants = module.list_tenants(tokens)
        if not tenants:
            raise ValidationError("The grant reaches no organisation: choose one on the package's consent page.")
        if len(tenants) > 1:
            return connection  # a person chooses (choose_tenant)
        tenant_id = tenants[0].tenant_id
        _refuse_tenant_clash(connection, tenant_id)
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection.pk)
        if names_tenant:
            save_tokens(connection, tokens)
        connection.oauth_state = ""
        _activate(connection, tenant_id=tenant_id, actor=actor)
    return connection


def tenants_to_choose(*, connection: Connection) -> list:
    """The organisations the connection's grant reaches (asked of the package now), for a person to
    pick one after connecting to a provider whose redirect names none."""
    from .providers import authorization_module
    from .tokens import ConnectionTokenStore

    module = authorization_module(connection.provider)
    if not hasattr(module, "list_tenants"):
        raise ValidationError(f"{connection.get_provider_display()} names the company when it connects.")
    if not connection.refresh_token:
        raise ValidationError("Connect first: there is no grant to list organisations from.")
    return module.list_tenants(ConnectionTokenStore(connection.pk).current())


def choose_tenant(*, actor, connection: Connection, tenant_id: str) -> Connection:
    """Take one of the grant's organisations, checked against the package's list again now."""
    offered = {tenant.tenant_id for tenant in tenants_to_choose(connection=connection)}
    if tenant_id not in offered:
        raise ValidationError("That organisation is not one this grant reaches; choose one from the list.")
    _refuse_tenant_clash(connection, tenant_id)
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection.pk)
        if connection.tenant_id and connection.tenant_id != tenant_id:
            raise ValidationError(
                f"“{connection}” already syncs organisation {connection.tenant_id}; create another connection "
                "for a second organisation."
            )
        _activate(connection, tenant_id=tenant_id, actor=actor)
    return connection


def _refuse_tenant_clash(connection: Connection, tenant_id: str) -> None:
    clash = (
        Connection.objects.filter(provider=connection.provider, tenant_id=tenant_id).exclude(pk=connection.pk).first()
    )
    if clash is not None:
        raise ValidationError(f"That company is already connected as “{clash}”.")


def _activate(connection: Connection, *, tenant_id: str, actor) -> None:
    """Inside the caller's transaction, with the connection locked."""
    connection.tenant_id = tenant_id
    connection.status, connection.status_detail = Connection.Status.ACTIVE, ""
    connection._change_reason = "Connected"
    save_as(connection, actor=actor)
    if connection.schedule:
        PeriodicTask.objects.filter(pk=connection.schedule_id).update(enabled=True)


@transaction.atomic
def pause_connection(*, actor, connection: Connection) -> Connection:
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    connection.status, connection.status_detail = Connection.Status.PAUSED, f"Paused by {actor}"
    save_as(connection, actor=actor)
    if connection.schedule_id:
        PeriodicTask.objects.filter(pk=connection.schedule_id).update(enabled=False)
    return connection


@transaction.atomic
def resume_connection(*, actor, connection: Connection) -> Connection:
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    if connection.status != Connection.Status.PAUSED:
        raise ValidationError(f"{connection} is {connection.get_status_display().lower()}, not paused.")
    connection.status, connection.status_detail = Connection.Status.ACTIVE, ""
    save_as(connection, actor=actor)
    if connection.schedule_id:
        PeriodicTask.objects.filter(pk=connection.schedule_id).update(enabled=True)
    return connection


def mark_needs_reauthorization(*, connection_id: int, reason: str) -> None:
    """The grant is gone: stop the schedule (no retry storm) and show the banner."""
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        if connection.status == Connection.Status.NEEDS_REAUTHORIZATION:
            return
        connection.status = Connection.Status.NEEDS_REAUTHORIZATION
        connection.status_detail = f"Access was refused: {reason}"[:500]
        connection._change_reason = "Grant refused by the package"
        save_as(connection, actor=sync_actor())
        if connection.schedule_id:
            PeriodicTask.objects.filter(pk=connection.schedule_id).update(enabled=False)


@transaction.atomic
def set_direction(*, actor, connection: Connection, entity: str, direction: str) -> EntitySetting:
    setting = EntitySetting.objects.select_for_update().get(connection=connection, entity=entity)
    if direction not in EntitySetting.Direction.values:
        raise ValidationError({"direction": f"Unknown direction {direction!r}."})
    setting.direction = direction
    save_as(setting, actor=actor)
    return setting


@transaction.atomic
def set_field_policy(*, actor, connection: Connection, entity: str, field: str, policy: str) -> Connection:
    if policy not in POLICIES:
        raise ValidationError({"policy": f"Choose one of {', '.join(POLICIES)}."})
    connection = Connection.objects.select_for_update().get(pk=connection.pk)
    connection.field_policies = {
        **connection.field_policies,
        entity: {**connection.field_policies.get(entity, {}), field: policy},
    }
    save_as(connection, actor=actor)
    return connection


# --- mappings ---------------------------------------------------------------------------------

MAPPING_TABLES = ("accounts", "tax_codes", "items", "payment_methods", "terms")


@transaction.atomic
def create_mapping_version(*, actor, connection: Connection, note: str = "", **tables: dict) -> MappingVersion:
    """A new version of the mapping: the tables given replace the latest version's, the others
    carry over. Runs from now on use it; records synced with an older one keep saying so."""
    unknown = set(tables) - set(MAPPING_TABLES)
    if unknown:
        raise ValidationError(f"Unknown mapping tables: {', '.join(sorted(unknown))}.")
    for name, table in tables.items():
        if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
            raise ValidationError({name: "A mapping table maps Concord's values to the package's, both as text."})
    Connection.objects.select_for_update().get(pk=connection.pk)
    latest = MappingVersion.objects.filter(connection=connection).order_by("-version").first()
    carried = {name: getattr(latest, name) if latest else {} for name in MAPPING_TABLES}
    version = MappingVersion(
        connection=connection,
        version=(latest.version + 1) if latest else 1,
        note=note,
        created_by=actor,
        **{**carried, **tables},
    )
    save_as(version, actor=actor)
    return version


def current_mapping(connection: Connection) -> Mapping:
    latest = MappingVersion.objects.filter(connection=connection).order_by("-version").first()
    if latest is None:
        return Mapping(version=0)
    return Mapping(version=latest.version, **{name: dict(getattr(latest, name)) for name in MAPPING_TABLES})


@transaction.atomic
def repush_with_latest_mapping(*, actor, connection: Connection, entity: str, local_ids: list[int]) -> int:
    """Queue records for another push, e.g. after a mapping change they were synced without."""
    linked = list(
        ExternalRef.objects.filter(connection=connection, entity=entity, local_id__in=local_ids).values_list(
            "local_id", flat=True
        )
    )
    # Forget the synced state so the push sends every field again under the new mapping.
    ExternalRef.objects.filter(connection=connection, entity=entity, local_id__in=linked).update(
        synced_state={}, synced_hash=""
    )
    enqueue(connection_id=connection.pk, entity=entity, local_ids=local_ids)
    return len(local_ids)


# --- runs ---------------------------------------------------------------------------------------


def request_run(*, actor=None, connection: Connection, trigger: str, targets: list | None = None) -> SyncRun:
    """A queued run, handed to a worker once the transaction commits."""
    from . import tasks

    if not connection.is_runnable:
        raise ValidationError(
            f"{connection} is {connection.get_status_display().lower()}: "
            + (
                "reconnect it first."
                if connection.status == Connection.Status.NEEDS_REAUTHORIZATION
                else "resume it first."
            )
        )
    if trigger == SyncRun.Trigger.MANUAL and connection.is_limited:
        raise ValidationError(connection.limited_reason or f"{connection} is held by its package's limit.")
    with transaction.atomic():
        run = SyncRun.objects.create(connection=connection, trigger=trigger, requested_by=actor, targets=targets or [])
        transaction.on_commit(lambda: tasks.sync_connection.delay(run_id=run.pk))
    return run


def _claim_connection(connection_id: int):
    """Hold the connection for one run; returns the lease (its expiry, which is also the
    holder's token), or None while another run holds it."""
    now = timezone.now()
    lease = now + RUN_LEASE
    taken = (
        Connection.objects.filter(pk=connection_id)
        .filter(Q(run_lease_until__isnull=True) | Q(run_lease_until__lt=now))
        .update(run_lease_until=lease)
    )
    return lease if taken else None


def _renew_lease(connection_id: int, lease):
    """Extend this run's hold; None once another run has taken the connection over (this run
    stalled past its lease). A lease that lapsed with nobody taking it is simply taken back."""
    renewed = timezone.now() + RUN_LEASE
    held = (
        Connection.objects.filter(pk=connection_id)
        .filter(Q(run_lease_until=lease) | Q(run_lease_until__isnull=True))
        .update(run_lease_until=renewed)
    )
    return renewed if held else None


def _release_connection(connection_id: int, lease) -> None:
    """Let go of the connection, unless another run holds it by now."""
    Connection.objects.filter(pk=connection_id, run_lease_until=lease).update(run_lease_until=None)
    Connection.objects.filter(pk=connection_id).update(last_run_at=timezone.now())


def _fail_abandoned_runs(connection_id: int, *, now) -> int:
    """Runs left "running" by a worker that died: silent for longer than the lease."""
    silent_since = now - RUN_LEASE
    return (
        SyncRun.objects.filter(connection_id=connection_id, status=SyncRun.Status.RUNNING)
        .filter(Q(heartbeat_at__lt=silent_since) | Q(heartbeat_at__isnull=True, started_at__lt=silent_since))
        .update(
            status=SyncRun.Status.FAILED,
            phase="Worker lost",
            finished_at=now,
            errors=["The worker carrying out this run stopped answering; the next run carried on."],
        )
    )


class LeaseLost(errors.SyncError):
    """Another run took the connection over while this one was stalled."""


class _Recorder:
    """Archives every HTTP exchange of a run (compressed), and counts them for the health panel."""

    def __init__(self, run: SyncRun):
        self.run = run

    def __call__(self, exchange: dict) -> None:
        self.run.requests += 1
        self.run.request_ms += int(exchange.get("duration_ms") or 0)
        status = exchange.get("status")
        if status is None or status >= 400:
            self.run.request_errors += 1
        PayloadArchive.objects.create(
            connection_id=self.run.connection_id,
            run=self.run,
            entity=exchange.get("entity", "")[:20],
            remote_id=str(exchange.get("remote_id", ""))[:100],
            method=exchange.get("method", "")[:10],
            url=exchange.get("url", "")[:1000],
            status_code=status,
            request_id=str(exchange.get("request_id") or "")[:100],
            request_body=PayloadArchive.pack(exchange.get("request_body")),
            response_body=PayloadArchive.pack(exchange.get("response_body")),
            duration_ms=int(exchange.get("duration_ms") or 0),
        )


def run_sync(*, run_id: int) -> SyncRun:
    """Carry out one queued run: pull (everything changed, or the records a webhook named), then
    push the outbox. Safe to call twice for the same run, and alongside other runs."""
    from .local import ConcordStore
    from .providers import build_adapter

    run = SyncRun.objects.select_related("connection").get(pk=run_id)
    if run.status not in (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING):
        return run  # already carried out (a redelivered task)
    connection = run.connection
    if not connection.is_runnable:
        run.status, run.finished_at = SyncRun.Status.SKIPPED, timezone.now()
        run.errors = [f"The connection is {connection.get_status_display().lower()}."]
        run.save()
        return run
    if connection.is_limited:
        # The package would refuse every call until then; the schedule carries on afterwards.
        run.status, run.finished_at = SyncRun.Status.SKIPPED, timezone.now()
        run.errors = [connection.limited_reason]
        run.save()
        return run
    lease = _claim_connection(connection.pk)
    if lease is None:
        raise errors.TransientError("Another run of this connection is in progress.")
    _fail_abandoned_runs(connection.pk, now=timezone.now())
    if connection.limited_until is not None:
        Connection.objects.filter(pk=connection.pk).update(limited_until=None, limited_reason="")
    held = {"lease": lease, "saved": timezone.now()}

    def progress(force: bool = False) -> None:
        now = timezone.now()
        if force or now - held["saved"] >= PROGRESS_EVERY:
            run.heartbeat_at = now
            run.save()
            held["saved"] = now
            renewed = _renew_lease(connection.pk, held["lease"])
            if renewed is None:
                raise LeaseLost("Another run took this connection over while this one was stalled; it carries on.")
            held["lease"] = renewed

    try:
        mapping = current_mapping(connection)
        run.status, run.started_at, run.mapping_version = SyncRun.Status.RUNNING, timezone.now(), mapping.version
        run.heartbeat_at = run.started_at
        run.counts, run.errors, run.done, run.total = {}, [], 0, 0
        run.save()
        adapter = build_adapter(connection, mapping=mapping, recorder=_Recorder(run))
        settings_by_entity = {s.entity: s for s in connection.entity_settings.all()}
        ctx = Context(
            connection=connection,
            run=run,
            adapter=adapter,
            local=ConcordStore(connection=connection),
            actor=sync_actor(),
            pulls=frozenset(e for e, s in settings_by_entity.items() if s.pulls and e in adapter.entities),
            pushes=frozenset(e for e, s in settings_by_entity.items() if s.pushes and e in adapter.entities),
            progress=progress,
        )
        with applying_remote_changes(connection.pk):
            if run.targets:
                pull_targets(ctx, [tuple(target) for target in run.targets])
            else:
                for entity in adapter.entities:
                    if entity in ctx.pulls:
                        pull_entity(ctx, entity)
        if connection.first_push_queued_at is None and not run.targets:
            run.phase = "Queueing Concord's records for their first push"
            progress(force=True)
            queue_first_push(ctx)
        push_pending(ctx)
        quarantined = sum(c.get("quarantined", 0) for c in run.counts.values())
        run.status = SyncRun.Status.PARTIAL if (run.errors or quarantined) else SyncRun.Status.SUCCEEDED
        run.phase = "Finished"
        _record_outcome(connection.pk, failed=False)
    except LeaseLost as lost:
        # Not the connection's failure: the run that took over carries on from the same cursors.
        run.status, run.phase = SyncRun.Status.FAILED, "Taken over by another run"
        run.errors.append(str(lost))
    except errors.DayLimitReached as limited:
        # Not a failure of the connection: its allowance for the day is spent. Runs are skipped
        # until the package resets it, and the pages say so.
        run.status, run.phase = SyncRun.Status.FAILED, "Stopped: daily call limit reached"
        run.errors.append(str(limited))
        _hold_until(connection.pk, until=limited.resume_at, package=connection.get_provider_display())
    except errors.ReauthorizationRequired as refused:
        run.status, run.phase = SyncRun.Status.FAILED, "Needs re-authorisation"
        run.errors.append(str(refused))
        mark_needs_reauthorization(connection_id=connection.pk, reason=str(refused))
    except errors.SyncError as failed:
        # Rate limits, an open circuit, the package down: the run stops where it is (cursors and
        # the outbox keep its progress) and the next run carries on.
        run.status, run.phase = SyncRun.Status.FAILED, f"Stopped: {failed.__class__.__name__}"
        run.errors.append(str(failed))
        _record_outcome(connection.pk, failed=True, reason=str(failed))
    except Exception as crashed:
        # A bug, not a state of the package: the run says so on its page, and the task fails loudly.
        run.status, run.phase = SyncRun.Status.FAILED, "Crashed"
        run.errors.append(f"{crashed.__class__.__name__}: {crashed}"[:2000])
        _record_outcome(connection.pk, failed=True, reason=str(crashed))
        raise
    finally:
        run.finished_at = timezone.now()
        run.save()
        _release_connection(connection.pk, held["lease"])
    return run


def _hold_until(connection_id: int, *, until, package: str) -> None:
    local = timezone.localtime(until)
    reason = (
        f"{package}'s daily call limit is reached: it refuses every call until it resets. "
        f"Sync resumes at {local:%H:%M} on {local:%d %b %Y} ({local.tzname()}); nothing is lost meanwhile."
    )
    Connection.objects.filter(pk=connection_id).update(limited_until=until, limited_reason=reason)


def _record_outcome(connection_id: int, *, failed: bool, reason: str = "") -> None:
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection_id)
        if failed:
            connection.consecutive_failures += 1
            if connection.consecutive_failures >= FAILING_AFTER and connection.status == Connection.Status.ACTIVE:
                connection.status, connection.status_detail = Connection.Status.FAILING, reason[:500]
                save_as(connection, actor=sync_actor())
                return
            connection.save(update_fields=["consecutive_failures"])
        else:
            connection.consecutive_failures = 0
            if connection.status == Connection.Status.FAILING:
                connection.status, connection.status_detail = Connection.Status.ACTIVE, ""
                save_as(connection, actor=sync_actor())
                return
            connection.save(update_fields=["consecutive_failures"])


# --- conflicts ------------------------------------------------------------------------------------


@transaction.atomic
def resolve_conflict(*, actor, conflict: Conflict, choices: dict[str, str]) -> Conflict:
    """Settle each conflicting field as "concord" or "remote". Remote choices are written here at
    once; Concord's are pushed by the next run; the link's base becomes the chosen state."""
    from .core.engine import local_id_of
    from .local import ConcordStore

    conflict = Conflict.objects.select_for_update().get(pk=conflict.pk)
    if conflict.status != Conflict.Status.OPEN:
        raise ValidationError("This conflict has already been settled.")
    missing = [name for name in conflict.fields if choices.get(name) not in ("concord", "remote")]
    if missing:
        raise ValidationError(f"Choose Concord's or the package's value for: {', '.join(missing)}.")
    ref = ExternalRef.objects.select_for_update().get(
        connection_id=conflict.connection_id, entity=conflict.entity, remote_id=conflict.remote_id
    )
    store = ConcordStore(connection=conflict.connection)
    take_remote = {name for name in conflict.fields if choices[name] == "remote"}
    take_local = set(conflict.fields) - take_remote
    if conflict.kind == "delete":
        obj = store.get(conflict.entity, ref.local_id)
        if take_remote and obj is not None:
            raise ValidationError(
                "Concord cannot delete this record here (see why above): keep Concord's version, which "
                "is pushed to the package again, or undo what blocks it first."
            )
        ref.remote_deleted = False
        ref.synced_state, ref.synced_hash = {}, ""
        ref.save()
        enqueue(connection_id=conflict.connection_id, entity=conflict.entity, local_ids=[ref.local_id])
    else:
        obj = store.get(conflict.entity, ref.local_id)
        state = dict(ref.synced_state)
        if take_remote and obj is not None:
            record = _remote_record(conflict)
            with applying_remote_changes(conflict.connection_id):
                store.update(
                    conflict.entity,
                    obj,
                    record,
                    take_remote,
                    local_id_of=local_id_of(conflict.connection_id),
                    actor=actor,
                )
        for name in take_remote:
            state[name] = conflict.remote.get(name)
        # The base takes the remote value for Concord's choices too: Concord's value then differs
        # from the base on Concord's side only, and the next push sends it.
        for name in take_local:
            state[name] = conflict.remote.get(name)
        from .core.canonical import RECORD_TYPES
        from .core.engine import plain_hash

        ref.synced_state = state
        # Fingerprinted as every other link is (read-only figures left out), or the next read of
        # the record would take it for a change and merge it again.
        ref.synced_hash = plain_hash(state, RECORD_TYPES[conflict.entity].read_only)
        ref.save()
        if take_local:
            enqueue(connection_id=conflict.connection_id, entity=conflict.entity, local_ids=[ref.local_id])
    conflict.status, conflict.resolution = Conflict.Status.RESOLVED, {name: choices[name] for name in conflict.fields}
    conflict.resolved_by, conflict.resolved_at = actor, timezone.now()
    save_as(conflict, actor=actor)
    return conflict


def _remote_record(conflict: Conflict):
    """The remote version stored on the conflict, as a canonical record again."""
    from .core.canonical import RECORD_TYPES, record_from_fields

    return record_from_fields(RECORD_TYPES[conflict.entity], conflict.remote)


# --- quarantine -----------------------------------------------------------------------------------


@transaction.atomic
def retry_quarantined(*, actor, item: QuarantineItem) -> QuarantineItem:
    """Try the record again at the next run (after, say, a mapping was fixed)."""
    item = QuarantineItem.objects.select_for_update().get(pk=item.pk)
    if item.status not in (QuarantineItem.Status.OPEN,):
        raise ValidationError("Only an open item can be retried.")
    item.status = QuarantineItem.Status.RETRYING
    save_as(item, actor=actor)
    if item.direction == QuarantineItem.Direction.PUSH and item.local_id:
        enqueue(connection_id=item.connection_id, entity=item.entity, local_ids=[item.local_id])
    else:
        transaction.on_commit(
            lambda: request_run(
                actor=actor,
                connection=item.connection,
                trigger=SyncRun.Trigger.RETRY,
                targets=[[item.entity, item.remote_id]],
            )
        )
    return item


@transaction.atomic
def ignore_quarantined(*, actor, item: QuarantineItem, reason: str = "") -> QuarantineItem:
    item = QuarantineItem.objects.select_for_update().get(pk=item.pk)
    if item.status not in (QuarantineItem.Status.OPEN, QuarantineItem.Status.RETRYING):
        raise ValidationError("This item is already closed.")
    item.status, item.resolved_by, item.resolved_at = QuarantineItem.Status.IGNORED, actor, timezone.now()
    item._change_reason = reason[:100]
    save_as(item, actor=actor)
    return item


def settle_quarantine_after_success(*, connection_id: int, entity: str, local_id=None, remote_id: str = "") -> None:
    """A record that synced at last closes its open quarantine item."""
    items = QuarantineItem.objects.filter(connection_id=connection_id, entity=entity, status__in=["open", "retrying"])
    items = items.filter(local_id=local_id) if local_id is not None else items.filter(remote_id=remote_id)
    items.update(status=QuarantineItem.Status.RESOLVED, resolved_at=timezone.now())


# --- housekeeping -------------------------------------------------------------------------------


def purge_payloads(*, now=None) -> int:
    """Drop archived payloads older than SYNC_PAYLOAD_RETENTION_DAYS, in batches."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.SYNC_PAYLOAD_RETENTION_DAYS)
    removed = 0
    while True:
        ids = list(PayloadArchive.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:5000])
        if not ids:
            return removed
        removed += PayloadArchive.objects.filter(pk__in=ids).delete()[0]


def record_webhook(
    *, provider: str, body: bytes, verified: bool, remote_addr: str | None, targets: int = 0, error: str = ""
) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        provider=provider,
        body=body.decode("utf-8", "replace")[:100_000],
        verified=verified,
        remote_addr=remote_addr,
        targets=targets,
        error=error[:500],
    )


def receive_webhook(*, provider: str, body: bytes, headers: dict, remote_addr: str | None) -> WebhookDelivery:
    """Verify a webhook and queue an incremental pull of the records it names, one run per
    connection. A bad signature is logged and acts on nothing; the scheduled run is the safety net
    for anything a webhook never brings."""
    from .providers import webhook_module

    reader = webhook_module(provider)
    try:
        notifications = reader.verified_notifications(body, headers)
    except errors.SyncError as refused:
        log.warning("Rejected a %s webhook from %s: %s", provider, remote_addr, refused)
        return record_webhook(provider=provider, body=body, verified=False, remote_addr=remote_addr, error=str(refused))
    targets_by_tenant: dict[str, list[list[str]]] = {}
    for notification in notifications:
        pair = [notification.entity, notification.remote_id]
        tenant_targets = targets_by_tenant.setdefault(notification.realm_id, [])
        if pair not in tenant_targets:
            tenant_targets.append(pair)
    connections = Connection.objects.filter(provider=provider, tenant_id__in=list(targets_by_tenant))
    for connection in connections:
        if connection.is_runnable and not connection.is_limited:
            request_run(
                connection=connection, trigger=SyncRun.Trigger.WEBHOOK, targets=targets_by_tenant[connection.tenant_id]
            )
    unknown = set(targets_by_tenant) - {c.tenant_id for c in connections}
    return record_webhook(
        provider=provider,
        body=body,
        verified=True,
        remote_addr=remote_addr,
        targets=sum(len(t) for t in targets_by_tenant.values()),
        error=f"No connection for {', '.join(sorted(unknown))}" if unknown else "",
    )
