"""Measure 4: the aging exported as CSV and XLSX for all customers, each export in a child
process (bench.export_child) which reports its own peak RSS (VmHWM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from bench.stats import summary

ROOT = Path(__file__).resolve().parent.parent.parent
FORMATS = ("csv", "xlsx")


class ExportUnavailable(RuntimeError):
    pass


def database_url() -> str:
    """The URL of the database this process is connected to (the test database under pytest)."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = quote(settings["USER"] or "", safe="")
        if settings.get("PASSWORD"):
            auth += ":" + quote(settings["PASSWORD"], safe="")
        host = settings.get("HOST") or "127.0.0.1"
        port = settings.get("PORT") or 5432
        return f"postgres://{auth}@{host}:{port}/{settings['NAME']}"
    if connection.vendor == "sqlite":
        name = str(settings["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise ExportUnavailable("an in-memory SQLite database cannot be opened by a child process")
        return f"sqlite:///{Path(name).resolve()}"
    raise ExportUnavailable(f"no URL for a {connection.vendor} database")


def run_child(export_format: str, as_of: date) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url(), "DEBUG": "false"}
    env.pop("DATABASE_REPLICA_URL", None)
    command = [sys.executable, "-m", "bench.export_child", "--format", export_format, "--as-of", as_of.isoformat()]
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # noqa: S603
    out, err = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"export {export_format} failed ({child.returncode}): {err.decode()[-2000:]}")
    # The child reports its own VmHWM. wait4's ru_maxrss would not do: Linux carries into it the
    # high-water mark of the address space the child had before exec, a copy of this process,
    # which has grown to hundreds of MB by now whatever the export itself uses.
    return json.loads(out.decode().strip().splitlines()[-1])


def measure_exports(*, today: date, repeat: int) -> dict:
    results = {}
    for export_format in FORMATS:
        runs = [run_child(export_format, today) for _ in range(max(repeat, 1))]
        results[f"export_{export_format}"] = {
            "seconds": summary([run["seconds"] for run in runs]),
            "peak_rss_mb": round(max(run["peak_rss_kb"] for run in runs) / 1024, 1),
            "baseline_rss_mb": round(min(run["baseline_rss_kb"] for run in runs) / 1024, 1),
            "rows": runs[-1]["rows"],
            "bytes": runs[-1]["bytes"],
            "as_of": today.isoformat(),
            "process": "fresh interpreter (python -m bench.export_child)",
        }
    return results
