"""Reads for the sync pages (/sync/) and the customer page's sync badge, each in a fixed number of
queries whatever the number of connections, runs or records."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .core import canonical
from .models import (
    Conflict,
    Connection,
    EntitySetting,
    ExternalRef,
    MappingVersion,
    OutboxEntry,
    Provider,
    QuarantineItem,
    SyncRun,
)
from .services import MAPPING_TABLES

# The health panel sums the runs started in this window.
HEALTH_WINDOW = timedelta(hours=24)
OPEN_QUARANTINE = (QuarantineItem.Status.OPEN, QuarantineItem.Status.RETRYING)
UNFINISHED_RUN = (SyncRun.Status.QUEUED, SyncRun.Status.RUNNING)
ENTITY_LABELS = dict(EntitySetting._meta.get_field("entity").choices)
# The counters a run keeps per entity, in the order the run page shows them.
RUN_COUNTERS = ("pulled", "created", "linked", "updated", "pushed", "deleted", "voided", "conflicts", "quarantined")


# --- connections and their health ------------------------------------------------------------------


def _count(queryset: QuerySet) -> Coalesce:
    """COUNT(*) of `queryset` (already correlated to the connection) as a subquery."""
    counted = queryset.order_by().values("connection").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _run_total(runs: QuerySet, field: str) -> Coalesce:
    summed = runs.order_by().values("connection").annotate(n=Sum(field)).values("n")
    return Coalesce(Subquery(summed, output_field=IntegerField()), Value(0))


def _with_health(connections: QuerySet[Connection], *, since: datetime) -> QuerySet[Connection]:
    """Each connection with its last 24 hours of runs summed and its backlog counted, as correlated
    subqueries: summing over joins of runs, outbox, conflicts and quarantine at once would
    multiply each other's rows."""
    mine = OuterRef("pk")
    recent = SyncRun.objects.filter(connection=mine, created_at__gte=since)
    latest = SyncRun.objects.filter(connection=mine).order_by("-created_at", "-id").values("pk")[:1]
    return connections.select_related("schedule__interval").annotate(
        window_runs=_count(recent),
        window_failed_runs=_count(recent.filter(status=SyncRun.Status.FAILED)),
        window_requests=_run_total(recent, "requests"),
        window_request_ms=_run_total(recent, "request_ms"),
        window_request_errors=_run_total(recent, "request_errors"),
        pending_outbox=_count(OutboxEntry.objects.filter(connection=mine, status=OutboxEntry.Status.PENDING)),
        open_conflicts=_count(Conflict.objects.filter(connection=mine, status=Conflict.Status.OPEN)),
        open_quarantine=_count(QuarantineItem.objects.filter(connection=mine, status__in=OPEN_QUARANTINE)),
        latest_run_id=Subquery(latest),
    )


