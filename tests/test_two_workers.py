"""Two Celery worker processes on one broker and one database, on the same work at the same time,
do every piece of it exactly once (docs/scaling.md, "What is safe to run concurrently and why").

The workers are real `celery worker` processes started from this test, as production runs them
(not threads in this process): each has its own Django, its own database connections and its own
locks. They consume a queue of their own, so that no other worker on the broker takes the tasks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from email import message_from_string
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from celery.utils.nodenames import host_format
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from kombu import Exchange, Queue

from billing import recurring, tasks
from billing.models import DunningLetter, DunningLevel, Invoice, RecurringInvoice, RecurringInvoiceLine
from config.celery import app
from crm.models import Activity
from jobs import services as job_services
from jobs.models import BackgroundJob
from ledger.models import Account
from tests.billing.conftest import issue
from tests.factories import ContactFactory, CustomerFactory

TODAY = timezone.localdate()
# Weekly templates that started two weeks ago: three periods each are due today. Their invoices
# fall due in 30 days, so none of them is overdue and the dunning runs below leave them alone.
FIRST_PERIOD = TODAY - timedelta(weeks=2)
PERIODS = [FIRST_PERIOD + timedelta(weeks=n) for n in range(3)]
RECURRING_CUSTOMERS, TEMPLATES_PER_CUSTOMER = 4, 3
# Issued 120 days ago on 30-day terms: 90 days overdue, so each is due the top dunning letter.
OVERDUE_ISSUED_ON = TODAY - timedelta(days=120)
DUNNED_CUSTOMERS, OVERDUE_PER_CUSTOMER = 3, 2

# Deadlines for a failure to show, generous for a busy machine: on a quiet one the whole test
# takes about 20 s, most of it the workers starting.
WORKERS_READY_WITHIN = 45.0
WORK_DONE_WITHIN = 60.0
# "[2026-05-04 10:11:12,345: INFO/MainProcess] Task billing.tasks.x[<id>] succeeded in 1.2s: 3"
LOG_LINE = re.compile(r"^\[(?P<at>[\d-]+ [\d:,]+): \w+/[\w-]+\] Task [\w.]+\[(?P<id>[0-9a-f-]{36})\] (?P<outcome>.*)$")


@dataclass
class TaskRun:
    worker: str
    task_id: str
    outcome: str
    finished_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.outcome.startswith("succeeded in ")

    @property
    def started_at(self) -> datetime:
        seconds = float(self.outcome.removeprefix("succeeded in ").split("s:", 1)[0]) if self.succeeded else 0.0
        return self.finished_at - timedelta(seconds=seconds)


def _test_database_url() -> str:
    """The URL of the test database pytest-django created, for the worker processes."""
    db = connections["default"].settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


def _worker_env(mail_dir: Path, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=_test_database_url(),
        # Set, and empty, so that a replica named in .env is not read instead of the test database.
        DATABASE_REPLICA_URL="",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_RESULT_BACKEND=settings.CELERY_RESULT_BACKEND or "",
        # Dunning letters are written as files, so this test can count what was sent.
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
        CONCORD_VAR_DIR=str(var_dir),
        DEBUG="false",
        # A connection per task, closed after it: nothing is left open on the test database.
        DB_CONN_MAX_AGE="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def _start_worker(nodename: str, queue: str, log_file: Path, env: dict[str, str]) -> subprocess.Popen:
    # Celery writes its log to `log_file` once it has set logging up; anything said before (an
    # import error) goes to stderr, kept beside it.
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        # One task at a time, and one reserved: the prefetch count is concurrency × multiplier.
        "--pool=solo",
        "--concurrency=1",
        f"--hostname={nodename}",
        f"--queues={queue}",
        "--loglevel=INFO",
        f"--logfile={log_file}",
        # Neither is needed to take tasks, and mingle waits a second for replies at start.
        "--without-mingle",
        "--without-gossip",
    ]
    with log_file.with_suffix(".err").open("w") as stderr:
        return subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def _said_at_start(log_files: dict[str, Path]) -> str:
    return "\n".join(path.with_suffix(".err").read_text()[-2000:] for path in log_files.values())


def _stop(workers: list[subprocess.Popen]) -> None:
    # SIGTERM is Celery's warm shutdown: the task in hand finishes, then the process closes its
    # database connections and exits. A worker that does not is killed.
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def _delete_queue(name: str) -> None:
    """Leave nothing on the broker, even when the test failed half-way: the queue, its messages
    and the exchange Celery made for it. Declared first, so that this channel knows the binding."""
    with app.connection_for_write() as connection:
        queue = Queue(name, Exchange(name), routing_key=name)(connection.default_channel)
        queue.declare()
        queue.delete()
        queue.exchange.delete()


def _wait_until_ready(nodenames: list[str], workers: list[subprocess.Popen], log_files: dict[str, Path]) -> None:
    deadline = time.monotonic() + WORKERS_READY_WITHIN
    answered: set[str] = set()
    while time.monotonic() < deadline:
        if any(worker.poll() is not None for worker in workers):
            pytest.fail(f"a worker exited at start:\n{_said_at_start(log_files)}")
        for reply in app.control.ping(destination=nodenames, timeout=0.5):
            answered.update(reply)
        if answered >= set(nodenames):
            return
    pytest.fail(f"workers not ready within {WORKERS_READY_WITHIN:.0f} s: only {sorted(answered)} answered")


def _task_runs(log_files: dict[str, Path]) -> list[TaskRun]:
    runs = []
    for worker, log_file in log_files.items():
        for line in log_file.read_text().splitlines() if log_file.exists() else []:
            match = LOG_LINE.match(line)
            if match and match["outcome"] != "received":
                at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f")
                runs.append(TaskRun(worker, match["id"], match["outcome"], at))
    return runs


def _wait_until_finished(task_ids: list[str], log_files: dict[str, Path], workers) -> list[TaskRun]:
    deadline = time.monotonic() + WORK_DONE_WITHIN
    while time.monotonic() < deadline:
        runs = _task_runs(log_files)
        if {run.task_id for run in runs} >= set(task_ids):
            return runs
        assert all(worker.poll() is None for worker in workers), "a worker exited while working"
        time.sleep(0.2)
    pytest.fail(f"the workers did not finish {len(task_ids)} tasks within {WORK_DONE_WITHIN:.0f} s")


def _due_recurring_templates(owner) -> list[RecurringInvoice]:
    revenue = Account.objects.get(role=Account.Role.REVENUE)
    templates = []
    for number in range(RECURRING_CUSTOMERS):
        customer = CustomerFactory(display_name=f"Subscriber {number}", owner=owner)
        for plan in range(TEMPLATES_PER_CUSTOMER):
            template = RecurringInvoice.objects.create(
                customer=customer,
                name=f"Plan {plan}",
                interval=RecurringInvoice.Interval.WEEK,
                next_date=FIRST_PERIOD,
            )
            RecurringInvoiceLine.objects.create(
                template=template,
                description=f"Plan {plan}, one week",
                quantity=1,
                unit_price=Decimal("40.00") + plan,
                revenue_account=revenue,
            )
            templates.append(template)
    return templates


def _overdue_invoices(actor, owner) -> list[Invoice]:
    # The statement PDF is left off the letters: rendering it is not what this test is about,
    # and it would take most of the test's time.
    DunningLevel.objects.update(attach_statement=False)
    invoices = []
    for number in range(DUNNED_CUSTOMERS):
        customer = CustomerFactory(display_name=f"Slow payer {number}", owner=owner)
        ContactFactory(customer=customer, is_primary=True)
        invoices += [issue(actor, customer, "75.00", on=OVERDUE_ISSUED_ON) for _ in range(OVERDUE_PER_CUSTOMER)]
    return invoices


def _dunned_in_emails(mail_dir: Path) -> list[tuple[str, str]]:
    """(invoice number, level) for each invoice named in an e-mail the workers sent, from the
    header every dunning e-mail carries ("X-Concord-Dunning: INV-000001, INV-000002; level 3")."""
    named = []
    for path in sorted(mail_dir.glob("*.log")):
        # The file backend writes each message followed by a line of 79 dashes.
        for text in path.read_text().split("\n" + "-" * 79 + "\n"):
            header = message_from_string(text.strip())["X-Concord-Dunning"]
            if header:
                numbers, level = " ".join(header.split()).rsplit("; level ", 1)
                named += [(number, level) for number in numbers.split(", ")]
    return named


def _dunned_on_timelines() -> list[str]:
    """The invoice numbers the letter activities on the customers' timelines are about."""
    subjects = Activity.objects.filter(kind=Activity.Kind.LETTER).values_list("subject", flat=True)
    return [number for subject in subjects for number in subject.split(", ")]


