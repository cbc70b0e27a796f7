"""The sync engine's state: connections, links between local and remote records, cursors, the
outbox, runs, archived payloads, mapping versions, conflicts and quarantine.

Nothing here mentions a vendor's format: `provider` names the adapter, and payloads are kept
as the vendor sent them only in the archive.
"""

import uuid
import zlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.audit import audit_history

from .core import canonical
from .core.fields import EncryptedTextField

ENTITY_CHOICES = [
    (canonical.CUSTOMER, "Customers"),
    (canonical.PRODUCT, "Products"),
    (canonical.INVOICE, "Invoices"),
    (canonical.CREDIT_NOTE, "Credit notes"),
    (canonical.PAYMENT, "Payments"),
    (canonical.REFUND, "Refunds"),
]


class Provider(models.TextChoices):
    QUICKBOOKS = "quickbooks", "QuickBooks Online"
    XERO = "xero", "Xero"
    TRYTON = "tryton", "Tryton"


class Connection(models.Model):
    """One company file (QBO realm, Xero tenant, Tryton database) that Concord keeps in step."""

    class Status(models.TextChoices):
        CONNECTING = "connecting", "Connecting"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        NEEDS_REAUTHORIZATION = "needs_reauth", "Needs re-authorisation"
        FAILING = "failing", "Failing"

    name = models.CharField(max_length=100)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    tenant_id = models.CharField(max_length=100, blank=True, help_text="The realm / tenant / database id.")
    status = models.CharField(max_length=15, choices=Status.choices, default=Status.CONNECTING)
    status_detail = models.CharField(max_length=500, blank=True, help_text="Why the status is what it is.")

    # Encrypted at rest (MultiFernet; keys from SYNC_ENCRYPTION_KEYS) and never in history.
    access_token = EncryptedTextField(blank=True)
    access_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token = EncryptedTextField(blank=True)
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every refresh: a worker that saw an older value knows another one refreshed.
    token_generation = models.PositiveIntegerField(default=0)
    oauth_state = models.CharField(max_length=100, blank=True, editable=False)

    schedule = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Per entity and field: who wins when both sides changed the same field ("concord", "remote"
    # or "ask"); anything not listed is "ask".
    field_policies = models.JSONField(default=dict, blank=True)
    # How many requests a minute Concord allows itself against this tenant (the vendor's limit
    # minus headroom), shared by every worker.
    requests_per_minute = models.PositiveIntegerField(default=480)
    max_in_flight = models.PositiveSmallIntegerField(default=4)

    last_run_at = models.DateTimeField(null=True, blank=True)
    # A run holds the connection until then (renewed as it goes); a killed worker's hold lapses.
    run_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    consecutive_failures = models.PositiveSmallIntegerField(default=0, editable=False)
    # The package refuses calls until then (Xero's daily allowance spent): runs are skipped, and
    # the page says why and until when. Cleared by the first run after it.
    limited_until = models.DateTimeField(null=True, blank=True, editable=False)
    limited_reason = models.CharField(max_length=300, blank=True, editable=False)
    # When the records Concord had before the connection's first run were queued for pushing.
    first_push_queued_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = audit_history(
        excluded_fields=[
            "access_token",
            "refresh_token",
            "access_expires_at",
            "token_generation",
            "oauth_state",
            "updated_at",
            # Run bookkeeping, written by every run: not a change anyone made.
            "run_lease_until",
            "last_run_at",
            "consecutive_failures",
            "refresh_expires_at",
            "limited_until",
            "limited_reason",
            "first_push_queued_at",
        ]
    )

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "tenant_id"], condition=~Q(tenant_id=""), name="connection_one_per_tenant"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_runnable(self) -> bool:
        return self.status in {self.Status.ACTIVE, self.Status.FAILING}

    @property
    def is_limited(self) -> bool:
        """The package's own limit holds the connection (see `limited_until`)."""
        return self.limited_until is not None and self.limited_until > timezone.now()

    def policy_for(self, entity: str, field: str) -> str:
        return self.field_policies.get(entity, {}).get(field, "ask")


class EntitySetting(models.Model):
    """Which way one entity flows for a connection."""

    class Direction(models.TextChoices):
        BOTH = "both", "Both ways"
        PULL = "pull", "Pull only (package → Concord)"
        PUSH = "push", "Push only (Concord → package)"
        OFF = "off", "Not synced"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="entity_settings")
    entity = models.CharField(max_length=20, choices=ENTITY_CHOICES)
    direction = models.CharField(max_length=5, choices=Direction.choices, default=Direction.BOTH)

    history = audit_history()

    class Meta:
        ordering = ["connection", "entity"]
        constraints = [models.UniqueConstraint(fields=["connection", "entity"], name="entity_setting_unique")]

    def __str__(self) -> str:
        return f"{self.get_entity_display()}: {self.get_direction_display()}"

    @property
    def pulls(self) -> bool:
        return self.direction in {self.Direction.BOTH, self.Direction.PULL}

    @property
    def pushes(self) -> bool:
        return self.direction in {self.Direction.BOTH, self.Direction.PUSH}


