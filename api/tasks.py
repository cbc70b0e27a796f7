from celery import shared_task

from api import services


@shared_task
def purge_expired_idempotency_records() -> int:
    return services.purge_expired_idempotency_records()
