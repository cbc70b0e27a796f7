"""A job's page with its progress bar (polled in place by htmx), and its result file."""

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import render

from jobs import selectors

# How often the progress fragment asks again while the job runs.
POLL_SECONDS = 1


@login_required
def job_list(request):
    return render(request, "jobs/job_list.html", {"jobs": selectors.recent_jobs(request.user)})


@login_required
def job_detail(request, job_pk):
    job = selectors.get_visible_job_or_404(request.user, job_pk)
    template = "jobs/_progress.html" if request.htmx else "jobs/job_detail.html"
    return render(request, template, {"job": job, "poll_seconds": POLL_SECONDS})


@login_required
def job_download(request, job_pk):
    job = selectors.get_visible_job_or_404(request.user, job_pk)
    if not job.result_file:
        raise Http404("This job has no file (yet).")
    return FileResponse(job.result_file.open("rb"), as_attachment=True, filename=job.result_name or None)
