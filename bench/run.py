"""`run_bench`: every measure of issue 6 on the database Django is connected to, written as JSON
and Markdown to an output folder. `python -m bench` prepares that database; the CI test calls
this directly on the test database."""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from bench import report
from bench.machine import machine_info
from bench.measures import aging, dunning, exports, pages, throughput, tryton
from bench.sizes import GROUPS, READ_GROUPS, RESULTS_DIR, SMALL, WRITE_GROUPS, Size
from billing.models import CreditNote, Invoice, Payment
from crm.models import Customer


def seed(size: Size, *, log: Callable[[str], None] = print) -> list[str]:
    """Load the size's data with seed_scale; where that command is not there yet, the demo seed
    at a few customers (noted in the results)."""
    try:
        call_command("seed_scale", customers=size.customers, invoices=size.invoices, seed=size.seed, no_progress=True)
        return []
    except CommandError as error:
        if "Unknown command" not in str(error):
            raise
    customers = min(size.customers, 60)
    log(f"seed_scale is not available; seeding with seed_demo --customers {customers} --months 6")
    call_command("seed_demo", customers=customers, months=6, seed=size.seed, verbosity=0)
    return [f"seed_scale unavailable: seeded with seed_demo ({customers} customers, 6 months)"]


def data_sizes() -> dict:
    return {
        "customers": Customer.objects.count(),
        "invoices": Invoice.objects.count(),
        "open_invoices": Invoice.objects.filter(status__in=Invoice.OPEN_STATUSES).count(),
        "payments": Payment.objects.count(),
        "credit_notes": CreditNote.objects.count(),
    }


def _run_group(name: str, work: Callable[[], dict], results: dict, log: Callable[[str], None]) -> None:
    log(f"[bench] {name}…")
    started = time.perf_counter()
    try:
        results["measures"].update(work())
    except Exception as error:  # noqa: BLE001 - one failing measure is reported, the others still run
        results["errors"][name] = f"{type(error).__name__}: {error}"
        log(traceback.format_exc())
    log(f"[bench] {name} done in {time.perf_counter() - started:.1f} s")


def _read_pages(work: Callable[[], dict]) -> Callable[[], dict]:
    """Logging in writes a session (and maybe a bench user): rolled back, so that the read
    measures leave a shared database as they found it."""

    def rolled_back() -> dict:
        with transaction.atomic():
            measured = work()
            transaction.set_rollback(True)
        return measured

    return rolled_back


def run_bench(
    size: Size = SMALL,
    *,
    out_dir: Path = RESULTS_DIR,
    seed_data: bool = True,
    only: Iterable[str] | None = None,
    with_tryton: bool | None = None,
    writable: Callable[[], AbstractContextManager] = nullcontext,
    update_readme: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Measure on the current database connection and write `<stamp>-<size>.json` and `.md` (and
    `latest-<size>.*`) to `out_dir`. `writable()` wraps the measures that write (5 and 6), e.g. to
    switch to a copy of a shared database; `with_tryton` None runs Tryton when its virtualenv
    builds here. Returns the results, with the files' paths under "files"."""
    groups = [group for group in GROUPS if only is None or group in set(only)]
    today = timezone.localdate()
    started_at = datetime.now().astimezone()
    results: dict = {
        "bench": "concord scale benchmark (issue 6)",
        "started_at": started_at.isoformat(timespec="seconds"),
        "size": {
            "name": size.name,
            "customers": size.customers,
            "invoices": size.invoices,
            "seed": size.seed,
            "repeat": size.repeat,
            "warmup": size.warmup,
            "batch_size": size.batch_size,
            "batches": size.batches,
        },
        "machine": machine_info(),
        "notes": [],
        "measures": {},
        "errors": {},
    }
    if seed_data:
        log(f"[bench] seeding {size.customers} customers / {size.invoices} invoices…")
        seed_started = time.perf_counter()
        results["notes"] += seed(size, log=log)
        results["seed_seconds"] = round(time.perf_counter() - seed_started, 1)
    results["data"] = data_sizes()
    log(f"[bench] data: {results['data']}")

    read = {
        "lists": _read_pages(lambda: pages.measure_lists(repeat=size.repeat, warmup=size.warmup)),
        "customer_360": _read_pages(lambda: pages.measure_customer_360(repeat=size.repeat, warmup=size.warmup)),
        "aging": lambda: aging.measure_aging(today=today, repeat=size.repeat, warmup=size.warmup),
        "exports": lambda: exports.measure_exports(today=today, repeat=size.export_repeat),
    }
    for group in READ_GROUPS:
        if group in groups:
            _run_group(group, read[group], results, log)

    write = {
        "issue_post": lambda: throughput.measure_issue_post(
            today=today, batch_size=size.batch_size, batches=size.batches
        ),
        "record_allocate": lambda: throughput.measure_record_allocate(
            today=today, batch_size=size.batch_size, batches=size.batches
        ),
        "dunning": lambda: dunning.measure_dunning(today=today),
    }
    wanted_writes = [group for group in WRITE_GROUPS if group in groups]
    if wanted_writes:
        try:
            with writable():
                for group in wanted_writes:
                    _run_group(group, write[group], results, log)
        except Exception as error:  # noqa: BLE001 - e.g. the copy of a shared database could not be made
            results["errors"]["writes"] = f"{type(error).__name__}: {error}"
            log(traceback.format_exc())

    if "tryton" in groups:
        _run_tryton(size, results, with_tryton=with_tryton, log=log)

    results["finished_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    results["targets"] = report.targets(results)
    results["files"] = _write(results, out_dir=out_dir, stamp=started_at, size=size)
    if update_readme:
        report.update_readme(report.markdown(results, heading_level=3))
    return results


def _run_tryton(size: Size, results: dict, *, with_tryton: bool | None, log: Callable[[str], None]) -> None:
    if with_tryton is False:
        results["notes"].append("Tryton not run (--no-tryton)")
        return
    if with_tryton is None and not tryton.tryton_available():
        results["notes"].append("Tryton not run: its virtualenv cannot be built here")
        return

    def work() -> dict:
        measured = tryton.run_tryton(
            invoices=size.tryton_invoices, customers=size.tryton_customers, batch_size=size.tryton_batch_size
        )
        concord = results["measures"]
        return {
            "tryton": {
                **measured,
                "ratios": tryton.ratios(concord, measured, concord_invoices=results["data"]["invoices"]),
            }
        }

    _run_group("tryton", work, results, log)


def _write(results: dict, *, out_dir: Path, stamp: datetime, size: Size) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    base = f"{stamp:%Y-%m-%dT%H%M}-{size.name}"
    paths = {
        "json": out_dir / f"{base}.json",
        "markdown": out_dir / f"{base}.md",
        "latest_json": out_dir / f"latest-{size.name}.json",
        "latest_markdown": out_dir / f"latest-{size.name}.md",
    }
    results = {**results, "files": {name: path.name for name, path in paths.items()}}
    text = json.dumps(results, indent=2, default=str) + "\n"
    table = report.markdown(results)
    for name in ("json", "latest_json"):
        paths[name].write_text(text)
    for name in ("markdown", "latest_markdown"):
        paths[name].write_text(table)
    return {name: str(path) for name, path in paths.items()}