@dataclass(frozen=True)
class Schedule:
    every: timedelta | None
    enabled: bool
    last_run_at: datetime | None
    # None while the schedule is off, or before beat has run it once (it runs within `every`).
    next_run_at: datetime | None

    @property
    def every_minutes(self) -> int | None:
        return int(self.every.total_seconds() // 60) if self.every else None


def schedule_of(connection: Connection) -> Schedule:
    """The connection's periodic task as the pages show it (schedule and interval fetched with it)."""
    task = connection.schedule
    if task is None or task.interval is None:
        return Schedule(every=None, enabled=False, last_run_at=None, next_run_at=None)
    # IntervalSchedule.period is one of timedelta's own keyword names (days, hours, minutes, …).
    every = timedelta(**{task.interval.period: task.interval.every})
    next_run_at = task.last_run_at + every if task.enabled and task.last_run_at else None
    return Schedule(every=every, enabled=task.enabled, last_run_at=task.last_run_at, next_run_at=next_run_at)


@dataclass(frozen=True)
class ConnectionRow:
    connection: Connection
    schedule: Schedule
    latest_run: SyncRun | None
    window_runs: int
    window_failed_runs: int
    requests: int
    # Mean time per request to the package, in milliseconds (None without requests).
    average_latency_ms: float | None
    # Share of requests that failed (HTTP ≥ 400 or no answer), as a percentage.
    error_rate: float | None
    pending_outbox: int
    open_conflicts: int
    open_quarantine: int

    @property
    def backlog(self) -> int:
        return self.pending_outbox + self.open_conflicts + self.open_quarantine

    @property
    def needs_reauthorization(self) -> bool:
        return self.connection.status == Connection.Status.NEEDS_REAUTHORIZATION

    @property
    def is_failing(self) -> bool:
        return self.connection.status == Connection.Status.FAILING


def _rows(connections: list[Connection]) -> list[ConnectionRow]:
    latest = SyncRun.objects.in_bulk([c.latest_run_id for c in connections if c.latest_run_id])
    rows = []
    for connection in connections:
        requests = connection.window_requests
        rows.append(
            ConnectionRow(
                connection=connection,
                schedule=schedule_of(connection),
                latest_run=latest.get(connection.latest_run_id),
                window_runs=connection.window_runs,
                window_failed_runs=connection.window_failed_runs,
                requests=requests,
                average_latency_ms=connection.window_request_ms / requests if requests else None,
                error_rate=100 * connection.window_request_errors / requests if requests else None,
                pending_outbox=connection.pending_outbox,
                open_conflicts=connection.open_conflicts,
                open_quarantine=connection.open_quarantine,
            )
        )
    return rows


def connection_rows(*, now: datetime | None = None) -> list[ConnectionRow]:
    """Every connection with its schedule, latest run and health: two queries."""
    since = (now or timezone.now()) - HEALTH_WINDOW
    return _rows(list(_with_health(Connection.objects.all(), since=since).order_by("name", "pk")))


def connection_row(connection_pk: int, *, now: datetime | None = None) -> ConnectionRow:
    since = (now or timezone.now()) - HEALTH_WINDOW
    return _rows([get_object_or_404(_with_health(Connection.objects.all(), since=since), pk=connection_pk)])[0]


def get_connection_or_404(connection_pk: int) -> Connection:
    return get_object_or_404(Connection, pk=connection_pk)


def connection_for_oauth_state(state: str) -> Connection | None:
    """The connection an authorisation answer belongs to (None for an unknown or empty state)."""
    if not state:
        return None
    return Connection.objects.filter(oauth_state=state).first()


def entity_settings(connection: Connection) -> list[EntitySetting]:
    order = {entity: index for index, entity in enumerate(canonical.ENTITIES)}
    return sorted(connection.entity_settings.all(), key=lambda setting: order.get(setting.entity, 99))


def canonical_fields() -> dict[str, tuple[str, ...]]:
    """The fields of each entity a field policy can name: the canonical record's, less those the
    package computes (never merged, so no policy applies)."""
    return {
        entity: tuple(f.name for f in dataclasses.fields(record) if f.name not in record.read_only)
        for entity, record in canonical.RECORD_TYPES.items()
    }


@dataclass(frozen=True)
class FieldPolicyRow:
    entity: str
    entity_label: str
    field: str
    policy: str


def field_policy_rows(connection: Connection) -> list[FieldPolicyRow]:
    """The policies set on the connection (every other field is "ask")."""
    rows = []
    for entity in canonical.ENTITIES:
        for field, policy in sorted(connection.field_policies.get(entity, {}).items()):
            rows.append(FieldPolicyRow(entity, ENTITY_LABELS.get(entity, entity), field, policy))
    return rows


# --- runs ----------------------------------------------------------------------------------------


def recent_runs(connection: Connection, *, limit: int) -> list[SyncRun]:
    return list(connection.runs.select_related("requested_by").order_by("-created_at", "-id")[:limit])


def run_history(connection: Connection) -> QuerySet[SyncRun]:
    return connection.runs.select_related("requested_by").order_by("-created_at", "-id")


def get_run_or_404(run_pk: int) -> SyncRun:
    return get_object_or_404(SyncRun.objects.select_related("connection", "requested_by"), pk=run_pk)


@dataclass(frozen=True)
class EntityCounts:
    entity: str
    label: str
    counts: tuple[int, ...]


@dataclass(frozen=True)
class RunProgress:
    run: SyncRun
    is_finished: bool
    percent: int | None
    counters: tuple[str, ...]
    entity_counts: list[EntityCounts]
    average_latency_ms: float | None


def run_progress(run: SyncRun) -> RunProgress:
    """What the run page shows: progress, the counters the run kept per entity, latency."""
    seen = {name for counts in run.counts.values() for name in counts}
    counters = tuple(name for name in RUN_COUNTERS if name in seen) + tuple(sorted(seen - set(RUN_COUNTERS)))
    order = [entity for entity in canonical.ENTITIES if entity in run.counts] + sorted(
        set(run.counts) - set(canonical.ENTITIES)
    )
    entity_counts = [
        EntityCounts(entity, ENTITY_LABELS.get(entity, entity), tuple(run.counts[entity].get(c, 0) for c in counters))
        for entity in order
    ]
    percent = min(100, round(100 * run.done / run.total)) if run.total else None
    return RunProgress(
        run=run,
        is_finished=run.status not in UNFINISHED_RUN,
        percent=percent,
        counters=counters,
        entity_counts=entity_counts,
        average_latency_ms=run.request_ms / run.requests if run.requests else None,
    )


# --- conflicts -----------------------------------------------------------------------------------


def conflict_rows(*, connection_pk: int | None = None, entity: str = "", status: str = "") -> QuerySet[Conflict]:
    """Open conflicts first, then the settled ones; newest first within each."""
    conflicts = Conflict.objects.select_related("connection", "resolved_by")
    if connection_pk:
        conflicts = conflicts.filter(connection_id=connection_pk)
    if entity:
        conflicts = conflicts.filter(entity=entity)
    if status:
        conflicts = conflicts.filter(status=status)
    still_open = Case(When(status=Conflict.Status.OPEN, then=Value(0)), default=Value(1))
    return conflicts.annotate(settled=still_open).order_by("settled", "-created_at", "-id")


def get_conflict_or_404(conflict_pk: int) -> Conflict:
    return get_object_or_404(Conflict.objects.select_related("connection", "resolved_by"), pk=conflict_pk)


ENTITY_NAMES = {
    canonical.CUSTOMER: "Customer",
    canonical.PRODUCT: "Product",
    canonical.INVOICE: "Invoice",
    canonical.CREDIT_NOTE: "Credit note",
    canonical.PAYMENT: "Payment",
    canonical.REFUND: "Refund",
}


def record_title(entity: str, fields: dict, remote_id: str = "") -> str:
    """A name a person recognises for a record, from its canonical fields: "Invoice INV-0042"."""
    names = (str(fields[key]) for key in ("display_name", "number", "name", "sku", "reference") if fields.get(key))
    name = next(names, "")
    return f"{ENTITY_NAMES.get(entity, entity)} {name or remote_id}".strip()


@dataclass(frozen=True)
class ShownValue:
    text: str
    # Lists and objects (an invoice's lines, an address) are shown as indented JSON.
    is_block: bool


def shown(value) -> ShownValue:
    if value is None or value == "":
        return ShownValue("—", False)
    if isinstance(value, bool):
        return ShownValue("Yes" if value else "No", False)
    if isinstance(value, dict | list):
        return ShownValue(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True), True)
    return ShownValue(str(value), False)


