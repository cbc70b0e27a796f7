"""The sync chaos driver (issues 8 and 9): Concord and an accounting package's simulator
(QuickBooks or Xero) edited on both sides, synced by two real Celery workers through faults, a
worker killed mid-batch and two runs of one connection at once, until both books agree — then a
check that they do, record by record.

The driver is provider-neutral: the package's side (a user's edits, the records read back, the
faults, the write held while a worker is killed, the counters) is a `Books` of bench/sync_books.py
(`QuickBooksBooks`, `XeroBooks`), chosen by `ChaosRun.connect(provider=...)`.

`tests/integrations/test_chaos.py` runs it at the CI size; `python -m bench --sync` (bench/sync.py)
runs it at full size and reports throughput. It lives in bench/, not in integrations/, because it
writes thousands of records and kills processes: nothing in the running application may reach it.

What the driver does, in order (`ChaosRun.run`):
1. customers and invoices created on both sides (Concord through billing/crm services, the package
   "as a user" through its simulator's `act`), synced — with a worker SIGKILLed while its
   batch is committed in the package and its answer held back, and a replacement started;
2. invoices for the other side's customers and payments on both sides (each invoice is paid on one
   side only: a book cannot take more than is open), synced — with the run lease lapsing under a
   live run, so that a second worker runs the same connection at the same time;
3. edits on both sides (different fields merge, the same field follows the field's policy or
   opens a conflict the driver resolves), line changes and voids on both sides, synced (the
   customer field both sides edit is the legal name in QuickBooks and the billing city in Xero,
   whose contacts have no legal name);
4. runs until converged: no pending outbox, nothing open in quarantine or conflicts, a run that
   pulled and changed nothing; then faults off, every cursor reset and one more run, which must
   also change nothing (a full pull changes nothing);
5. `verify()`: every record exactly once on each side, each linked pair equal field by field,
   equal counts and totals, equal AR per customer, `ledger_check` passing.

Waiting is compressed, never skipped silently: between runs, when no run is live, the driver lets
the engine's waits lapse (`let_waits_lapse`: outbox backoffs and leases, the connection's run lease),
as if the time they ask for had passed. The engine's real waits are minutes (a killed worker's
lease lapses after 10), which a CI test cannot spend; the lengths are the engine's business, the
recovery after them is what is tested here.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone

from bench.sync_books import BOOKS, CENT, Books

# ≈ 20 % of data-API requests fail: 429s, 5xx (JSON faults and gateway pages), answers dropped
# after the write committed, and late answers. A "timeout" is held 2 s, shorter than the client's
# 30 s read timeout (both clients' default, not a setting): each true timeout would stall a
# sequential run 30 s. The lost-answer path a true timeout takes (httpx.TransportError, resent
# with the same requestid) is the one drops take, and the worker kill holds a batch's answer for
# as long as it takes to kill the worker.
CHAOS_FAULTS = {
    "throttle_rate": 0.03,
    "error_rate": 0.06,
    "drop_rate": 0.08,
    "timeout_rate": 0.03,
    "timeout_seconds": 2.0,
    "latency_ms": 2,
    "latency_jitter_ms": 20,
    "injected_retry_after_seconds": 1,
}
# The rates that make a fault setting "the chaos" (as opposed to none, or one scripted fault).
FAULT_RATES = ("throttle_rate", "error_rate", "drop_rate", "timeout_rate")
NO_FAULTS = {
    "throttle_rate": 0.0,
    "error_rate": 0.0,
    "drop_rate": 0.0,
    "timeout_rate": 0.0,
    "latency_ms": 0,
    "latency_jitter_ms": 0,
    "match": "",
    "script": [],
}
# While two runs are made to overlap, every answer comes this much later (the first run must still
# be at work when the second starts), and a pair that did not overlap is tried this many times.
OVERLAP_LATENCY_MS = 250
OVERLAP_ATTEMPTS = 3
# Held this long, the batch answered after the worker is gone is never read by anyone.
KILL_HOLD_SECONDS = 90.0

# Deadlines for a failure to show (generous for a busy 2-core machine).
WORKERS_READY_WITHIN = 60.0
POLL = 0.05


@dataclass(frozen=True)
class ChaosSize:
    name: str
    customers: int
    invoices: int
    payments: int
    seed: int = 8
    # Share of round 1's invoices in the whole set (the rest are billed across sides in round 2).
    first_round_share: float = 0.6
    # Each edit set is this share of the customers / of the invoices left unpaid.
    customer_edit_share: float = 0.05
    invoice_edit_share: float = 0.03
    void_share: float = 0.04
    max_runs: int = 400
    # A run's deadline: one run may pull or push a whole round (thousands of records at full size).
    run_within: float = 600.0


# About two minutes on a quiet 2-core machine (the suite's other process beside it adds to that).
CI = ChaosSize("ci", customers=120, invoices=600, payments=300)
FULL = ChaosSize("full", customers=2000, invoices=10000, payments=5000, max_runs=2000, run_within=3600.0)
# Xero at CI: half of QuickBooks' records, about two and a half minutes. Xero's pages hold 100
# records (QuickBooks' 1,000) and an update reads its records before writing them, so the same
# records take more calls, each paced.
XERO_CI = ChaosSize("ci-xero", customers=60, invoices=300, payments=150)
SIZES = {"ci": CI, "full": FULL}
# The size each provider runs at under a size's name.
PROVIDER_SIZES = {"quickbooks": SIZES, "xero": {"ci": XERO_CI, "full": FULL}}


class ChaosFailure(AssertionError):
    """The books did not converge, or converged to something wrong."""


# --- Worker processes ---------------------------------------------------------------------------


def database_url() -> str:
    """The URL of the database Django is connected to (the test database under pytest)."""
    db = connections["default"].settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


def encryption_keys() -> str:
    """The keys this process encrypts tokens with, for workers that must decrypt them."""
    from integrations.core.crypto import _configured_keys

    return ",".join(key.decode() if isinstance(key, bytes) else key for key in _configured_keys())


class Workers:
    """Real `celery worker` processes on a queue of their own, as production runs them: each its
    own Django, database connections and Redis clients. One task at a time each (solo pool,
    prefetch 1), so a task "received" by a worker is the one it is running."""

    def __init__(self, *, books: Books, log_dir: Path, queue: str | None = None, log: Callable[[str], None] = print):
        self.queue = queue or f"concord-chaos-{uuid.uuid4().hex[:10]}"
        self.log_dir = log_dir
        self.log = log
        self.processes: dict[str, subprocess.Popen] = {}
        self.killed: list[str] = []
        self._count = 0
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(),
            "DATABASE_REPLICA_URL": "",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_RESULT_BACKEND": "",
            "SYNC_REDIS_URL": settings.SYNC_REDIS_URL,
            "SYNC_ENCRYPTION_KEYS": encryption_keys(),
            **books.settings_of(books.sim),
            "CONCORD_VAR_DIR": str(log_dir / "var"),
            "DEBUG": "false",
            "DB_CONN_MAX_AGE": "0",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, count: int = 1, *, wait: bool = True) -> list[str]:
        """Start `count` workers; with `wait`, return once each answers a ping (`wait_ready`
        later otherwise)."""
        from celery.utils.nodenames import host_format

        names = []
        for _ in range(count):
            self._count += 1
            name = host_format(f"chaos{self._count}-{self.queue[-10:]}@%h")
            log_file = self.log_dir / f"worker{self._count}.log"
            command = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                f"--hostname={name}",
                f"--queues={self.queue}",
                "--loglevel=INFO",
                f"--logfile={log_file}",
                "--without-mingle",
                "--without-gossip",
            ]
            with log_file.with_suffix(".err").open("w") as stderr:
                self.processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    command, cwd=settings.BASE_DIR, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr
                )
            names.append(name)
        if wait:
            self.wait_ready(names)
        return names

    def wait_ready(self, names: list[str] | None = None) -> None:
        from config.celery import app

        names = names if names is not None else [name for name in self.processes if name not in self.killed]
        deadline = time.monotonic() + WORKERS_READY_WITHIN
        answered: set[str] = set()
        while time.monotonic() < deadline:
            for name in names:
                if self.processes[name].poll() is not None:
                    raise ChaosFailure(f"worker {name} exited at start:\n{self._said(name)}")
            for reply in app.control.ping(destination=names, timeout=0.5):
                answered.update(reply)
            if answered >= set(names):
                return
        raise ChaosFailure(f"workers not ready within {WORKERS_READY_WITHIN:.0f} s: only {sorted(answered)} answered")

    def _said(self, name: str) -> str:
        number = list(self.processes).index(name) + 1
        path = self.log_dir / f"worker{number}.err"
        return path.read_text()[-3000:] if path.exists() else ""

    def log_lines(self) -> dict[str, list[str]]:
        lines = {}
        for number, name in enumerate(self.processes, start=1):
            path = self.log_dir / f"worker{number}.log"
            lines[name] = path.read_text().splitlines() if path.exists() else []
        return lines

    def running(self, task_id: str) -> str | None:
        """The worker whose latest word on `task_id` is that it received it."""
        for name, lines in self.log_lines().items():
            said = [line for line in lines if f"[{task_id}]" in line]
            if said and said[-1].endswith("received") and name not in self.killed:
                return name
        return None

    def crash(self, task_id: str) -> str:
        """The traceback of a task that raised something other than a retry, or ""."""
        for lines in self.log_lines().values():
            for number, line in enumerate(lines):
                if f"[{task_id}] raised unexpected" in line:
                    return "\n".join(lines[number : number + 40])
        return ""

    def kill(self, name: str) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, no cleanup — a machine that died."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        self.killed.append(name)
        self.log(f"[chaos] killed worker {name} (pid {process.pid})")

    def alive(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is None]

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if name not in self.killed and process.poll() is not None:
                raise ChaosFailure(f"worker {name} exited on its own:\n{self._said(name)}")

    def stop(self) -> None:
        # SIGTERM is Celery's warm shutdown; a worker that does not finish in time is killed.
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self._clean_broker()

    def _clean_broker(self) -> None:
        """Leave nothing on the broker: the queue, its exchange, and on Redis the unacknowledged
        message the killed worker held (kombu would restore it hours later into a dead queue)."""
        from kombu import Exchange, Queue

        from config.celery import app

        with app.connection_for_write() as connection:
            queue = Queue(self.queue, Exchange(self.queue), routing_key=self.queue)(connection.default_channel)
            queue.declare()
            queue.delete()
            queue.exchange.delete()
        if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
            for tag, raw in client.hgetall("unacked").items():
                try:
                    _message, _exchange, routing_key = json.loads(raw)
                except ValueError:
                    continue
                if routing_key == self.queue:
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)


# --- Runs --------------------------------------------------------------------------------------


TERMINAL = ("succeeded", "partial", "failed", "skipped")


@dataclass
class RunLog:
    """What the driver saw of the runs, for the report."""

    runs: list[int] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    overlapped: list[tuple[int, int]] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    sync_seconds: float = 0.0


class Runner:
    """Dispatches runs of one connection to the workers and waits for them."""

    def __init__(self, *, connection, workers: Workers, within: float, log: Callable[[str], None] = print):
        self.connection = connection
        self.within = within
        self.workers = workers
        self.log = log
        self.record = RunLog()
        self.task_ids: dict[int, str] = {}

    def dispatch(self) -> int:
        from integrations import tasks
        from integrations.models import SyncRun

        run = SyncRun.objects.create(connection=self.connection, trigger=SyncRun.Trigger.MANUAL)
        result = tasks.sync_connection.apply_async(kwargs={"run_id": run.pk}, queue=self.workers.queue)
        self.task_ids[run.pk] = result.id
        self.record.runs.append(run.pk)
        return run.pk

    def status(self, run_id: int) -> str:
        from integrations.models import SyncRun

        return SyncRun.objects.filter(pk=run_id).values_list("status", flat=True).get()

    def wait(self, run_ids: Iterable[int]) -> list:
        """Wait until each run has finished (or was lost with its worker); notes runs seen running
        at the same time."""
        from integrations.models import SyncRun

        pending = set(run_ids) - set(self.record.lost)
        started = time.monotonic()
        within = self.within
        deadline = started + within
        while pending:
            self.workers.check_alive()
            rows = dict(SyncRun.objects.filter(pk__in=pending).values_list("pk", "status"))
            live = sorted(pk for pk, status in rows.items() if status == "running")
            if len(live) > 1 and (live[0], live[1]) not in self.record.overlapped:
                self.record.overlapped.append((live[0], live[1]))
            pending = {pk for pk, status in rows.items() if status not in TERMINAL}
            if not pending:
                break
            for run_id in pending:
                crash = self.workers.crash(self.task_ids[run_id])
                if crash:
                    raise ChaosFailure(f"run {run_id} crashed its task (left '{rows[run_id]}'):\n{crash}")
            if time.monotonic() > deadline:
                raise ChaosFailure(f"runs {sorted(pending)} not finished within {within:.0f} s: {rows}")
            time.sleep(POLL)
        self.record.sync_seconds += time.monotonic() - started
        runs = list(SyncRun.objects.filter(pk__in=list(run_ids)).order_by("pk"))
        for run in runs:
            self.record.statuses[run.status] += 1
        return runs

    def retried(self) -> list[int]:
        """Runs whose task was told to wait for another run's lease and retried by Celery."""
        said = [line for lines in self.workers.log_lines().values() for line in lines if "] retry: " in line]
        return [
            run_id for run_id, task_id in self.task_ids.items() if any(f"[{task_id}] retry" in line for line in said)
        ]

    def run_once(self):
        (run,) = self.wait([self.dispatch()])
        return run


