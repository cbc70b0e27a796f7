"""The Tryton side of measure 7: its virtualenv, and its workload run in that virtualenv.

The bench runner imports this module in Concord's own virtualenv, so it imports nothing from
trytond: Tryton lives in a virtualenv of its own (by default .venv-tryton at the repository root),
built from bench/tryton/requirements.txt, and bench/tryton/workload.py runs there as a subprocess
that hands its figures back as JSON.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REQUIREMENTS = HERE / "requirements.txt"
WORKLOAD = HERE / "workload.py"
DEFAULT_VENV = ROOT / ".venv-tryton"
# In the virtualenv: the hash of the requirements file it was last built from.
STAMP = "concord-requirements.sha256"
# Fail within minutes, not pip's default of retrying slowly, where no package registry answers.
PIP_NETWORK_OPTIONS = ("--timeout", "30", "--retries", "2")
ERROR_TAIL = 4000  # characters of a failed command's output quoted in the error


class TrytonEnvironmentError(RuntimeError):
    """The Tryton virtualenv could not be built (no registry, a failed install, a bad path)."""


class TrytonWorkloadError(RuntimeError):
    """The workload ran in the Tryton virtualenv and failed, or answered no result."""


def ensure_virtualenv(path: Path = DEFAULT_VENV) -> Path:
    """Build (or reuse) the Tryton virtualenv at `path` and return its python.

    It is built with `python -m venv` from the interpreter running this code (the project's
    Python 3.11) and pip-installs requirements.txt; it is rebuilt from scratch only when that
    file's hash differs from the one stamped at the last build. Processes asking at once take
    turns on a lock file beside it: one builds, the others reuse.
    """
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Test processes running side by side (pytest-xdist) queue here: one builds, the others reuse.
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_virtualenv(path)


def _build_virtualenv(path: Path) -> Path:
    python = path / "bin" / "python"
    stamp = path / STAMP
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.is_file() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return python

    if path.exists() and any(path.iterdir()) and not (path / "pyvenv.cfg").is_file():
        raise TrytonEnvironmentError(f"{path} exists and is not a virtualenv: not clearing it for Tryton")
    # --clear starts over: a changed requirements file must not leave packages it no longer names.
    _run([sys.executable, "-m", "venv", "--clear", str(path)], what="creating the Tryton virtualenv")
    _run(
        [
            str(python),
            *("-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"),
            *PIP_NETWORK_OPTIONS,
            *("-r", str(REQUIREMENTS)),
        ],
        what="installing bench/tryton/requirements.txt",
    )
    stamp.write_text(wanted + "\n")
    return python


def run_workload(
    python: Path, *, invoices: int, customers: int, batch_size: int, workdir: Path, timeout: float | None = None
) -> dict:
    """Run workload.py with the Tryton virtualenv's `python`, its database in `workdir`, and
    return the figures it wrote (see workload.py for their shape)."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    result_file = workdir / "tryton-workload.json"
    result_file.unlink(missing_ok=True)
    command = [
        str(python),
        str(WORKLOAD),
        *("--invoices", str(invoices)),
        *("--customers", str(customers)),
        *("--batch-size", str(batch_size)),
        *("--workdir", str(workdir)),
        *("--json-out", str(result_file)),
    ]
    try:
        completed = subprocess.run(  # noqa: S603 - our own script, run by the virtualenv we built
            command, capture_output=True, text=True, cwd=workdir, env=_clean_environment(), timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise TrytonWorkloadError(f"the Tryton workload took longer than {timeout} s") from error
    if completed.returncode != 0:
        raise TrytonWorkloadError(
            f"the Tryton workload exited with {completed.returncode}:\n{completed.stderr[-ERROR_TAIL:]}"
        )
    if not result_file.is_file():
        raise TrytonWorkloadError(f"the Tryton workload wrote no {result_file.name}")
    return json.loads(result_file.read_text())


def _clean_environment() -> dict[str, str]:
    """This process's environment without what would point trytond elsewhere (TRYTOND_DATABASE__URI,
    TRYTOND_CONFIG, TRYTONPASSFILE …) or put Concord's packages on its path."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TRYTON") and name not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }


def _run(command: list[str], *, what: str) -> None:
    try:
        completed = subprocess.run(  # noqa: S603 - a fixed command: the interpreter, venv and pip
            command, capture_output=True, text=True, env=_clean_environment(), check=False
        )
    except OSError as error:
        raise TrytonEnvironmentError(f"{what} failed: {error}") from error
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr)[-ERROR_TAIL:]
        raise TrytonEnvironmentError(f"{what} failed (exit {completed.returncode}):\n{output}")