@dataclass(frozen=True)
class FieldComparison:
    name: str
    base: ShownValue
    concord: ShownValue
    package: ShownValue
    conflicting: bool
    concord_changed: bool
    package_changed: bool


def conflict_comparison(conflict: Conflict) -> list[FieldComparison]:
    """Every field of the record, base / Concord / package side by side; the conflicting ones first."""
    names = set(conflict.base) | set(conflict.local) | set(conflict.remote) | set(conflict.fields)
    conflicting = set(conflict.fields)
    rows = [
        FieldComparison(
            name=name,
            base=shown(conflict.base.get(name)),
            concord=shown(conflict.local.get(name)),
            package=shown(conflict.remote.get(name)),
            conflicting=name in conflicting,
            concord_changed=bool(conflict.base) and conflict.local.get(name) != conflict.base.get(name),
            package_changed=bool(conflict.base) and conflict.remote.get(name) != conflict.base.get(name),
        )
        for name in names
    ]
    return sorted(rows, key=lambda row: (not row.conflicting, row.name))


# --- quarantine ----------------------------------------------------------------------------------

QUARANTINE_STATUSES = {
    "open": ("Open", OPEN_QUARANTINE),
    "ignored": ("Ignored", (QuarantineItem.Status.IGNORED,)),
    "resolved": ("Resolved", (QuarantineItem.Status.RESOLVED,)),
    "all": ("All", ()),
}