def let_waits_lapse(connection) -> int:
    """As if the engine's waits had passed: outbox entries waiting for a retry or held by a claim
    are due now, and the connection's run lease is gone. Only while no run is live (a live run's
    claims must hold). Returns how many entries were waiting."""
    from integrations.models import Connection, OutboxEntry

    now = timezone.now()
    waiting = OutboxEntry.objects.filter(connection=connection, status="pending", next_attempt_at__gt=now).update(
        next_attempt_at=now
    )
    Connection.objects.filter(pk=connection.pk).update(run_lease_until=None)
    return waiting


def sync_state(connection) -> str:
    """A fingerprint of everything a run can change in the engine's own books: every link (ids,
    versions, agreed state, deletions), open conflicts and quarantine, pending outbox entries. A
    run that leaves it as it was changed nothing — whatever it counted while re-reading records
    (a re-read void or open conflict is counted again, though nothing happens)."""
    from integrations.models import Conflict, ExternalRef, OutboxEntry, QuarantineItem

    parts = [
        list(
            ExternalRef.objects.filter(connection=connection)
            .order_by("pk")
            .values_list("pk", "remote_id", "remote_version", "synced_hash", "remote_deleted", "local_deleted")
        ),
        list(Conflict.objects.filter(connection=connection).order_by("pk").values_list("pk", "status", "fields")),
        list(QuarantineItem.objects.filter(connection=connection).order_by("pk").values_list("pk", "status")),
        list(
            OutboxEntry.objects.filter(connection=connection, status="pending")
            .order_by("pk")
            .values_list("pk", "changed_at")
        ),
    ]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