class MappingVersion(models.Model):
    """One version of a connection's mapping tables. Never edited: a change is a new version, a
    run uses the latest version as it starts, and each link remembers the version it was synced with."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="mapping_versions")
    version = models.PositiveIntegerField()
    accounts = models.JSONField(default=dict, blank=True, help_text="Concord account code → remote account id.")
    tax_codes = models.JSONField(default=dict, blank=True, help_text="Concord tax rate name → remote tax code.")
    items = models.JSONField(default=dict, blank=True, help_text="Concord product SKU → remote item id.")
    payment_methods = models.JSONField(default=dict, blank=True, help_text="Concord method → remote method id.")
    terms = models.JSONField(default=dict, blank=True, help_text="Payment terms in days → remote term id.")
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    history = audit_history()

    class Meta:
        ordering = ["connection", "-version"]
        constraints = [models.UniqueConstraint(fields=["connection", "version"], name="mapping_version_unique")]

    def __str__(self) -> str:
        return f"{self.connection} mapping v{self.version}"


class ExternalRef(models.Model):
    """The link between one local record and its twin in the accounting package, with the state
    both sides agreed on at the last sync (the base of the three-way merge).

    Written only by the engine, at a rate of thousands per run: no history rows of its own (the
    linked records have theirs, and the payload archive keeps every exchange)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="refs")
    entity = models.CharField(max_length=20, choices=ENTITY_CHOICES)
    local_id = models.BigIntegerField()
    remote_id = models.CharField(max_length=100)
    # The vendor's concurrency token as last seen (QBO SyncToken).
    remote_version = models.CharField(max_length=100, blank=True)
    # The canonical fields as last synced, and their fingerprint (canonical.Record.content_hash).
    synced_state = models.JSONField(default=dict)
    synced_hash = models.CharField(max_length=64, blank=True)
    mapping_version = models.PositiveIntegerField(null=True, blank=True)
    last_synced_at = models.DateTimeField(default=timezone.now)
    remote_deleted = models.BooleanField(default=False)
    local_deleted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "entity", "local_id"], name="external_ref_one_per_local"),
            models.UniqueConstraint(fields=["connection", "entity", "remote_id"], name="external_ref_one_per_remote"),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.local_id} ↔ {self.remote_id}"


