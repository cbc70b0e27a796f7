"""Everything the simulator remembers, one lock around it, and its JSON file.

The file is rewritten atomically (a temporary file in the same directory, then `os.replace`)
a short moment after changes, so a burst of writes costs one save, and again on shutdown.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from . import oauth, wire
from .clock import SimulatedClock
from .organisation import EventSink, Organisation

FORMAT_VERSION = 1


class SimulatorState:
    def __init__(self, clock: SimulatedClock, emit: EventSink) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self._emit = emit
        self.organisations: dict[str, Organisation] = {}
        self.oauth: dict[str, Any] = oauth.empty_state()
        self.on_change: Callable[[], None] = lambda: None

    def create_organisation(self, *, name: str, tenant_id: str | None = None) -> Organisation:
        with self.lock:
            tenant_id = (tenant_id or str(uuid.uuid4())).lower()
            if tenant_id in self.organisations:
                raise ValueError(f"tenant {tenant_id} already exists")
            organisation = Organisation.new(tenant_id=tenant_id, name=name, clock=self.clock.now, emit=self._emit)
            self.organisations[tenant_id] = organisation
            self.changed()
            return organisation

    def organisation(self, tenant_id: str) -> Organisation | None:
        return self.organisations.get(str(tenant_id).lower())

    def changed(self) -> None:
        self.on_change()

    def clear(self) -> None:
        with self.lock:
            self.organisations.clear()
            self.oauth.clear()
            self.oauth.update(oauth.empty_state())

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "format": FORMAT_VERSION,
                "clock_offset_seconds": self.clock.offset_seconds,
                "organisations": {tenant_id: org.data for tenant_id, org in self.organisations.items()},
                "oauth": self.oauth,
            }

    def dumps(self) -> str:
        with self.lock:
            return wire.dumps(self.to_dict())

    def load(self, data: dict[str, Any]) -> None:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported state file format {data.get('format')!r}")
        with self.lock:
            self.clock.reset(float(data.get("clock_offset_seconds", 0.0)))
            self.organisations = {
                tenant_id: Organisation(org_data, clock=self.clock.now, emit=self._emit)
                for tenant_id, org_data in data.get("organisations", {}).items()
            }
            self.oauth.clear()
            self.oauth.update(oauth.empty_state())
            self.oauth.update(data.get("oauth", {}))


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class StateFile:
    """Debounced, atomic persistence of a SimulatorState to one JSON file."""

    def __init__(self, path: Path, state: SimulatorState, *, delay_seconds: float = 0.5) -> None:
        self.path = path
        self.state = state
        self.delay_seconds = delay_seconds
        self._condition = threading.Condition()
        self._dirty = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.saves = 0
        self.last_saved: datetime | None = None
        self.last_error = ""

    def load(self) -> bool:
        if not self.path.exists():
            return False
        self.state.load(wire.loads(self.path.read_text(encoding="utf-8")))
        return True

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="xero-sim-state", daemon=True)
        self._thread.start()

    def schedule(self) -> None:
        with self._condition:
            self._dirty = True
            self._condition.notify_all()

    def save_now(self) -> None:
        with self._condition:
            self._dirty = False
        text = self.state.dumps()
        write_atomically(self.path, text)
        self.saves += 1
        self.last_saved = self.state.clock.now()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.save_now()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._dirty and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                # Debounce: let the burst of changes settle before writing.
                self._condition.wait(timeout=self.delay_seconds)
                if self._stopping:
                    return
            try:
                self.save_now()
                self.last_error = ""
            except OSError as error:
                self.last_error = str(error)
