"""A real Celery worker, on the configured broker, runs a task end to end."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections

from config.celery import app
from crm.models import Customer
from crm.tasks import refresh_customer_activity_stats
from tests.factories import ActivityFactory


def _close_worker_thread_connections(**kwargs):
    # The worker runs tasks in its own thread; its database connection must not outlive the
    # test, or the test database cannot be dropped afterwards.
    connections.close_all()


@pytest.mark.broker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_real_worker_runs_the_periodic_stats_task_through_the_broker(own_customer):
    activity = ActivityFactory(customer=own_customer)
    Customer.objects.filter(pk=own_customer.pk).update(activity_count=0, last_activity_at=None)
    task_postrun.connect(_close_worker_thread_connections, weak=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            result = refresh_customer_activity_stats.delay()
            deadline = time.monotonic() + 30
            own_customer.refresh_from_db()
            while own_customer.activity_count != 1 and time.monotonic() < deadline:
                time.sleep(0.1)
                own_customer.refresh_from_db()
            if app.conf.result_backend:
                assert result.get(timeout=30) == 1
    finally:
        task_postrun.disconnect(_close_worker_thread_connections)
    assert (own_customer.activity_count, own_customer.last_activity_at) == (1, activity.occurred_at)


@pytest.mark.django_db
def test_the_activity_stats_task_is_scheduled_in_the_database_every_quarter_hour():
    from django_celery_beat.models import PeriodicTask

    scheduled = PeriodicTask.objects.get(task="crm.tasks.refresh_customer_activity_stats")
    assert (scheduled.enabled, scheduled.crontab.minute) == (True, "*/15")