class SyncCursor(models.Model):
    """Where the last pull of one entity stopped (the vendor's own cursor, e.g. a timestamp)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="cursors")
    entity = models.CharField(max_length=20, choices=ENTITY_CHOICES)
    value = models.CharField(max_length=200, blank=True)
    # The last time a full id scan looked for deletes the change feed could no longer report.
    full_scan_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "entity"], name="sync_cursor_unique")]

    def __str__(self) -> str:
        return f"{self.entity} from {self.value or 'the beginning'}"


class OutboxEntry(models.Model):
    """A local change still to be pushed, written in the same transaction as the change itself.

    At most one pending entry per record and connection: later changes before the push fold
    into it (the push sends the record as it is then). `request_id` stays the same across
    retries, so a push whose response was lost is not repeated by the vendor."""

    class Operation(models.TextChoices):
        UPSERT = "upsert", "Create or update"
        VOID = "void", "Void"
        DELETE = "delete", "Delete"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Pushed"
        QUARANTINED = "quarantined", "Quarantined"
        SKIPPED = "skipped", "Nothing to push"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="outbox")
    entity = models.CharField(max_length=20, choices=ENTITY_CHOICES)
    local_id = models.BigIntegerField()
    operation = models.CharField(max_length=10, choices=Operation.choices, default=Operation.UPSERT)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    request_id = models.UUIDField(default=uuid.uuid4, editable=False)
    # Entries whose batched push failed as a whole are sent again as the same batch: a vendor that
    # takes one idempotency key per call (QBO's requestid) then replays the batch instead of
    # repeating its creates.
    batch_key = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When the record last changed; a run that claimed the entry earlier must push again.
    changed_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "local_id"],
                condition=Q(status="pending"),
                name="outbox_one_pending_per_record",
            ),
        ]
        indexes = [
            models.Index(
                fields=["connection", "next_attempt_at"], condition=Q(status="pending"), name="outbox_pending_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_operation_display()} {self.entity} {self.local_id} ({self.status})"


class SyncRun(models.Model):
    """One pass of the engine over a connection, with its progress for the page to poll."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Run now"
        WEBHOOK = "webhook", "Webhook"
        RETRY = "retry", "Retry"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Finished with errors"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another run was in progress)"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Webhook runs name the records to pull: [[entity, remote_id], ...]; empty means everything.
    targets = models.JSONField(default=list, blank=True)
    mapping_version = models.PositiveIntegerField(null=True, blank=True)
    phase = models.CharField(max_length=100, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    # {entity: {"pulled": n, "created": n, "updated": n, "pushed": n, "deleted": n, "conflicts": n, "quarantined": n}}
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    requests = models.PositiveIntegerField(default=0)
    request_ms = models.PositiveBigIntegerField(default=0)
    request_errors = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with each progress save: a running run silent for longer than the run lease lost
    # its worker, and the next run of the connection marks it failed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["connection", "-created_at"], name="sync_run_recent")]

    def __str__(self) -> str:
        return f"{self.connection} run {self.pk} ({self.status})"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class PayloadArchive(models.Model):
    """One HTTP exchange with the vendor, compressed, kept SYNC_PAYLOAD_RETENTION_DAYS days; the
    `replay_sync_payloads` command rebuilds a record's remote state from them."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="payloads")
    run = models.ForeignKey(SyncRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="payloads")
    entity = models.CharField(max_length=20, blank=True)
    remote_id = models.CharField(max_length=100, blank=True)
    method = models.CharField(max_length=10)
    url = models.CharField(max_length=1000)
    status_code = models.PositiveSmallIntegerField(null=True)
    request_id = models.CharField(max_length=100, blank=True)
    request_body = models.BinaryField(blank=True, default=b"")
    response_body = models.BinaryField(blank=True, default=b"")
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["connection", "entity", "remote_id", "created_at"], name="payload_by_record")]

    def __str__(self) -> str:
        return f"{self.method} {self.url} → {self.status_code}"

    @staticmethod
    def pack(text: str | bytes | None) -> bytes:
        if not text:
            return b""
        return zlib.compress(text.encode() if isinstance(text, str) else text, 6)

    @staticmethod
    def unpack(blob) -> str:
        return zlib.decompress(bytes(blob)).decode() if blob else ""


class Conflict(models.Model):
    """Both sides changed the same field of one record since the last sync, and the field's policy
    is "ask": a person picks, field by field, with the base and both versions in front of them."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        DISMISSED = "dismissed", "Dismissed"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="conflicts")
    entity = models.CharField(max_length=20, choices=ENTITY_CHOICES)
    local_id = models.BigIntegerField(null=True, blank=True)
    remote_id = models.CharField(max_length=100, blank=True)
    kind = models.CharField(
        max_length=20, default="edit", help_text="edit, or delete when a remote delete cannot be mirrored."
    )
    fields = models.JSONField(default=list, help_text="The fields both sides changed.")
    base = models.JSONField(default=dict)
    local = models.JSONField(default=dict)
    remote = models.JSONField(default=dict)
    remote_version = models.CharField(max_length=100, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # {field: "concord" | "remote"}
    resolution = models.JSONField(default=dict, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    history = audit_history()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "remote_id"],
                condition=Q(status="open"),
                name="conflict_one_open_per_record",
            ),
        ]

    def __str__(self) -> str:
        return f"Conflict on {self.entity} {self.remote_id}: {', '.join(self.fields)}"


class QuarantineItem(models.Model):
    """A record the engine could not sync (the vendor refused it, a mapping is missing, or it kept
    failing): set aside with the error and the payload until a person retries, fixes or ignores it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RETRYING = "retrying", "Queued for retry"
        RESOLVED = "resolved", "Resolved"
        IGNORED = "ignored", "Ignored"

    class Direction(models.TextChoices):
        PULL = "pull", "Pull"
        PUSH = "push", "Push"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="quarantine")
    entity = models.CharField(max_length=20, choices=ENTITY_CHOICES)
    direction = models.CharField(max_length=4, choices=Direction.choices)
    local_id = models.BigIntegerField(null=True, blank=True)
    remote_id = models.CharField(max_length=100, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    error = models.TextField()
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    first_failed_at = models.DateTimeField(default=timezone.now)
    last_failed_at = models.DateTimeField(default=timezone.now)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    history = audit_history()

    class Meta:
        ordering = ["-last_failed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "entity", "direction", "local_id", "remote_id"],
                condition=Q(status__in=["open", "retrying"]),
                name="quarantine_one_open_per_record",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity} {self.local_id or self.remote_id}: {self.error[:80]}"


class WebhookDelivery(models.Model):
    """Every webhook POST received, verified or not: a bad signature is rejected and kept here."""

    provider = models.CharField(max_length=20, choices=Provider.choices)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    verified = models.BooleanField(default=False)
    body = models.TextField(blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    targets = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} webhook at {self.received_at:%Y-%m-%d %H:%M:%S}"
