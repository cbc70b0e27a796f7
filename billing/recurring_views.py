"""The recurring-invoices page: what is due, the recent runs, and "Run now" with a progress bar."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import recurring, tasks
from crm import access
from jobs import services as jobs


def _check_may_run(user) -> None:
    # A run issues invoices for every customer: it takes the right to issue and to see them all.
    if not (access.sees_all_customers(user) and user.has_perm("billing.issue_invoice")):
        raise PermissionDenied


@login_required
def recurring_page(request):
    _check_may_run(request.user)
    return render(
        request,
        "billing/recurring/page.html",
        {"overview": recurring.overview(today=timezone.localdate())},
    )


@login_required
@require_POST
def run_now(request):
    _check_may_run(request.user)
    job = recurring.start_run(actor=request.user)
    jobs.enqueue(job=job, task=tasks.run_recurring_invoices)
    return redirect(job.get_absolute_url())
