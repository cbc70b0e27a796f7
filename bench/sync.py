"""The sync benchmark (issues 8 and 9): `python -m bench --sync [--sync-provider quickbooks|xero]`
(`make bench BENCH_ARGS=--sync`).

It runs the chaos scenario of bench/sync_chaos.py at full size (2 000 customers, 10 000 invoices,
5 000 payments) against the package's simulator (QuickBooks unless told otherwise) on a database
of its own, with two Celery workers on the Redis broker named by CELERY_BROKER_URL, and reports,
besides the scenario's own checks:

- records synced per second: every record a run created, linked, changed or pushed, over the
  time runs were running;
- requests made, and 429s received — injected by the chaos, and drawn by the simulator's own
  limiter (pacing that overshoots; it must be none);
- throughput as a fraction of the simulator's rate-limit bound (requests a minute ÷ the realm's
  500 a minute in QuickBooks, the tenant's calls a minute in Xero — 600 as the chaos run raises
  them): over the runs of the workload, and in a pacing probe that is rate-bound by
  construction — two threads reading through the real client, limiter (on Redis) and simulator
  for `--probe-seconds` with no faults, so that only the pacing decides how many requests go.

`simulated_pacing` answers the same question without waiting: the tenant limiter and the
QuickBooks simulator's token bucket on one simulated clock, for ten minutes of back-to-back
requests (QuickBooks only: Xero's limit is a sliding window, which it does not model).
Results go to bench/results/sync-<stamp>-<size>.json and .md (and latest-sync-<size>.*; a Xero
run's size is named `xero-<size>`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.sizes import RESULTS_DIR

# The simulator's per-realm limit (integrations/quickbooks/simulator/limits.py), and QBO's.
SIMULATOR_PER_MINUTE = 500
TARGET_FRACTION = 0.95
# What counts as a record synced in a run's counts ("voided" is left out: the engine counts a
# voided invoice again each time it is read, though nothing happens).
SYNCED = ("created", "linked", "updated", "deleted", "pushed")


def simulated_pacing(
    *,
    per_minute: int,
    per_second: int | None,
    clients: int = 2,
    seconds: float = 600.0,
    limit: int = SIMULATOR_PER_MINUTE,
    network_seconds: tuple[float, float] = (0.001, 0.030),
    seed: int = 8,
) -> dict:
    """Back-to-back requests from `clients` workers paced by one Concord TenantLimiter and admitted
    by the simulator's RealmLimiter, on one simulated clock: a request reaches the simulator a
    random network time after its slot was granted, and its answer takes as long again. Returns
    the requests made a minute, that as a fraction of `limit`, and how many the simulator refused."""
    import heapq
    import random

    from integrations.core.errors import RateLimited
    from integrations.core.throttle import TenantLimiter
    from integrations.quickbooks.simulator.limits import LimitSettings, RealmLimiter

    now = [0.0]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    limiter = TenantLimiter(
        f"pacing-probe:{uuid.uuid4().hex}",
        per_minute=per_minute,
        max_in_flight=4,
        per_second=per_second,
        redis_url="",
        clock=lambda: now[0],
    )
    bucket = RealmLimiter(LimitSettings(requests_per_minute=limit), clock=lambda: start + timedelta(seconds=now[0]))
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
    # (when, order, what, client, lease): "ask" for a slot, "arrive" at the simulator, "answer".
    events = [(0.0, client, "ask", client, "") for client in range(clients)]
    heapq.heapify(events)
    order = clients
    made = refused = 0
    while events:
        when, _, what, client, lease = heapq.heappop(events)
        now[0] = when
        if what == "ask":
            if when >= seconds:
                continue
            try:
                lease, then, what = limiter.acquire(timeout=0), when + rng.uniform(*network_seconds), "arrive"
            except RateLimited as wait:
                then, what = when + max(wait.retry_after or 0.0, 0.001), "ask"
        elif what == "arrive":
            made += 1
            if bucket.admit("probe").admitted:
                bucket.release("probe")
            else:
                refused += 1
            then, what = when + rng.uniform(*network_seconds), "answer"
        else:
            limiter.release(lease)
            then, what, lease = when, "ask", ""
        order += 1
        heapq.heappush(events, (then, order, what, client, lease))
    per_minute_made = made / (now[0] / 60)
    return {
        "per_minute_setting": per_minute,
        "per_second_setting": per_second,
        "clients": clients,
        "requests_per_minute": round(per_minute_made, 1),
        "fraction_of_limit": round(per_minute_made / limit, 4),
        "refused_429": refused,
        "simulated_seconds": round(now[0], 1),
    }


def pacing_probe(*, connection, books, seconds: float, threads: int = 2) -> dict:
    """Requests as fast as the pacing lets them go, through the real client and limiter (shared in
    Redis by the threads, as by workers) against the simulator, faults off."""
    from integrations import services
    from integrations.providers import build_adapter

    books.sim.clear_faults()
    before = books.stats()
    limit = books.limit_per_minute()
    stop_at = time.monotonic() + seconds
    made = [0] * threads
    failures: list[str] = []

    def read(slot: int) -> None:
        client = build_adapter(connection, mapping=services.current_mapping(connection)).client
        try:
            while time.monotonic() < stop_at:
                books.probe_read(client)
                made[slot] += 1
        except Exception as error:  # noqa: BLE001 - reported, the other thread goes on
            failures.append(f"{type(error).__name__}: {error}")
        finally:
            client.close()

    started = time.monotonic()
    workers = [threading.Thread(target=read, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    after = books.stats()
    per_minute = sum(made) / (elapsed / 60)
    return {
        "seconds": round(elapsed, 1),
        "requests": sum(made),
        "requests_per_minute": round(per_minute, 1),
        "limit_per_minute": limit,
        "fraction_of_limit": round(per_minute / limit, 4),
        "own_limiter_429": books.own_limit_429(after["counters"]) - books.own_limit_429(before["counters"]),
        "pacing": {"requests_per_minute": connection.requests_per_minute, "max_in_flight": connection.max_in_flight},
        "failures": failures[:5],
    }


def workload_figures(*, connection, books, report: dict) -> dict:
    """Records synced, requests and 429s of the chaos workload, and its request rate while runs ran."""
    from integrations.models import SyncRun

    runs = SyncRun.objects.filter(connection=connection, started_at__isnull=False, finished_at__isnull=False)
    busy = sum((run.finished_at - run.started_at).total_seconds() for run in runs)
    synced = sum(
        count for run in runs for counts in run.counts.values() for what, count in counts.items() if what in SYNCED
    )
    requests = sum(run.requests for run in runs)
    counters = report["simulator"]["counters"]
    limit = books.limit_per_minute()
    # Runs long enough to be more than their fixed pulls: the ones carrying the workload.
    heavy = [run for run in runs if run.requests >= 20]
    heavy_seconds = sum((run.finished_at - run.started_at).total_seconds() for run in heavy)
    heavy_requests = sum(run.requests for run in heavy)
    return {
        "records_synced": synced,
        "records_synced_per_second": round(synced / busy, 1) if busy else None,
        "run_seconds": round(busy, 1),
        "requests": int(counters.get("requests", 0)),
        "requests_by_runs": requests,
        "injected_429": int(counters.get("injected_429", 0)),
        "own_limiter_429": books.own_limit_429(counters),
        "limit_per_minute": limit,
        "requests_per_minute_while_running": round(requests / (busy / 60), 1) if busy else None,
        "fraction_of_limit_while_running": round(requests / (busy / 60) / limit, 4) if busy else None,
        "heavy_runs": len(heavy),
        "fraction_of_limit_heavy_runs": (
            round(heavy_requests / (heavy_seconds / 60) / limit, 4) if heavy_seconds else None
        ),
    }


def run_sync_bench(
    size,
    *,
    provider: str = "quickbooks",
    out_dir: Path = RESULTS_DIR,
    requests_per_minute: int | None = None,
    probe_seconds: float = 150.0,
    log: Callable[[str], None] = print,
) -> dict:
    """The scenario at `size` on the database Django is connected to, then the probes; writes the
    results and returns them (with the files' paths under "files")."""
    import tempfile

    from django.conf import settings
    from django.contrib.auth import get_user_model

    from bench.machine import machine_info
    from bench.sync_books import BOOKS
    from bench.sync_chaos import ChaosFailure, ChaosRun, Workers
    from integrations.models import Connection
    from integrations.quickbooks.build import REQUESTS_PER_SECOND

    if settings.CELERY_BROKER_URL.startswith(("filesystem://", "memory://")):
        raise SystemExit("The sync bench needs a broker server: set CELERY_BROKER_URL to Redis.")
    started_at = datetime.now().astimezone()
    actor, _ = get_user_model().objects.get_or_create(
        username="sync-bench", defaults={"is_superuser": True, "is_staff": True}
    )
    results: dict = {
        "bench": "concord sync benchmark (issues 8 and 9)",
        "provider": provider,
        "started_at": started_at.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "errors": {},
    }
    with BOOKS[provider].running() as simulator:
        for name, value in BOOKS[provider].settings_of(simulator).items():
            setattr(settings, name, value)
        books, connection = ChaosRun.connect(simulator=simulator, actor=actor, provider=provider)
        if requests_per_minute:
            Connection.objects.filter(pk=connection.pk).update(requests_per_minute=requests_per_minute)
            connection.refresh_from_db()
        workers = Workers(books=books, log_dir=Path(tempfile.mkdtemp(prefix="sync-bench-")), log=log)
        chaos = ChaosRun(size=size, books=books, connection=connection, actor=actor, workers=workers, log=log)
        try:
            workers.start(2)
            report = chaos.run()
        except ChaosFailure as failed:
            # Written down with whatever was measured, not lost in a traceback.
            results["errors"]["chaos"] = str(failed)
            report = chaos.summary()
        finally:
            workers.stop()
        log(f"[sync bench] worker logs in {workers.log_dir}")
        results["chaos"] = report
        results["workload"] = workload_figures(connection=connection, books=books, report=report)
        log(f"[sync bench] workload: {results['workload']}")
        if probe_seconds:
            log(f"[sync bench] pacing probe, {probe_seconds:.0f} s at {connection.requests_per_minute}/min…")
            results["probe"] = pacing_probe(connection=connection, books=books, seconds=probe_seconds)
            log(f"[sync bench] probe: {results['probe']}")
    if provider == "quickbooks":
        results["pacing_simulated"] = [
            simulated_pacing(per_minute=per_minute, per_second=REQUESTS_PER_SECOND)
            for per_minute in (450, 475, 480, 500)
        ] + [simulated_pacing(per_minute=500, per_second=None), simulated_pacing(per_minute=500, per_second=9)]
    results["finished_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    name = size.name if provider == "quickbooks" else f"{provider}-{size.name}"
    results["files"] = _write(results, out_dir=out_dir, stamp=started_at, size_name=name)
    return results


def markdown(results: dict) -> str:
    chaos, workload, probe = results["chaos"], results["workload"], results.get("probe")
    size, limit = chaos["size"], workload["limit_per_minute"]
    provider = results.get("provider", "quickbooks")
    rows = [
        f"# Sync benchmark ({provider})",
        "",
        f"{size['customers']} customers, {size['invoices']} invoices, {size['payments']} payments; "
        f"{results['machine'].get('cpu', '')}, {results['machine'].get('cores', '?')} cores; "
        f"{results['started_at']} → {results['finished_at']}.",
        "",
        "| figure | value |",
        "|---|---|",
        "| converged and verified | "
        + (f"**no**: {results['errors']['chaos'][:300]}" if "chaos" in results["errors"] else "yes")
        + f", in {chaos['seconds']} s ({chaos['runs']['count']} runs) |",
        f"| records synced | {workload['records_synced']} "
        f"({workload['records_synced_per_second']} a second of run time) |",
        f"| requests made | {workload['requests']} |",
        f"| 429s received: injected / drawn by pacing | {workload['injected_429']} / {workload['own_limiter_429']} |",
        f"| requests a minute while runs ran ÷ {limit} | {_percent(workload['fraction_of_limit_while_running'])} |",
        f"| the same, runs of 20+ requests | {_percent(workload['fraction_of_limit_heavy_runs'])} |",
    ]
    if probe:
        met = "met" if probe["fraction_of_limit"] >= TARGET_FRACTION else "**missed**"
        rows.append(
            f"| rate-bound probe at {probe['pacing']['requests_per_minute']}/min ÷ {limit} (target ≥ 95 %) | "
            f"{probe['fraction_of_limit']:.1%} ({met}); 429s drawn: {probe['own_limiter_429']} |"
        )
    if results.get("pacing_simulated"):
        rows += [
            "",
            "Pacing, simulated (10 minutes back to back):",
            "",
            "| per minute | per second | ÷ 500 | 429s |",
            "|---|---|---|---|",
        ]
    for line in results.get("pacing_simulated", []):
        rows.append(
            f"| {line['per_minute_setting']} | {line['per_second_setting'] or '—'} | "
            f"{line['fraction_of_limit']:.1%} | {line['refused_429']} |"
        )
    rows += ["", "Phases:", "", "| phase | seconds | runs | requests |", "|---|---|---|---|"]
    for name, phase in chaos["phases"].items():
        rows.append(f"| {name} | {phase['seconds']} | {phase['runs']} | {phase['requests']} |")
    rows += ["", "Events: " + "; ".join(chaos["events"]), ""]
    return "\n".join(rows)


def _percent(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _write(results: dict, *, out_dir: Path, stamp: datetime, size_name: str) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    base = f"sync-{stamp:%Y-%m-%dT%H%M}-{size_name}"
    paths = {
        "json": out_dir / f"{base}.json",
        "markdown": out_dir / f"{base}.md",
        "latest_json": out_dir / f"latest-sync-{size_name}.json",
        "latest_markdown": out_dir / f"latest-sync-{size_name}.md",
    }
    results = {**results, "files": {name: path.name for name, path in paths.items()}}
    text = json.dumps(results, indent=2, default=str) + "\n"
    table = markdown(results)
    for name in ("json", "latest_json"):
        paths[name].write_text(text)
    for name in ("markdown", "latest_markdown"):
        paths[name].write_text(table)
    return {name: str(path) for name, path in paths.items()}


DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/concord_sync_bench"


def main(args, *, recreate: Callable[[str], None]) -> int:
    """`python -m bench --sync`: a database of its own, recreated and migrated, then the bench."""
    import os

    url = args.database_url or os.environ.get("BENCH_SYNC_DATABASE_URL") or DEFAULT_DATABASE_URL
    os.environ["DATABASE_URL"] = url
    os.environ.pop("DATABASE_REPLICA_URL", None)
    os.environ["DEBUG"] = "false"  # Django would otherwise keep every statement in memory
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print(f"[sync bench] recreating {url.rsplit('/', 1)[-1]}…", flush=True)
    recreate(url)

    import django

    django.setup()
    import logging

    from django.core.management import call_command

    from bench.sync_chaos import PROVIDER_SIZES

    # One line per request from httpx would bury the bench's own output.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    call_command("migrate", verbosity=0, interactive=False)
    results = run_sync_bench(
        PROVIDER_SIZES[args.sync_provider][args.sync_size],
        provider=args.sync_provider,
        out_dir=args.out,
        requests_per_minute=args.requests_per_minute,
        probe_seconds=args.probe_seconds,
        log=lambda line: print(line, flush=True),
    )
    print(Path(results["files"]["latest_markdown"]).read_text())
    return 0 if not results["errors"] else 1
