"""A long job's progress and outcome, where a page can read it while a Celery worker runs it.

Exports, dunning runs, recurring-invoice runs and (later) syncs each create a BackgroundJob, hand
its id to a task, and the task reports through jobs.services. The person who started it watches
a progress bar (jobs.views) and gets the result file or the error with what to do about it.

No audit history here: a job is an operational record, not business data; what the job changed
carries its own history (with the job's task as the actor).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse


class BackgroundJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Done"
        FAILED = "failed", "Failed"

    FINISHED = (Status.SUCCEEDED, Status.FAILED)

    kind = models.CharField(max_length=50, help_text="What runs, e.g. aging_export, dunning_run.")
    label = models.CharField(max_length=200, help_text="What the person sees, e.g. 'Aging as of 2026-11-30 (XLSX)'.")
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(null=True, blank=True, help_text="Units of work, once known.")
    done = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=300, blank=True, help_text="The current step, or the outcome.")
    error = models.TextField(blank=True)
    hint = models.CharField(max_length=300, blank=True, help_text="What to do about the error.")
    result_file = models.FileField(upload_to="jobs/%Y/%m/", blank=True)
    result_name = models.CharField(max_length=200, blank=True, help_text="The download's file name.")
    result_url = models.CharField(max_length=300, blank=True, help_text="A page showing the outcome.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed"]), name="job_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(total__isnull=True) | Q(done__lte=models.F("total")), name="job_done_within_total"
            ),
        ]
        indexes = [models.Index(fields=["created_by", "-created_at"], name="job_owner_recent_idx")]

    def __str__(self) -> str:
        return self.label

    def get_absolute_url(self) -> str:
        return reverse("jobs:detail", args=[self.pk])

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def percent(self) -> int | None:
        """0–100, or None while the amount of work is not known yet."""
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.total:
            return None
        return min(100, self.done * 100 // self.total)