def quarantine_rows(
    *, connection_pk: int | None = None, entity: str = "", status: str = "open", local_id: int | None = None
) -> QuerySet[QuarantineItem]:
    items = QuarantineItem.objects.select_related("connection", "resolved_by")
    statuses = QUARANTINE_STATUSES.get(status, QUARANTINE_STATUSES["open"])[1]
    if statuses:
        items = items.filter(status__in=statuses)
    if connection_pk:
        items = items.filter(connection_id=connection_pk)
    if entity:
        items = items.filter(entity=entity)
    if local_id is not None:
        items = items.filter(local_id=local_id)
    return items.order_by("-last_failed_at", "-id")


def get_quarantine_item_or_404(item_pk: int) -> QuarantineItem:
    return get_object_or_404(QuarantineItem.objects.select_related("connection", "resolved_by"), pk=item_pk)


def pretty_payload(item: QuarantineItem) -> str:
    return json.dumps(item.payload, indent=2, ensure_ascii=False, sort_keys=True, default=str)


# --- mappings ------------------------------------------------------------------------------------

MAPPING_TABLE_LABELS = {
    "accounts": "Accounts",
    "tax_codes": "Tax codes",
    "items": "Items",
    "payment_methods": "Payment methods",
    "terms": "Terms",
}


def mapping_versions(connection: Connection) -> list[MappingVersion]:
    return list(connection.mapping_versions.select_related("created_by").order_by("-version"))


def latest_mapping_version(connection: Connection) -> MappingVersion | None:
    return connection.mapping_versions.order_by("-version").first()


def get_mapping_version_or_404(mapping_pk: int) -> MappingVersion:
    return get_object_or_404(MappingVersion.objects.select_related("connection", "created_by"), pk=mapping_pk)


@dataclass(frozen=True)
class MappingEntry:
    key: str
    value: str
    previous: str | None  # the previous version's value; None when the key is new
    changed: bool


@dataclass(frozen=True)
class MappingTable:
    name: str
    label: str
    entries: list[MappingEntry]
    removed: list[str]  # keys the previous version had and this one has not


def mapping_tables(version: MappingVersion) -> list[MappingTable]:
    """The version's tables, each entry marked against the version before it."""
    previous = (
        MappingVersion.objects.filter(connection_id=version.connection_id, version__lt=version.version)
        .order_by("-version")
        .first()
    )
    tables = []
    for name in MAPPING_TABLES:
        now, before = getattr(version, name), getattr(previous, name) if previous else {}
        entries = [
            MappingEntry(key, value, before.get(key), previous is not None and before.get(key) != value)
            for key, value in sorted(now.items())
        ]
        tables.append(MappingTable(name, MAPPING_TABLE_LABELS[name], entries, sorted(set(before) - set(now))))
    return tables


def _synced_with_older(connection: Connection, latest: int) -> QuerySet[ExternalRef]:
    return ExternalRef.objects.filter(connection=connection, local_deleted=False, remote_deleted=False).filter(
        Q(mapping_version__lt=latest) | Q(mapping_version__isnull=True)
    )


@dataclass(frozen=True)
class StaleEntity:
    entity: str
    label: str
    records: int
    pushes: bool  # re-pushing only makes sense where the entity flows to the package


