from celery import shared_task

from config import audit


@shared_task
def issue_recurring_invoices() -> int:
    """Issue every recurring invoice whose period has come (nightly, as a job people can see);
    safe to run twice or late."""
    from billing import recurring

    return recurring.run_nightly()


@shared_task(name="billing.tasks.run_recurring_invoices")
def run_recurring_invoices(job_id: int) -> None:
    """A recurring-invoice run started from its page, as the person who started it."""
    from billing import recurring

    recurring.run_job(job_id=job_id)


@shared_task
def export_aging_report(job_id: int) -> None:
    """Write a large aging export for the job's starter; a finished job is left as it is."""
    # Imported here so that this block stays an append to the module (several issues add tasks).
    from billing import exports

    exports.run_export_job(job_id=job_id)


@shared_task(name="billing.tasks.send_daily_dunning")
def send_daily_dunning() -> int:
    """The daily dunning run (beat, 06:00): each overdue invoice's due letter, at most once per
    level; a rerun sends nothing twice. Returns the run's job id."""
    from billing import dunning

    return dunning.send_daily()


@shared_task(name="billing.tasks.run_dunning")
def run_dunning(job_id: int, as_of: str) -> None:
    """A dunning run started from the dunning page, as the person who started it."""
    from datetime import date

    from billing import dunning

    dunning.run_job(job_id=job_id, as_of=date.fromisoformat(as_of))


@shared_task(name="billing.tasks.settle_due_promises")
def settle_due_promises() -> dict[str, int]:
    """The nightly settlement (beat, 00:30): each open promise whose date has passed becomes kept
    or broken; a rerun settles nothing twice. Returns how many of each."""
    from django.utils import timezone

    from billing import collections

    return collections.settle_due_promises(
        as_of=timezone.localdate(), actor=audit.system_actor("task:billing.tasks.settle_due_promises")
    )
