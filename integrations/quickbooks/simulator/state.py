"""Everything the simulator remembers, one lock around it, and its JSON file.

The file is rewritten atomically (a temporary file in the same directory, then `os.replace`)
a short moment after changes, so a burst of writes costs one save, and again on shutdown.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from . import oauth, wire
from .clock import SimulatedClock
from .company import Company, EventSink

FORMAT_VERSION = 1
# Realm ids look like Intuit's (16 digits); new ones count up from here.
FIRST_REALM_ID = 9130357766900001


class SimulatorState:
    def __init__(self, clock: SimulatedClock, emit: EventSink) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self._emit = emit
        self.companies: dict[str, Company] = {}
        self.oauth: dict[str, Any] = oauth.empty_state()
        self.next_realm = FIRST_REALM_ID
        self.on_change: Callable[[], None] = lambda: None

    def create_company(self, *, company_name: str, realm_id: str | None = None, timezone: str) -> Company:
        with self.lock:
            if realm_id is None:
                while str(self.next_realm) in self.companies:
                    self.next_realm += 1
                realm_id = str(self.next_realm)
                self.next_realm += 1
            if realm_id in self.companies:
                raise ValueError(f"realm {realm_id} already exists")
            company = Company.new(
                realm_id=realm_id, company_name=company_name, timezone=timezone, clock=self.clock.now, emit=self._emit
            )
            self.companies[realm_id] = company
            self.changed()
            return company

    def company(self, realm_id: str) -> Company | None:
        return self.companies.get(realm_id)

    def changed(self) -> None:
        self.on_change()

    def clear(self) -> None:
        with self.lock:
            self.companies.clear()
            self.oauth.clear()
            self.oauth.update(oauth.empty_state())
            self.next_realm = FIRST_REALM_ID

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "format": FORMAT_VERSION,
                "clock_offset_seconds": self.clock.offset_seconds,
                "next_realm": self.next_realm,
                "companies": {realm_id: company.data for realm_id, company in self.companies.items()},
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
            self.next_realm = int(data.get("next_realm", FIRST_REALM_ID))
            self.companies = {
                realm_id: Company(company_data, clock=self.clock.now, emit=self._emit)
                for realm_id, company_data in data.get("companies", {}).items()
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
        self._thread = threading.Thread(target=self._run, name="qbo-sim-state", daemon=True)
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
