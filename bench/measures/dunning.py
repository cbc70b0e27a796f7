"""Measure 6: a dunning run (billing.dunning.run) over every overdue invoice, then the same run
again, which must send nothing new. E-mail goes to bench.mail.CountingBackend: counted, never
sent, not kept. This writes (letters, timeline activities): the runner gives it its own database."""

from __future__ import annotations

import time
from datetime import date

from django.test.utils import override_settings

from bench.mail import CountingBackend
from bench.stats import QueryCounter, summary
from billing import dunning
from config.audit import system_actor

ACTOR = "task:billing.tasks.send_daily_dunning"


def _one_run(*, as_of: date, actor) -> dict:
    CountingBackend.reset()
    with QueryCounter() as counter:
        started = time.perf_counter()
        result = dunning.run(as_of=as_of, actor=actor)
        seconds = time.perf_counter() - started
    return {
        "seconds": summary([seconds]),
        "planned": getattr(result, "planned", None),
        "sent": getattr(result, "sent", None),
        "failed": getattr(result, "failed", None),
        "skipped": getattr(result, "skipped", None),
        "messages": CountingBackend.sent,
        "queries": counter.count,
    }


def measure_dunning(*, today: date) -> dict:
    actor = system_actor(ACTOR)
    overdue = dunning.dunnable_invoices(today).count()
    with override_settings(EMAIL_BACKEND="bench.mail.CountingBackend"):
        first = _one_run(as_of=today, actor=actor)
        again = _one_run(as_of=today, actor=actor)
    return {
        "dunning_run": {**first, "overdue_invoices": overdue, "as_of": today.isoformat()},
        "dunning_rerun": {**again, "overdue_invoices": overdue, "as_of": today.isoformat()},
    }