def stale_links(connection: Connection, latest: MappingVersion | None) -> list[StaleEntity]:
    """Per entity, how many linked records were last synced with a mapping older than `latest`."""
    if latest is None:
        return []
    counts = dict(
        _synced_with_older(connection, latest.version)
        .order_by()
        .values("entity")
        .annotate(n=Count("pk"))
        .values_list("entity", "n")
    )
    pushes = {setting.entity: setting.pushes for setting in connection.entity_settings.all()}
    return [
        StaleEntity(entity, ENTITY_LABELS.get(entity, entity), counts[entity], pushes.get(entity, False))
        for entity in canonical.ENTITIES
        if counts.get(entity)
    ]


def stale_local_ids(connection: Connection, *, entity: str, latest: int) -> list[int]:
    return list(
        _synced_with_older(connection, latest)
        .filter(entity=entity)
        .order_by("local_id")
        .values_list("local_id", flat=True)
    )


def entity_pushes(connection: Connection, entity: str) -> bool:
    setting = connection.entity_settings.filter(entity=entity).first()
    return setting is not None and setting.pushes


# --- the customer page's badge ---------------------------------------------------------------------


@dataclass(frozen=True)
class BadgeRow:
    connection_pk: int
    connection_name: str
    provider: str
    connection_status: str
    remote_id: str | None
    last_synced_at: datetime | None
    remote_deleted: bool
    pending_push: bool
    open_conflict_pk: int | None
    open_quarantine_pk: int | None

    @property
    def is_linked(self) -> bool:
        return self.remote_id is not None

    @property
    def provider_label(self) -> str:
        return Provider(self.provider).label if self.provider in Provider.values else self.provider

    @property
    def is_stopped(self) -> bool:
        """Paused or refused: nothing moves for this customer until a person acts."""
        return self.connection_status in (Connection.Status.PAUSED, Connection.Status.NEEDS_REAUTHORIZATION)

    @property
    def status_label(self) -> str:
        return Connection.Status(self.connection_status).label


def customer_sync_badge(customer_pk: int) -> list[BadgeRow]:
    """For each connection set up (past "connecting"), how one customer stands: its remote id and
    last sync, a change waiting to be pushed, an open conflict or quarantined record. One query."""
    mine = OuterRef("pk")
    record = {"entity": canonical.CUSTOMER, "local_id": customer_pk}
    ref = ExternalRef.objects.filter(connection=mine, **record)
    pending = OutboxEntry.objects.filter(connection=mine, status=OutboxEntry.Status.PENDING, **record)
    conflict = Conflict.objects.filter(connection=mine, status=Conflict.Status.OPEN, **record).order_by("-id")
    quarantined = QuarantineItem.objects.filter(connection=mine, status__in=OPEN_QUARANTINE, **record).order_by("-id")
    connections = (
        Connection.objects.exclude(status=Connection.Status.CONNECTING)
        .annotate(
            badge_remote_id=Subquery(ref.values("remote_id")[:1]),
            badge_last_synced_at=Subquery(ref.values("last_synced_at")[:1]),
            badge_remote_deleted=Subquery(ref.values("remote_deleted")[:1]),
            badge_pending=Exists(pending),
            badge_conflict=Subquery(conflict.values("pk")[:1]),
            badge_quarantine=Subquery(quarantined.values("pk")[:1]),
        )
        .order_by("name", "pk")
        .values(
            "pk",
            "name",
            "provider",
            "status",
            "badge_remote_id",
            "badge_last_synced_at",
            "badge_remote_deleted",
            "badge_pending",
            "badge_conflict",
            "badge_quarantine",
        )
    )
    return [
        BadgeRow(
            connection_pk=row["pk"],
            connection_name=row["name"],
            provider=row["provider"],
            connection_status=row["status"],
            remote_id=row["badge_remote_id"],
            last_synced_at=row["badge_last_synced_at"],
            remote_deleted=bool(row["badge_remote_deleted"]),
            pending_push=row["badge_pending"],
            open_conflict_pk=row["badge_conflict"],
            open_quarantine_pk=row["badge_quarantine"],
        )
        for row in connections
    ]
