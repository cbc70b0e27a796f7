"""Celery tasks of the sync engine: they only call services."""

from celery import shared_task

from . import services
from .core.errors import TransientError
from .models import Connection, SyncRun

# Celery discovers integrations.tasks only: the reconciliation job's task is registered through it.
from .reconciliation_tasks import reconcile_connection  # noqa: F401


@shared_task(
    bind=True,
    autoretry_for=(TransientError,),
    retry_backoff=15,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def sync_connection(self, run_id: int) -> str:
    """Carry out a queued run (retried later while another run holds the connection)."""
    return services.run_sync(run_id=run_id).status


@shared_task
def sync_connection_on_schedule(connection_id: int) -> int | None:
    """The connection's periodic task (django-celery-beat): queue a scheduled run."""
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None or not connection.is_runnable:
        return None
    return services.request_run(connection=connection, trigger=SyncRun.Trigger.SCHEDULE).pk


@shared_task
def purge_sync_payloads() -> int:
    return services.purge_payloads()
