from celery import shared_task

from crm import services


@shared_task
def refresh_customer_activity_stats() -> int:
    """Repair customers' cached activity stats; returns how many were out of step."""
    return services.refresh_activity_stats()
