"""Recurring-invoice runs as jobs people can watch: the nightly run (Celery beat, 01:00) and a run
started from the recurring-invoices page both leave a BackgroundJob with progress and outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import RecurringInvoice
from config.audit import system_actor
from jobs import services as jobs
from jobs.models import BackgroundJob

JOB_KIND = "recurring_run"
NIGHTLY_ACTOR = "task:billing.tasks.issue_recurring_invoices"
RUN_HINT = (
    "Nothing was issued twice: run it again. If the same template fails again, open it in the admin "
    "and check its customer, lines and dates."
)
RECENT_RUNS = 10


def start_run(*, actor, as_of: date | None = None) -> BackgroundJob:
    as_of = as_of or timezone.localdate()
    return jobs.create_job(
        kind=JOB_KIND,
        label=f"Recurring invoices up to {as_of:%d %b %Y}",
        actor=actor,
        params={"as_of": as_of.isoformat()},
    )


def run_job(*, job_id: int) -> int:
    """Issue the due recurring invoices as the job's starter; a finished job is left alone
    (a redelivered task). Returns how many invoices were issued."""
    job = jobs.start(job_id=job_id, message="Finding the templates that are due…")
    if job.is_finished:
        return 0
    actor = job.created_by or system_actor(NIGHTLY_ACTOR)
    as_of = date.fromisoformat(job.params["as_of"])
    issued = 0

    def work(job_id: int) -> None:
        nonlocal issued
        issued = services.generate_recurring_invoices(actor=actor, as_of=as_of, job_id=job_id)
        jobs.succeed(
            job_id=job_id,
            message=f"{issued} recurring invoice{'s' if issued != 1 else ''} issued.",
            result_url=reverse("recurring:page"),
        )

    jobs.run_tracked(job_id=job_id, work=work, hint=RUN_HINT)
    return issued


def run_nightly(*, as_of: date | None = None) -> int:
    """The nightly run: a job of its own, as the task's system actor."""
    job = start_run(actor=system_actor(NIGHTLY_ACTOR), as_of=as_of)
    return run_job(job_id=job.pk)


@dataclass(frozen=True)
class RecurringOverview:
    due: list[RecurringInvoice]
    active: int
    paused: int
    recent_runs: list[BackgroundJob]


def overview(*, today: date) -> RecurringOverview:
    """What the page shows: templates due to bill, how many are active, and the recent runs
    (every starter's: a run bills for everyone, so everyone who may start one sees them)."""
    counts = RecurringInvoice.objects.aggregate(active=Count("pk", filter=Q(is_active=True)), all=Count("pk"))
    due = list(
        RecurringInvoice.objects.filter(is_active=True, next_date__lte=today)
        .select_related("customer")
        .order_by("next_date", "pk")[:200]
    )
    runs = list(BackgroundJob.objects.filter(kind=JOB_KIND).select_related("created_by")[:RECENT_RUNS])
    return RecurringOverview(
        due=due, active=counts["active"], paused=counts["all"] - counts["active"], recent_runs=runs
    )