# --- The two books ------------------------------------------------------------------------------


@dataclass
class Plan:
    """Which record gets which treatment, chosen up front from the seed."""

    local_customers: list[int] = field(default_factory=list)
    remote_customers: list[str] = field(default_factory=list)
    paid_here: set[int] = field(default_factory=set)
    paid_there: set[int] = field(default_factory=set)
    edits: dict[str, list[int]] = field(default_factory=dict)
    conflicts_expected: int = 0


class ChaosRun:
    """One chaos scenario on one connection; `run()` does it all and returns the report."""

    def __init__(
        self,
        *,
        size: ChaosSize,
        books: Books,
        connection,
        actor,
        workers: Workers,
        log: Callable[[str], None] = print,
    ):
        self.size = size
        self.books = books
        self.connection = connection
        self.actor = actor
        self.workers = workers
        self.log = log
        self.rng = random.Random(size.seed)  # noqa: S311 - reproducible data, not secrets
        self.runner = Runner(connection=connection, workers=workers, within=size.run_within, log=log)
        self.plan = Plan()
        self.today = timezone.localdate()
        self.remote_numbers = 0
        self.phases: dict[str, dict] = {}
        self.events: list[str] = []
        self.started = time.monotonic()
        # Requests the simulator answered while the chaos faults were on (the share injected is
        # of these: the kill, the final full pull and the last runs go without them).
        self.requests_under_chaos = 0
        self._chaos_since: int | None = None

    # --- set-up -----------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        *,
        simulator,
        actor,
        provider: str = "quickbooks",
        tenant: str | None = None,
        name: str = "Chaos books",
    ) -> tuple[Books, object]:
        """A company of its own in `provider`'s simulator (so that limiter and breaker keys are its
        own) and an active connection with tokens the simulator issued, a mapping covering the
        data and the policies the scenario relies on. Returns (books, connection)."""
        from integrations import services
        from integrations.core.tokens import Tokens
        from integrations.models import Connection
        from integrations.tokens import save_tokens
        from ledger.models import Account

        books = BOOKS[provider].open(simulator, tenant=tenant)
        connection = services.create_connection(actor=actor, provider=provider, name=name)
        granted = books.issue_tokens()
        connection.tenant_id, connection.status = books.tenant, Connection.Status.ACTIVE
        connection.save()
        save_tokens(
            connection,
            Tokens(
                access_token=granted["access_token"],
                access_expires_at=timezone.now() + timedelta(seconds=granted["expires_in"]),
                refresh_token=granted["refresh_token"],
            ),
        )
        revenue_codes = list(Account.objects.filter(type=Account.Type.INCOME).values_list("code", flat=True))
        services.create_mapping_version(
            actor=actor,
            connection=connection,
            note="Chaos: untaxed lines on the default item, one income account",
            **books.mapping_tables(revenue_codes),
        )
        # The customer field both sides edit follows the package; a due date both sides changed is asked.
        services.set_field_policy(
            actor=actor, connection=connection, entity="customer", field=books.shared_canonical_field, policy="remote"
        )
        books.prepare(connection)
        return books, Connection.objects.get(pk=connection.pk)

    # --- the scenario -------------------------------------------------------------------------

    def run(self) -> dict:
        """The whole scenario; returns `summary()` with what `verify()` found. Raises ChaosFailure
        when the books do not converge or do not agree (`summary()` still tells what happened)."""
        self.started = time.monotonic()
        self._set_faults(CHAOS_FAULTS, seed=self.size.seed)
        self._phase("round 1: create on both sides", self.create_first_round)
        self._phase("sync 1: worker killed mid-batch", self.sync_with_a_worker_killed)
        self._phase("round 2: bill across, pay on both sides", self.create_second_round)
        self._phase("sync 2: two runs at once", self.sync_with_two_runs_at_once)
        self._phase("round 3: edit and void on both sides", self.edit_both_sides)
        self._phase("sync 3: converge and settle conflicts", self.sync_and_settle)
        self._phase("final: faults off, full pull", self.full_pull_changes_nothing)
        self._phase("two runs dispatched together", self.two_runs_dispatched_together)
        verified = self._phase("verify", self.verify)
        summary = self.summary()
        counters = summary["simulator"]["counters"]
        injected = ", ".join(
            f"{counters.get(f'injected_{kind}', 0)} {kind}" for kind in ("429", "5xx", "drop", "timeout")
        )
        self.log(
            f"[chaos] {self.books.label}: {summary['runs']['count']} runs, {counters.get('requests', 0)} requests "
            f"({summary['requests_under_chaos']} under the chaos faults); injected {injected}; "
            f"429s sent {counters.get('sent_429', 0)}, "
            f"of which drawn by pacing {self.books.own_limit_429(counters)}; {summary['seconds']} s"
        )
        return {**summary, "verified": verified}

    def summary(self) -> dict:
        return {
            "provider": self.books.provider,
            "size": {
                "name": self.size.name,
                "customers": self.size.customers,
                "invoices": self.size.invoices,
                "payments": self.size.payments,
                "seed": self.size.seed,
            },
            "faults": CHAOS_FAULTS,
            "requests_under_chaos": self._requests_under_chaos(),
            "phases": self.phases,
            "events": self.events,
            "runs": {
                "count": len(self.runner.record.runs),
                "statuses": dict(self.runner.record.statuses),
                "overlapped": self.runner.record.overlapped,
                "retried_after_lease": self.runner.retried(),
                "lost_with_killed_worker": self.runner.record.lost,
                "sync_seconds": round(self.runner.record.sync_seconds, 1),
            },
            "simulator": self.books.stats(),
            "seconds": round(time.monotonic() - self.started, 1),
        }

    def _set_faults(self, faults: dict, **extra) -> None:
        """The package's faults from now on, counting the requests made while the chaos was on."""
        made = self.books.counter("requests")
        if self._chaos_since is not None:
            self.requests_under_chaos += made - self._chaos_since
        self._chaos_since = made if any(faults.get(name) for name in FAULT_RATES) else None
        self.books.set_faults(**faults, **extra)

    def _requests_under_chaos(self) -> int:
        ongoing = self.books.counter("requests") - self._chaos_since if self._chaos_since is not None else 0
        return self.requests_under_chaos + ongoing

    def _phase(self, name: str, work: Callable[[], object]):
        self.log(f"[chaos] {name}…")
        runs_before = len(self.runner.record.runs)
        requests_before = self.books.requests()
        started = time.monotonic()
        outcome = work()
        self.phases[name] = {
            "seconds": round(time.monotonic() - started, 1),
            "runs": len(self.runner.record.runs) - runs_before,
            "requests": self.books.requests() - requests_before,
        }
        self.log(f"[chaos] {name}: {self.phases[name]}")
        return outcome

    # --- helpers on both books ------------------------------------------------------------------

    def _remote_id(self, entity: str, local_id: int) -> str:
        from integrations.models import ExternalRef

        return ExternalRef.objects.get(connection=self.connection, entity=entity, local_id=local_id).remote_id

    def _local_id(self, entity: str, remote_id: str) -> int:
        from integrations.models import ExternalRef

        return ExternalRef.objects.get(connection=self.connection, entity=entity, remote_id=remote_id).local_id

    def _lines(self) -> list[tuple[int, Decimal]]:
        """One or two untaxed lines: (quantity, unit price)."""
        return [
            (self.rng.choice((1, 1, 2, 3)), Decimal(self.rng.randrange(1000, 50000)) / 100)
            for _ in range(self.rng.choice((1, 1, 2)))
        ]

    def _issue_day(self) -> date:
        return self.today - timedelta(days=self.rng.randrange(0, 45))

    def _create_local_customers(self, count: int) -> list[int]:
        from crm import services as crm

        ids = []
        for number in range(1, count + 1):
            customer = crm.create_customer(
                actor=self.actor, display_name=f"Chaos Here {number:05d}", currency="USD", owner=None
            )
            ids.append(customer.pk)
        return ids

    def _create_remote_customers(self, count: int) -> list[str]:
        return [self.books.create_customer(f"Chaos There {number:05d}") for number in range(1, count + 1)]

    def _create_local_invoices(self, customer_ids: list[int]) -> list[int]:
        """Drafts in batches, issued per issue day (the batch services post them together)."""
        from billing import services as billing
        from crm.models import Customer

        customers = Customer.objects.in_bulk(set(customer_ids))
        by_day: dict[date, list] = {}
        for customer_id in customer_ids:
            lines = [
                billing.LineInput(description=f"Chaos work {position}", quantity=Decimal(quantity), unit_price=price)
                for position, (quantity, price) in enumerate(self._lines(), start=1)
            ]
            by_day.setdefault(self._issue_day(), []).append(
                billing.InvoiceDraft(customer=customers[customer_id], lines=lines)
            )
        ids = []
        for day, drafts in sorted(by_day.items()):
            for start in range(0, len(drafts), 500):
                with transaction.atomic():
                    created = billing.create_invoices(actor=self.actor, drafts=drafts[start : start + 500])
                    ids += [
                        invoice.pk
                        for invoice in billing.issue_invoices(actor=self.actor, invoices=created, issue_date=day)
                    ]
        return ids

    def _create_remote_invoices(self, customer_ids: list[str]) -> list[str]:
        ids = []
        for customer_id in customer_ids:
            self.remote_numbers += 1
            ids.append(
                self.books.create_invoice(
                    customer_id=customer_id,
                    number=self.books.invoice_number(self.remote_numbers),
                    issued=self._issue_day(),
                    lines=self._lines(),
                )
            )
        return ids

    # --- round 1 ------------------------------------------------------------------------------

    def create_first_round(self) -> None:
        size = self.size
        here_customers = size.customers // 2
        self.plan.local_customers = self._create_local_customers(here_customers)
        self.plan.remote_customers = self._create_remote_customers(size.customers - here_customers)
        invoices = round(size.invoices * size.first_round_share)
        self._create_local_invoices([self.rng.choice(self.plan.local_customers) for _ in range(invoices // 2)])
        self._create_remote_invoices(
            [self.rng.choice(self.plan.remote_customers) for _ in range(invoices - invoices // 2)]
        )

    def sync_with_a_worker_killed(self) -> None:
        """A batch of creates is committed in the package and its answer held back; the worker
        pushing it is SIGKILLed and a replacement started. The next run must push the same batch
        again under the same key (QuickBooks' requestid, Xero's Idempotency-Key): replayed, not
        created twice."""
        from integrations.models import OutboxEntry, SyncRun

        pending = OutboxEntry.objects.filter(connection=self.connection, status="pending").count()
        if not pending:
            raise ChaosFailure("nothing to push: the worker would be killed mid-pull, not mid-batch")
        held_before = self.books.counter("injected_timeout")
        self._set_faults(
            {**NO_FAULTS, "script": ["timeout"], "match": self.books.batch_write, "timeout_seconds": KILL_HOLD_SECONDS}
        )
        run_id = self.runner.dispatch()
        task_id = self.runner.task_ids[run_id]
        deadline = time.monotonic() + self.size.run_within
        victim = None
        while victim is None:
            self.workers.check_alive()
            if time.monotonic() > deadline:
                raise ChaosFailure(f"no batch reached {self.books.label} to kill its worker in the middle of")
            if self.books.counter("injected_timeout") > held_before:
                victim = self.workers.running(task_id)
            if self.runner.status(run_id) in TERMINAL:
                raise ChaosFailure(f"run {run_id} finished before a batch was held: {self.runner.status(run_id)}")
            time.sleep(POLL / 4)
        self.workers.kill(victim)
        self.runner.record.lost.append(run_id)
        run = SyncRun.objects.get(pk=run_id)
        self.events.append(
            f"worker {victim} SIGKILLed during run {run_id} while {self.books.label} held the answer to a batch it had "
            f"committed (the run's progress as last saved: {run.phase}, {run.done} done)"
        )
        # The other worker carries on meanwhile; the replacement joins when it is up.
        self.workers.start(1, wait=False)
        self._set_faults({**NO_FAULTS, **CHAOS_FAULTS})
        self.converge()

    # --- round 2 ------------------------------------------------------------------------------

    def create_second_round(self) -> None:
        """Invoices for the other side's customers, and payments on both sides for round 1's
        invoices (synced by now), each invoice paid on one side only."""
        from billing.models import Invoice

        size = self.size
        synced = list(Invoice.objects.filter(status=Invoice.Status.ISSUED).order_by("pk").values_list("pk", flat=True))
        if len(synced) < size.payments:
            raise ChaosFailure(f"{len(synced)} open invoices cannot take {size.payments} payments")
        paid = self.rng.sample(synced, size.payments)
        self.plan.paid_here = set(paid[: size.payments // 2])
        self.plan.paid_there = set(paid[size.payments // 2 :])
        invoices = size.invoices - round(size.invoices * size.first_round_share)
        remote_customers_here = [self._local_id("customer", remote) for remote in self.plan.remote_customers]
        local_customers_there = [self._remote_id("customer", local) for local in self.plan.local_customers]
        self._create_local_invoices([self.rng.choice(remote_customers_here) for _ in range(invoices // 2)])
        self._create_remote_invoices([self.rng.choice(local_customers_there) for _ in range(invoices - invoices // 2)])
        self._pay_here(sorted(self.plan.paid_here))
        self._pay_there(sorted(self.plan.paid_there))

    def _share(self, amount: Decimal) -> Decimal:
        """All of it two times in three, otherwise half (a partial payment)."""
        return amount if self.rng.random() < 2 / 3 else (amount / 2).quantize(CENT)

    def _pay_here(self, invoice_ids: list[int]) -> None:
        from billing import services as billing
        from billing.models import Invoice

        for invoice in Invoice.objects.filter(pk__in=invoice_ids).select_related("customer").order_by("pk"):
            amount = self._share(invoice.open_amount)
            with transaction.atomic():
                payment = billing.record_payment(
                    actor=self.actor,
                    customer=invoice.customer,
                    amount=amount,
                    received_on=self.today,
                    method="bank_transfer",
                    auto_apply=False,
                )
                billing.allocate_payment(actor=self.actor, payment=payment, invoice=invoice, amount=amount)

    def _pay_there(self, invoice_ids: list[int]) -> None:
        """One payment per invoice, applied to it whole (a Xero payment can pay no more than one)."""
        for invoice_id in invoice_ids:
            self.books.pay_invoice(self._remote_id("invoice", invoice_id), share=self._share, received_on=self.today)

    def sync_with_two_runs_at_once(self) -> None:
        """A run's hold on the connection lapses while it is still working (as when it stalls past
        its lease): a second worker starts a run of the same connection alongside it. Answers
        come slowly meanwhile, so that the first run is still at work when the second starts; a
        pair that did not overlap after all (the second was told to wait and came back too late)
        is tried again."""
        self.workers.wait_ready()
        for _ in range(OVERLAP_ATTEMPTS):
            self._set_faults({**NO_FAULTS, **CHAOS_FAULTS, "latency_ms": OVERLAP_LATENCY_MS})
            try:
                first, second = self._two_runs_at_once()
            finally:
                self._set_faults({**NO_FAULTS, **CHAOS_FAULTS})
            if (first, second) in self.runner.record.overlapped:
                self.events.append(f"runs {first} and {second} of the same connection ran at the same time")
                break
            self.events.append(f"runs {first} and {second} did not overlap; trying again")
        self.converge()

    def _two_runs_at_once(self) -> tuple[int, int]:
        """The first run, and the one that ran beside it (or the last one tried)."""
        from integrations.models import Connection

        first = self.runner.dispatch()
        deadline = time.monotonic() + self.size.run_within
        while self.runner.status(first) != "running":
            if time.monotonic() > deadline or self.runner.status(first) in TERMINAL:
                raise ChaosFailure(f"run {first} never started: {self.runner.status(first)}")
            time.sleep(POLL / 4)
        others = [self.runner.dispatch()]
        sent_at = time.monotonic()
        # The first run renews its lease as it goes: lapse it until another run holds it too. A
        # run that came too early and was told to wait is retried by Celery seconds later; rather
        # than wait for that, another is sent.
        while self.runner.status(first) == "running":
            statuses = {run_id: self.runner.status(run_id) for run_id in others}
            if "running" in statuses.values():
                break
            Connection.objects.filter(pk=self.connection.pk).update(run_lease_until=None)
            if time.monotonic() - sent_at > 1.0 and len(others) < OVERLAP_ATTEMPTS * 2:
                others.append(self.runner.dispatch())
                sent_at = time.monotonic()
            time.sleep(POLL / 4)
        beside = next((run_id for run_id in others if self.runner.status(run_id) == "running"), others[-1])
        if self.runner.status(first) == "running" and self.runner.status(beside) == "running":
            self.runner.record.overlapped.append((first, beside))
        self.runner.wait([first, *others])
        return first, beside

    # --- round 3 ------------------------------------------------------------------------------

    def edit_both_sides(self) -> None:
        """Disjoint sets of records, each with one treatment, on the invoices nobody paid (an edit
        or void of a paid invoice is refused by one book or the other, by design)."""
        from billing import services as billing
        from billing.models import Invoice
        from crm import services as crm
        from crm.models import Customer

        size = self.size
        customers = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
        unpaid = list(
            Invoice.objects.filter(status=Invoice.Status.ISSUED)
            .exclude(pk__in=self.plan.paid_here | self.plan.paid_there)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        per_customer_set = max(1, round(len(customers) * size.customer_edit_share))
        per_invoice_set = max(1, round(len(unpaid) * size.invoice_edit_share))
        per_void_set = max(1, round(len(unpaid) * size.void_share))
        picked_customers = iter(self.rng.sample(customers, 4 * per_customer_set))
        needed = 6 * per_invoice_set + 2 * per_void_set
        if len(unpaid) < needed:
            raise ChaosFailure(f"{len(unpaid)} unpaid invoices cannot take {needed} edits and voids")
        picked_invoices = iter(self.rng.sample(unpaid, needed))
        # "field" is the customer field both sides edit (`Books.shared_field`): the legal name in
        # QuickBooks, the billing city in Xero.
        customer_sets = ("field_here", "tax_id_there", "field_here_tax_id_there", "field_both")
        edits = {name: [next(picked_customers) for _ in range(per_customer_set)] for name in customer_sets}
        edits |= {
            name: [next(picked_invoices) for _ in range(per_invoice_set)]
            for name in ("memo_here", "due_there", "memo_here_due_there", "due_both", "lines_here", "lines_there")
        }
        edits |= {name: [next(picked_invoices) for _ in range(per_void_set)] for name in ("void_here", "void_there")}
        self.plan.edits = edits
        self.plan.conflicts_expected = len(edits["due_both"])

        books = self.books
        for customer in Customer.objects.filter(
            pk__in=edits["field_here"] + edits["field_here_tax_id_there"] + edits["field_both"]
        ):
            crm.update_customer(actor=self.actor, customer=customer, **{books.shared_field: books.here_value(customer)})
        for customer_id in edits["tax_id_there"] + edits["field_here_tax_id_there"]:
            books.set_tax_id(self._remote_id("customer", customer_id), f"RS-{customer_id}")
        for customer_id in edits["field_both"]:
            books.set_shared_field(self._remote_id("customer", customer_id), books.there_value(customer_id))

        invoices = Invoice.objects.in_bulk(
            [pk for name, ids in edits.items() if name not in customer_sets for pk in ids]
        )
        for invoice_id in edits["memo_here"] + edits["memo_here_due_there"]:
            billing.update_issued_invoice(
                actor=self.actor, invoice=invoices[invoice_id], memo=f"Chaos memo {invoice_id}"
            )
        for invoice_id in edits["due_there"] + edits["memo_here_due_there"] + edits["due_both"]:
            books.set_due_date(
                self._remote_id("invoice", invoice_id), invoices[invoice_id].due_date + timedelta(days=14)
            )
        for invoice_id in edits["due_both"]:
            billing.update_issued_invoice(
                actor=self.actor,
                invoice=invoices[invoice_id],
                due_date=invoices[invoice_id].due_date + timedelta(days=7),
            )
        for invoice_id in edits["lines_here"]:
            lines = [
                billing.LineInput(
                    description=f"Chaos work {position} (amended)", quantity=Decimal(quantity), unit_price=price
                )
                for position, (quantity, price) in enumerate(self._lines(), start=1)
            ]
            billing.amend_issued_invoice(actor=self.actor, invoice=invoices[invoice_id], lines=lines)
        for invoice_id in edits["lines_there"]:
            books.replace_lines(self._remote_id("invoice", invoice_id), self._lines())
        for invoice_id in edits["void_here"]:
            billing.void_invoice(
                actor=self.actor,
                invoice=invoices[invoice_id],
                voided_on=max(self.today, invoices[invoice_id].issue_date),
            )
        for invoice_id in edits["void_there"]:
            books.void_invoice(self._remote_id("invoice", invoice_id))

    def sync_and_settle(self) -> None:
        """Converge; a person (the driver) settles each open conflict — Concord's value for one
        half, the package's for the other — and the runs converge again."""
        from integrations import services
        from integrations.models import Conflict

        for _ in range(5):
            self.converge()
            conflicts = list(Conflict.objects.filter(connection=self.connection, status="open").order_by("pk"))
            if not conflicts:
                return
            for number, conflict in enumerate(conflicts):
                side = "concord" if number % 2 == 0 else "remote"
                services.resolve_conflict(
                    actor=self.actor, conflict=conflict, choices=dict.fromkeys(conflict.fields, side)
                )
            self.events.append(f"{len(conflicts)} conflicts settled ({', '.join(sorted({c.kind for c in conflicts}))})")
        raise ChaosFailure("conflicts kept opening after five rounds of settling them")

    # --- convergence --------------------------------------------------------------------------

    def _pending(self) -> int:
        from integrations.models import OutboxEntry

        return OutboxEntry.objects.filter(connection=self.connection, status="pending").count()

    def converge(self):
        """Runs, one after another on whichever worker is free, until one succeeds with nothing
        left to push and having changed nothing (`sync_state` the same before and after it)."""
        for _ in range(self.size.max_runs):
            let_waits_lapse(self.connection)
            before = sync_state(self.connection)
            run = self.runner.run_once()
            if run.status == "succeeded" and not self._pending() and sync_state(self.connection) == before:
                return run
        raise ChaosFailure(f"not converged after {self.size.max_runs} runs; outbox pending: {self._pending()}")

    def full_pull_changes_nothing(self) -> None:
        """Faults off, every cursor back to the beginning: a run reading everything again must find
        both books in step — nothing created, changed, pushed or linked."""
        from integrations.models import SyncCursor

        self._set_faults(NO_FAULTS)
        SyncCursor.objects.filter(connection=self.connection).update(value="", full_scan_at=None)
        let_waits_lapse(self.connection)
        before = sync_state(self.connection)
        run = self.runner.run_once()
        if run.status != "succeeded" or self._pending() or sync_state(self.connection) != before:
            from integrations.models import ExternalRef

            rewritten = Counter(
                ExternalRef.objects.filter(
                    connection=self.connection, last_synced_at__range=(run.started_at, run.finished_at)
                ).values_list("entity", flat=True)
            )
            raise ChaosFailure(
                f"a full pull after convergence changed something: {run.status}, {run.counts}, {run.errors[:5]}, "
                f"{self._pending()} pending, links written again: {dict(rewritten)}"
            )
        self.full_pull = {"run": run.pk, "counts": run.counts}

    def two_runs_dispatched_together(self) -> None:
        """Two runs queued at once on two free workers: one holds the connection, the other is
        told to wait (TransientError) and Celery retries it; both end succeeded."""
        first, second = self.runner.dispatch(), self.runner.dispatch()
        runs = self.runner.wait([first, second])
        if [run.status for run in runs] != ["succeeded", "succeeded"]:
            raise ChaosFailure(f"two runs dispatched together: {[(run.pk, run.status, run.errors) for run in runs]}")
        retried = [run_id for run_id in self.runner.retried() if run_id in (first, second)]
        self.events.append(f"runs {first} and {second} dispatched together; retried after the lease: {retried}")

    # --- the check ----------------------------------------------------------------------------

    def verify(self) -> dict:
        report = verify_books(connection=self.connection, books=self.books)
        problems = list(report.pop("problems"))
        problems += self._edits_landed()
        if problems:
            raise ChaosFailure(f"{len(problems)} problem(s) after convergence:\n" + "\n".join(problems[:60]))
        return report

    def _edits_landed(self) -> list[str]:
        """Both books agree (verify_books); here: on what each side did, not on undoing it."""
        from billing.models import Invoice
        from crm.models import Customer
        from integrations.models import Conflict

        edits, problems, books = self.plan.edits, [], self.books
        customers = Customer.objects.in_bulk(edits["field_both"] + edits["field_here_tax_id_there"])
        for customer_id in edits["field_both"]:
            value = getattr(customers[customer_id], books.shared_field)
            if value != books.there_value(customer_id):
                problems.append(
                    f"customer {customer_id}: the package's {books.shared_field} should win, Concord has {value!r}"
                )
        for customer_id in edits["field_here_tax_id_there"]:
            customer = customers[customer_id]
            value = getattr(customer, books.shared_field)
            if value != books.here_value(customer) or customer.tax_id != f"RS-{customer_id}":
                problems.append(f"customer {customer_id}: both edits should stay: {value!r}, {customer.tax_id!r}")
        invoices = Invoice.objects.in_bulk(
            [
                pk
                for name, ids in edits.items()
                if name in ("memo_here_due_there", "void_here", "void_there")
                for pk in ids
            ]
        )
        for invoice_id in edits["memo_here_due_there"]:
            if invoices[invoice_id].memo != f"Chaos memo {invoice_id}":
                problems.append(f"invoice {invoice_id}: Concord's memo was lost")
        for invoice_id in edits["void_here"] + edits["void_there"]:
            if invoices[invoice_id].status != Invoice.Status.VOID:
                problems.append(f"invoice {invoice_id}: voided on one side, {invoices[invoice_id].status} in Concord")
        settled = Conflict.objects.filter(
            connection=self.connection, entity="invoice", status="resolved", fields=["due_date"]
        )
        if settled.count() < self.plan.conflicts_expected:
            problems.append(f"{settled.count()} due-date conflicts settled, {self.plan.conflicts_expected} expected")
        return problems


# --- Verification ----------------------------------------------------------------------------------


def _comparable(entity: str, fields: dict) -> dict:
    """A voided document keeps its lines and total in Concord and zeroes them in QuickBooks (Xero
    keeps them, and zeroes what is due): of a voided one, what must agree is that it is voided,
    whose it is and its number."""
    if fields.get("voided"):
        keep = ("voided", "customer_remote_id", "number", "balance", "received_on", "currency")
        return {name: value for name, value in fields.items() if name in keep}
    return fields


def verify_books(*, connection, books: Books) -> dict:
    """Both books after convergence: every record exactly once on each side and linked once, each
    linked pair equal field by field (amounts, balances and AR per customer included), equal
    counts and totals per entity, `ledger_check` passing, nothing left in quarantine or conflicts.
    Returns the figures and the problems found (an empty list when all is well)."""
    from billing.models import Invoice, Payment
    from crm.models import Customer
    from integrations import services
    from integrations.local import ConcordStore
    from integrations.models import Conflict, ExternalRef, OutboxEntry, QuarantineItem

    problems: list[str] = []
    mapping = services.current_mapping(connection)
    store = ConcordStore(connection=connection)
    refs = ExternalRef.objects.filter(connection=connection)
    remote_of = {(ref.entity, ref.local_id): ref.remote_id for ref in refs}

    def remote_id_of(entity: str, local_id: int) -> str | None:
        return remote_of.get((entity, local_id))

    local = {
        "customer": {customer.pk: customer for customer in Customer.objects.all()},
        "invoice": {invoice.pk: invoice for invoice in Invoice.objects.exclude(status=Invoice.Status.DRAFT)},
        "payment": {payment.pk: payment for payment in Payment.objects.exclude(status=Payment.Status.PENDING)},
    }
    remote = {entity: books.rows(entity) for entity in local}
    figures: dict = {}
    for entity in local:
        linked = {ref.local_id: ref.remote_id for ref in refs if ref.entity == entity}
        unlinked_here = sorted(set(local[entity]) - set(linked))
        unlinked_there = sorted(set(remote[entity]) - set(linked.values()))
        linked_to_nothing = sorted(set(linked) - set(local[entity]))
        for what, ids in (
            ("in Concord only", unlinked_here),
            (f"in {books.label} only", unlinked_there),
            ("linked to a record Concord no longer has", linked_to_nothing),
        ):
            if ids:
                problems.append(f"{entity}: {len(ids)} {what}: {ids[:10]}")
        mismatched = 0
        for local_id, remote_id in sorted(linked.items()):
            if local_id not in local[entity] or remote_id not in remote[entity]:
                continue
            ours = store.to_record(entity, local[entity][local_id], remote_id_of=remote_id_of).fields()
            theirs = books.record(entity, remote[entity][remote_id], mapping).fields()
            ours, theirs = _comparable(entity, ours), _comparable(entity, theirs)
            if ours != theirs:
                mismatched += 1
                if mismatched <= 10:
                    differing = sorted(
                        name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name)
                    )
                    problems.append(
                        f"{entity} {local_id} ↔ {remote_id} differ in {differing}: "
                        + "; ".join(f"{name}: {ours.get(name)!r} ≠ {theirs.get(name)!r}" for name in differing[:3])
                    )
        if mismatched > 10:
            problems.append(f"{entity}: {mismatched} linked pairs differ in all")
        figures[entity] = {"concord": len(local[entity]), books.provider: len(remote[entity]), "linked": len(linked)}

    # Exactly once by the names a person would look for.
    for entity, key in (("customer", books.customer_name_key), ("invoice", books.invoice_number_key)):
        twice = {
            name: count for name, count in Counter(row.get(key) for row in remote[entity].values()).items() if count > 1
        }
        if twice:
            problems.append(f"{books.label} has {len(twice)} {entity} {key}s more than once: {sorted(twice)[:10]}")
    twice_here = {
        name: count for name, count in Counter(c.display_name for c in local["customer"].values()).items() if count > 1
    }
    if twice_here:
        problems.append(f"Concord has {len(twice_here)} customer names more than once: {sorted(twice_here)[:10]}")
    numbers_here = Counter(invoice.number for invoice in local["invoice"].values())
    if any(count > 1 for count in numbers_here.values()):
        problems.append("Concord has invoice numbers more than once")

    # Totals per entity, as a reconciliation report shows them.
    def live(rows, voided):
        return [row for row in rows if not voided(row)]

    here_invoices = live(local["invoice"].values(), lambda invoice: invoice.status == Invoice.Status.VOID)
    there_invoices = live(remote["invoice"].values(), lambda row: books.is_voided("invoice", row))
    here_payments = live(local["payment"].values(), lambda payment: payment.status == Payment.Status.FAILED)
    there_payments = live(remote["payment"].values(), lambda row: books.is_voided("payment", row))
    totals = {
        "invoices": (len(here_invoices), len(there_invoices)),
        "invoiced": (
            sum((i.gross_total for i in here_invoices), Decimal(0)),
            sum((books.invoice_total(row) for row in there_invoices), Decimal(0)),
        ),
        "open": (
            sum((i.open_amount for i in here_invoices), Decimal(0)),
            sum((books.invoice_open(row) for row in there_invoices), Decimal(0)),
        ),
        "payments": (len(here_payments), len(there_payments)),
        "received": (
            sum((p.amount for p in here_payments), Decimal(0)),
            sum((books.payment_amount(row) for row in there_payments), Decimal(0)),
        ),
        "ar": (
            sum((c.ar_balance for c in local["customer"].values()), Decimal(0)),
            sum((books.customer_balance(row) for row in remote["customer"].values()), Decimal(0)),
        ),
    }
    for name, (ours, theirs) in totals.items():
        if ours != theirs:
            problems.append(f"total {name}: Concord {ours}, {books.label} {theirs}")
    ar_differs = [
        customer.pk
        for customer in local["customer"].values()
        if remote_of.get(("customer", customer.pk)) in remote["customer"]
        and customer.ar_balance != books.customer_balance(remote["customer"][remote_of[("customer", customer.pk)]])
    ]
    if ar_differs:
        problems.append(f"AR differs for {len(ar_differs)} customers: {ar_differs[:10]}")

    report = StringIO()
    try:
        call_command("ledger_check", stdout=report, stderr=report)
    except SystemExit as failed:
        problems.append(f"ledger_check failed ({failed.code}): {report.getvalue()[-1000:]}")
    else:
        if "Ledger check passed" not in report.getvalue():
            problems.append(f"ledger_check: {report.getvalue()[-1000:]}")

    quarantined = list(
        QuarantineItem.objects.filter(connection=connection, status__in=["open", "retrying"]).values_list(
            "entity", "direction", "local_id", "remote_id", "error"
        )[:20]
    )
    if quarantined:
        problems.append(f"quarantine not empty: {quarantined}")
    open_conflicts = list(
        Conflict.objects.filter(connection=connection, status="open").values_list(
            "entity", "remote_id", "fields", "detail"
        )[:20]
    )
    if open_conflicts:
        problems.append(f"conflicts still open: {open_conflicts}")
    pending = OutboxEntry.objects.filter(connection=connection, status="pending").count()
    if pending:
        problems.append(f"{pending} outbox entries still pending")
    return {
        "records": figures,
        "totals": {name: [str(ours), str(theirs)] for name, (ours, theirs) in totals.items()},
        "ar_customers_equal": len(local["customer"]) - len(ar_differs),
        "conflicts_settled": Conflict.objects.filter(connection=connection, status="resolved").count(),
        "ledger_check": "passed" if not any(p.startswith("ledger_check") for p in problems) else "failed",
        "problems": problems,
    }
