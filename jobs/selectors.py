"""Which jobs a person sees: the ones they started (superusers: all)."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from jobs.models import BackgroundJob

RECENT_JOB_LIMIT = 50


def jobs_visible_to(user) -> QuerySet[BackgroundJob]:
    jobs = BackgroundJob.objects.select_related("created_by")
    return jobs if user.is_superuser else jobs.filter(created_by=user)


def get_visible_job_or_404(user, pk) -> BackgroundJob:
    """404 for someone else's job: its existence does not leak."""
    return get_object_or_404(jobs_visible_to(user), pk=pk)


def recent_jobs(user) -> list[BackgroundJob]:
    return list(jobs_visible_to(user)[:RECENT_JOB_LIMIT])
