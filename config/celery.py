"""The Celery application: configured from Django's settings (CELERY_*), tasks autodiscovered."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("concord")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_audit_tokens: dict[str, object] = {}


@task_prerun.connect
def _record_history_as_task_actor(task_id, task, **kwargs):
    # Plumbing, not a rule: whatever a task changes is attributed, in the audit history, to a
    # named system actor rather than to nobody.
    from config import audit

    _audit_tokens[task_id] = audit.begin_system_actor(f"task:{task.name}")


@task_postrun.connect
def _forget_task_actor(task_id, **kwargs):
    from config import audit

    token = _audit_tokens.pop(task_id, None)
    if token is not None:
        audit.end_system_actor(token)
