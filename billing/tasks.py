from celery import shared_task

from billing import services
from config import audit


@shared_task
def issue_recurring_invoices() -> int:
    """Issue every recurring invoice whose period has come; safe to run twice or late."""
    return services.generate_recurring_invoices(actor=audit.system_actor("task:billing.issue_recurring_invoices"))
