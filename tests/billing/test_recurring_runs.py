"""Recurring-invoice runs as jobs: the page, "Run now" with progress, and the nightly run's record."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import recurring, tasks
from billing.models import Invoice, RecurringInvoice, RecurringInvoiceLine
from jobs.models import BackgroundJob
from ledger.models import Account

pytestmark = pytest.mark.django_db


@pytest.fixture
def due_templates(own_customer, others_customer):
    """Two monthly templates, one a period behind and one two periods behind."""
    today = timezone.localdate()
    templates = []
    for customer, start in ((own_customer, today), (others_customer, today - timedelta(days=40))):
        template = RecurringInvoice.objects.create(customer=customer, name="Support plan", next_date=start)
        RecurringInvoiceLine.objects.create(
            template=template,
            description="Support plan",
            quantity=1,
            unit_price=Decimal("250.00"),
            revenue_account=Account.objects.get(role=Account.Role.REVENUE),
        )
        templates.append(template)
    return templates


def test_a_run_started_from_the_page_issues_the_due_invoices_and_reports_on_its_job(ar_clerk, due_templates):
    job = recurring.start_run(actor=ar_clerk)
    assert recurring.run_job(job_id=job.pk) == 3
    job.refresh_from_db()
    assert (job.status, job.done, job.total) == ("succeeded", 2, 2)
    assert job.message == "3 recurring invoices issued."
    assert Invoice.objects.filter(created_by=ar_clerk, status="issued").count() == 3


def test_a_redelivered_run_task_changes_nothing(ar_clerk, due_templates):
    job = recurring.start_run(actor=ar_clerk)
    recurring.run_job(job_id=job.pk)
    assert recurring.run_job(job_id=job.pk) == 0
    assert Invoice.objects.count() == 3


def test_the_nightly_task_leaves_a_job_anyone_who_may_run_it_can_read(client, ar_clerk, due_templates):
    tasks.issue_recurring_invoices()
    job = BackgroundJob.objects.get(kind=recurring.JOB_KIND)
    assert job.created_by.username == "system.task:billing.tasks.issue_recurring_invoices"
    client.force_login(ar_clerk)
    page = client.get(reverse("recurring:page"))
    assert "3 recurring invoices issued." in page.text


def test_a_failing_run_is_shown_with_what_to_do(ar_clerk, due_templates, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("template 7 has no lines")

    monkeypatch.setattr(recurring.services, "generate_recurring_invoices", broken)
    job = recurring.start_run(actor=ar_clerk)
    with pytest.raises(RuntimeError):
        recurring.run_job(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "template 7 has no lines" in job.error
    assert job.hint == recurring.RUN_HINT


def test_run_now_starts_a_job_and_sends_its_starter_to_the_progress_page(
    client, ar_clerk, due_templates, monkeypatch, django_capture_on_commit_callbacks
):
    from config.celery import app

    # The task runs in this process (the Celery app read its settings long before this test).
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    client.force_login(ar_clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("recurring:run"))
    job = BackgroundJob.objects.get()
    assert response.status_code == 302 and response.url == job.get_absolute_url()
    progress = client.get(job.get_absolute_url())
    assert "3 recurring invoices issued." in progress.text


def test_the_page_lists_the_templates_due(client, ar_clerk, due_templates, own_customer):
    client.force_login(ar_clerk)
    response = client.get(reverse("recurring:page"))
    assert own_customer.display_name in response.text
    assert list(response.context["overview"].due) == sorted(due_templates, key=lambda t: (t.next_date, t.pk))


def test_a_sales_rep_may_not_run_recurring_invoices(client, sales_rep, due_templates):
    client.force_login(sales_rep)
    assert client.get(reverse("recurring:page")).status_code == 403
    assert client.post(reverse("recurring:run")).status_code == 403
    assert not BackgroundJob.objects.exists()
