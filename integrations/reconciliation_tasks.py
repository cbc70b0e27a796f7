"""The reconciliation report as a Celery task: it only calls the service.

Celery's autodiscovery imports `integrations.tasks` only: that module must import this one for a
worker to know the task (the web process, which sends it, imports it when it starts a report).
"""

from celery import shared_task


@shared_task(name="integrations.reconciliation_tasks.reconcile_connection")
def reconcile_connection(job_id: int) -> None:
    """Compute a connection's reconciliation report for its job (progress on the job, the report as
    its result); a finished job is left as it is."""
    from . import reconciliation

    reconciliation.run_job(job_id=job_id)
