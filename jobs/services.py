"""Writes to a job's progress. Each is its own short statement, outside the caller's transaction
where possible, so that the page polling the job sees progress while the work goes on."""

from __future__ import annotations

import traceback
from collections.abc import Callable

from django.core.files.base import File
from django.db import transaction
from django.utils import timezone

from jobs.models import BackgroundJob


def create_job(*, kind: str, label: str, actor, params: dict | None = None) -> BackgroundJob:
    return BackgroundJob.objects.create(kind=kind, label=label, params=params or {}, created_by=actor)


def enqueue(*, job: BackgroundJob, task, **task_kwargs) -> BackgroundJob:
    """Send `task(job_id=…, **task_kwargs)` once the job row is committed (a worker that picks the
    task up first would otherwise not find the job)."""
    transaction.on_commit(lambda: task.delay(job_id=job.pk, **task_kwargs))
    return job


def start(*, job_id: int, total: int | None = None, message: str = "") -> BackgroundJob:
    """Mark the job running. Running a finished job again (a redelivered task) is refused by
    returning it unchanged: the caller checks `is_finished` and stops."""
    job = BackgroundJob.objects.get(pk=job_id)
    if job.is_finished:
        return job
    BackgroundJob.objects.filter(pk=job_id).update(
        status=BackgroundJob.Status.RUNNING, started_at=timezone.now(), total=total, done=0, message=message
    )
    job.refresh_from_db()
    return job


def advance(*, job_id: int, done: int, total: int | None = None, message: str | None = None) -> None:
    fields: dict = {"done": done}
    if total is not None:
        fields["total"] = total
    if message is not None:
        fields["message"] = message[:300]
    BackgroundJob.objects.filter(pk=job_id).update(**fields)


def succeed(
    *,
    job_id: int,
    message: str,
    file: File | None = None,
    file_name: str = "",
    result_url: str = "",
) -> BackgroundJob:
    job = BackgroundJob.objects.get(pk=job_id)
    if file is not None:
        job.result_file.save(file_name or "result", file, save=False)
        job.result_name = file_name
    job.status = BackgroundJob.Status.SUCCEEDED
    job.message = message[:300]
    job.result_url = result_url
    job.finished_at = timezone.now()
    if job.total is not None:
        job.done = job.total
    job.save()
    return job


def fail(*, job_id: int, error: str, hint: str = "") -> BackgroundJob:
    BackgroundJob.objects.filter(pk=job_id).update(
        status=BackgroundJob.Status.FAILED, error=error, hint=hint[:300], finished_at=timezone.now()
    )
    return BackgroundJob.objects.get(pk=job_id)


DEFAULT_HINT = "Try again; if it fails again, send this page's address and the error to your administrator."


def run_tracked(*, job_id: int, work: Callable[[int], None], hint: str = DEFAULT_HINT) -> None:
    """Run `work(job_id)` and record any exception it raises as the job's failure (re-raising it,
    so Celery logs and retries as configured). `work` reports progress and calls `succeed`."""
    try:
        work(job_id)
    except Exception as error:
        fail(job_id=job_id, error=f"{type(error).__name__}: {error}\n\n{traceback.format_exc(limit=5)}", hint=hint)
        raise