@pytest.mark.postgres
@pytest.mark.broker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_worker_processes_on_the_same_work_do_each_piece_once(ar_clerk, sales_rep, tmp_path):
    token = uuid.uuid4().hex[:10]
    queue = f"concord-two-workers-{token}"
    mail_dir, var_dir = tmp_path / "mail", tmp_path / "var"
    env = _worker_env(mail_dir, var_dir)
    nodenames = [host_format(f"w{n}-{token}@%h") for n in (1, 2)]
    log_files = {name: tmp_path / f"w{n}.log" for n, name in enumerate(nodenames, start=1)}
    workers: list[subprocess.Popen] = []
    try:
        # The workers start while the work is written; they see it once it is committed, and
        # nothing is sent to them before that.
        for name, log_file in log_files.items():
            workers.append(_start_worker(name, queue, log_file, env))
        templates = _due_recurring_templates(sales_rep)
        overdue = _overdue_invoices(ar_clerk, sales_rep)
        recurring_job = recurring.start_run(actor=ar_clerk, as_of=TODAY)
        dunning_job = job_services.create_job(kind="dunning_run", label="Dunning, sent twice", actor=ar_clerk)
        _wait_until_ready(nodenames, workers, log_files)

        # The nightly recurring run sent four times (beat started twice, a redelivery, a person
        # pressing "Run now"), one "Run now" job delivered twice, the daily dunning run three
        # times and one dunning job twice, interleaved so that both workers take each kind.
        sent: dict[str, list[str]] = {"nightly": [], "run_recurring": [], "daily_dunning": [], "run_dunning": []}
        for _ in range(2):
            sent["nightly"].append(tasks.issue_recurring_invoices.apply_async(queue=queue).id)
            sent["run_recurring"].append(
                tasks.run_recurring_invoices.apply_async(kwargs={"job_id": recurring_job.pk}, queue=queue).id
            )
            sent["daily_dunning"].append(tasks.send_daily_dunning.apply_async(queue=queue).id)
            sent["run_dunning"].append(
                tasks.run_dunning.apply_async(
                    kwargs={"job_id": dunning_job.pk, "as_of": TODAY.isoformat()}, queue=queue
                ).id
            )
            sent["nightly"].append(tasks.issue_recurring_invoices.apply_async(queue=queue).id)
        sent["daily_dunning"].append(tasks.send_daily_dunning.apply_async(queue=queue).id)
        task_ids = [task_id for ids in sent.values() for task_id in ids]

        runs = _wait_until_finished(task_ids, log_files, workers)
    finally:
        _stop(workers)
        _delete_queue(queue)
        connections.close_all()

    # Every task ran once, successfully, and both workers took a share at the same time.
    assert Counter(run.task_id for run in runs) == Counter(task_ids)
    assert [run.outcome for run in runs if not run.succeeded] == []
    by_worker = {name: [run for run in runs if run.worker == name] for name in nodenames}
    assert all(by_worker.values()), {name: len(ran) for name, ran in by_worker.items()}
    first, second = by_worker.values()
    assert any(a.started_at < b.finished_at and b.started_at < a.finished_at for a in first for b in second), (
        "the two workers never ran a task at the same time"
    )

    # Exactly one invoice per template and period, numbered without duplicates or gaps.
    recurring_invoices = Invoice.objects.filter(recurring_template__isnull=False)
    billed = Counter(recurring_invoices.values_list("recurring_template", "period_start"))
    assert billed == Counter({(template.pk, period): 1 for template in templates for period in PERIODS})
    assert set(recurring_invoices.values_list("status", flat=True)) == {Invoice.Status.ISSUED}
    assert RecurringInvoice.objects.filter(next_date=PERIODS[-1] + timedelta(weeks=1)).count() == len(templates)
    numbers = list(Invoice.objects.filter(series="INV").values_list("number", flat=True))
    assert sorted(numbers) == [f"INV-{n:06d}" for n in range(1, len(overdue) + len(templates) * len(PERIODS) + 1)]
    # What the nightly tasks say they issued adds up to what they issued: no invoice counted twice.
    nightly = [run for run in runs if run.task_id in sent["nightly"]]
    reported = sum(int(run.outcome.rsplit(": ", 1)[1]) for run in nightly)
    assert (
        reported
        == recurring_invoices.filter(created_by__username="system.task:billing.tasks.issue_recurring_invoices").count()
    )

    # One letter per overdue invoice, in one e-mail and on one timeline entry, whichever run sent it.
    letters = DunningLetter.objects.filter(status=DunningLetter.Status.SENT)
    assert sorted(letters.values_list("invoice", flat=True)) == sorted(invoice.pk for invoice in overdue)
    assert sorted(_dunned_in_emails(mail_dir)) == sorted((invoice.number, "3") for invoice in overdue)
    assert sorted(_dunned_on_timelines()) == sorted(invoice.number for invoice in overdue)

    # The jobs delivered twice finished, and the ledger agrees with itself to the cent.
    finished = BackgroundJob.objects.filter(pk__in=[recurring_job.pk, dunning_job.pk])
    assert set(finished.values_list("status", flat=True)) == {BackgroundJob.Status.SUCCEEDED}
    report = StringIO()
    call_command("ledger_check", stdout=report)
    assert "Ledger check passed" in report.getvalue()
