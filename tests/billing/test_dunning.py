"""Dunning (billing.dunning): which letter each overdue invoice gets, that none is sent twice, that
a customer gets one e-mail per level listing its invoices, and what the dunning page shows and
does. The default ladder (data migrations billing.0006 and 0008) is used: level 1 at +7 days,
level 2 at +21, level 3 at +45, each with the statement attached."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from decimal import Decimal
from smtplib import SMTPException

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from billing import collections, dunning, services, statement_links, tasks
from billing.models import DunningLetter, DunningLevel
from config import audit
from config.celery import app
from crm.models import Activity, Customer
from jobs import services as job_services
from jobs.models import BackgroundJob
from tests.billing.conftest import issue
from tests.factories import ContactFactory, CustomerFactory

D = Decimal
TODAY = timezone.localdate()
# Issued 120 days ago on 30-day terms: due 90 days ago, so any day of the ladder lies in the past.
ISSUED = TODAY - timedelta(days=120)
DUE = ISSUED + timedelta(days=30)


def day(days_overdue: int):
    """The date on which the invoices issued on ISSUED are `days_overdue` days overdue."""
    return DUE + timedelta(days=days_overdue)


def pay(actor, customer, amount, invoice):
    payment = services.record_payment(
        actor=actor,
        customer=customer,
        amount=D(amount),
        received_on=TODAY - timedelta(days=1),
        method="bank_transfer",
        auto_apply=False,
    )
    services.allocate_payment(actor=actor, payment=payment, invoice=invoice, amount=D(amount))


def letters(invoice=None):
    found = DunningLetter.objects.select_related("level").order_by("level__level")
    if invoice is not None:
        found = found.filter(invoice=invoice)
    return [(letter.level.level, letter.status, letter.open_amount) for letter in found]


@pytest.fixture
def customer(own_customer):
    ContactFactory(customer=own_customer, name="Ada Payables", email="ap@northwind.test", is_primary=True)
    return own_customer


@pytest.fixture
def invoice(ar_clerk, customer):
    return issue(ar_clerk, customer, "100.00", on=ISSUED)


# --- Which letter, once ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rerun_sends_nothing_twice(ar_clerk, invoice):
    first = dunning.run(as_of=day(8), actor=ar_clerk)
    second = dunning.run(as_of=day(8), actor=ar_clerk)
    third = dunning.run(as_of=day(12), actor=ar_clerk)

    assert (first.sent, second.planned, third.planned) == (1, 0, 0)
    assert letters(invoice) == [(1, "sent", D("100.00"))]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ap@northwind.test"]
    assert invoice.number in mail.outbox[0].subject


@pytest.mark.django_db
def test_the_letter_is_the_levels_template_rendered_for_the_invoice(ar_clerk, invoice, settings):
    settings.CONCORD_COMPANY_NAME = "Acme Receivables plc"
    settings.CONCORD_COLLECTIONS_FROM_EMAIL = "Acme AR <ar@acme.test>"
    dunning.run(as_of=day(22), actor=ar_clerk)

    message = mail.outbox[0]
    assert message.from_email == "Acme AR <ar@acme.test>"
    assert message.subject == f"Second reminder: invoice {invoice.number} is 22 days overdue"
    assert message.body.startswith("Dear Ada Payables,")
    assert "is now 22 days overdue with 100.00 USD open" in message.body
    assert message.body.endswith("Acme Receivables plc accounts receivable")
    letter = DunningLetter.objects.get()
    assert (letter.subject, letter.body, letter.recipient) == (message.subject, message.body, "ap@northwind.test")


@pytest.mark.django_db
def test_a_partial_payment_moves_the_level_and_the_next_letter_asks_for_the_rest(ar_clerk, customer, invoice):
    dunning.run(as_of=day(8), actor=ar_clerk)
    pay(ar_clerk, customer, "40.00", invoice)
    dunning.run(as_of=day(22), actor=ar_clerk)

    assert letters(invoice) == [(1, "sent", D("100.00")), (2, "sent", D("60.00"))]
    assert "60.00 USD open" in mail.outbox[1].body

    pay(ar_clerk, customer, "60.00", invoice)
    paid_in_full = dunning.run(as_of=day(46), actor=ar_clerk)
    assert paid_in_full.planned == 0
    assert len(letters(invoice)) == 2 and len(mail.outbox) == 2


@pytest.mark.django_db
def test_an_invoice_not_yet_at_the_first_level_gets_nothing(ar_clerk, invoice):
    assert dunning.plan(as_of=day(6)) == []
    assert dunning.run(as_of=day(6), actor=ar_clerk).planned == 0


@pytest.mark.django_db
def test_a_live_promise_suppresses_the_letter_until_its_date_has_passed(ar_clerk, customer, invoice):
    collections.record_promise(
        actor=ar_clerk, customer=customer, invoices=[invoice], amount=D("100.00"), promised_on=TODAY + timedelta(days=5)
    )
    assert dunning.run(as_of=TODAY, actor=ar_clerk).planned == 0
    assert dunning.run(as_of=TODAY + timedelta(days=5), actor=ar_clerk).planned == 0

    # The day after the promised date the promise protects nothing (the nightly job settles it).
    after = dunning.run(as_of=TODAY + timedelta(days=6), actor=ar_clerk)
    assert after.sent == 1 and letters(invoice) == [(3, "sent", D("100.00"))]


@pytest.mark.django_db
def test_a_disputed_invoice_gets_no_letter_until_the_dispute_is_resolved(ar_clerk, invoice):
    collections.open_dispute(actor=ar_clerk, invoice=invoice, reason="Wrong quantity")
    assert dunning.run(as_of=day(8), actor=ar_clerk).planned == 0

    collections.resolve_dispute(actor=ar_clerk, invoice=invoice, resolution="Quantity confirmed")
    assert dunning.run(as_of=day(8), actor=ar_clerk).sent == 1


@pytest.mark.django_db
def test_an_invoice_that_skipped_levels_gets_only_the_highest_and_never_goes_back_down(ar_clerk, invoice):
    run = dunning.run(as_of=day(50), actor=ar_clerk)
    again = dunning.run(as_of=day(60), actor=ar_clerk)

    assert (run.sent, again.planned) == (1, 0)
    assert letters(invoice) == [(3, "sent", D("100.00"))]
    assert mail.outbox[0].subject == f"Final notice: invoice {invoice.number}"


@pytest.mark.django_db
def test_an_inactive_level_is_skipped(ar_clerk, finance_admin, invoice):
    level = DunningLevel.objects.get(level=2)
    level.is_active = False
    audit.save_as(level, actor=finance_admin)

    dunning.run(as_of=day(8), actor=ar_clerk)
    assert dunning.run(as_of=day(30), actor=ar_clerk).planned == 0
    dunning.run(as_of=day(46), actor=ar_clerk)
    assert [level for level, *_ in letters(invoice)] == [1, 3]


@pytest.mark.django_db
def test_each_overdue_invoice_gets_its_own_letter(ar_clerk, customer, invoice):
    younger = issue(ar_clerk, customer, "30.00", on=ISSUED + timedelta(days=20))
    dunning.run(as_of=day(30), actor=ar_clerk)
    assert letters(invoice) == [(2, "sent", D("100.00"))]
    assert letters(younger) == [(1, "sent", D("30.00"))]
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_a_customer_gets_one_e_mail_per_level_listing_its_invoices(ar_clerk, customer, invoice):
    older = [issue(ar_clerk, customer, f"{10 + n}.00", on=ISSUED - timedelta(days=30)) for n in range(3)]
    younger = [issue(ar_clerk, customer, "5.00", on=ISSUED + timedelta(days=n)) for n in range(5)]
    summary = dunning.run(as_of=day(30), actor=ar_clerk)  # the older ones at level 3, the rest at 2

    assert (summary.sent, summary.emails, len(summary.customers)) == (9, 2, 1)
    by_subject = {message.subject: message for message in mail.outbox}
    assert set(by_subject) == {"Second reminder: 6 invoices are overdue", "Final notice: 3 invoices"}
    final = by_subject["Final notice: 3 invoices"]
    assert final.to == ["ap@northwind.test"] and final.body.startswith("Dear Ada Payables,")
    for item in older:
        assert f"- {item.number}, 60 days overdue: {item.open_amount} USD open" in final.body
    second = by_subject["Second reminder: 6 invoices are overdue"].body
    assert all(item.number in second for item in [invoice, *younger])
    assert len(second.split("\n- ")) == 7
    # One row per invoice, all with what the e-mail said; one timeline entry per e-mail.
    assert DunningLetter.objects.filter(status="sent").count() == 9
    assert set(DunningLetter.objects.filter(level__level=3).values_list("body", flat=True)) == {final.body}
    assert Activity.objects.filter(kind="letter").count() == 2
    assert Activity.objects.get(kind="letter", text__startswith="Final notice").subject == ", ".join(
        item.number for item in older
    )


@pytest.mark.django_db
def test_a_rerun_over_many_customers_and_chunks_sends_nothing(ar_clerk, monkeypatch):
    monkeypatch.setattr(dunning, "LETTERS_PER_CHUNK", 4)
    monkeypatch.setattr(dunning, "STATEMENT_PDFS_PER_RUN", 0)
    for number in range(10):
        customer = CustomerFactory(display_name=f"Slow payer {number}")
        ContactFactory(customer=customer)
        for _ in range(1 + number % 3):
            issue(ar_clerk, customer, "10.00", on=ISSUED)

    first = dunning.run(as_of=day(8), actor=ar_clerk)
    rerun = dunning.run(as_of=day(8), actor=ar_clerk)

    assert (first.planned, first.sent, first.emails, len(mail.outbox)) == (19, 19, 10, 10)
    assert (rerun.planned, rerun.sent, rerun.emails) == (0, 0, 0)
    assert len(mail.outbox) == 10


# --- Recipients and failures -------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_primary_e_mail_the_letter_goes_to_another_contact(ar_clerk, own_customer):
    ContactFactory(customer=own_customer, name="Primary Without Mail", email="", is_primary=True)
    ContactFactory(customer=own_customer, name="Bea Books", email="books@northwind.test")
    issue(ar_clerk, own_customer, "100.00", on=ISSUED)
    dunning.run(as_of=day(8), actor=ar_clerk)
    assert mail.outbox[0].to == ["books@northwind.test"]
    assert mail.outbox[0].body.startswith("Dear Bea Books,")


@pytest.mark.django_db
def test_no_e_mail_address_records_a_failed_letter_shown_on_the_page_and_retried(client, ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00", on=ISSUED)
    summary = dunning.run(as_of=day(8), actor=ar_clerk)

    assert (summary.sent, summary.failed) == (0, 1) and mail.outbox == []
    failed = DunningLetter.objects.get()
    assert (failed.status, failed.error, failed.recipient) == ("failed", "no e-mail address", "")
    client.force_login(ar_clerk)
    page = client.get(reverse("dunning:page")).content.decode()
    assert "Failed letters (1)" in page and "no e-mail address" in page

    # Rerun without an address: still failed, and the timeline is told only once.
    assert dunning.run(as_of=day(9), actor=ar_clerk).failed == 1
    assert Activity.objects.filter(kind="letter", subject=invoice.number).count() == 1

    ContactFactory(customer=own_customer, email="ap@northwind.test")
    retried = dunning.run(as_of=day(10), actor=ar_clerk)
    assert retried.sent == 1
    assert letters(invoice) == [(1, "sent", D("100.00"))]  # the same row, now sent
    assert DunningLetter.objects.get().pk == failed.pk
    assert mail.outbox[0].to == ["ap@northwind.test"]


@pytest.mark.django_db
def test_the_failed_list_drops_letters_superseded_by_a_higher_level_or_settled(ar_clerk, own_customer):
    first = issue(ar_clerk, own_customer, "100.00", on=ISSUED)
    second = issue(ar_clerk, own_customer, "50.00", on=ISSUED)
    dunning.run(as_of=day(8), actor=ar_clerk)
    dunning.run(as_of=day(22), actor=ar_clerk)
    pay(ar_clerk, own_customer, "50.00", second)

    assert DunningLetter.objects.filter(status="failed").count() == 4
    assert [(letter.invoice, letter.level.level) for letter in dunning.failed_letters()] == [(first, 2)]


@pytest.mark.django_db
def test_a_letter_that_could_not_be_sent_is_failed_with_the_error_and_sent_by_the_next_run(
    ar_clerk, invoice, monkeypatch
):
    def refuse(self, messages):
        raise SMTPException("mail server said no")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    assert dunning.run(as_of=day(8), actor=ar_clerk).failed == 1
    letter = DunningLetter.objects.get()
    assert letter.status == "failed" and "mail server said no" in letter.error
    # The "sent" entry was rolled back; the timeline says it failed.
    [activity] = Activity.objects.filter(kind="letter")
    assert "not sent" in activity.text and "mail server said no" in activity.text

    monkeypatch.undo()
    assert dunning.run(as_of=day(9), actor=ar_clerk).sent == 1
    assert letters(invoice) == [(1, "sent", D("100.00"))] and len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_failed_e_mail_fails_all_its_letters_and_the_next_run_sends_it_again(
    ar_clerk, customer, invoice, monkeypatch
):
    second = issue(ar_clerk, customer, "30.00", on=ISSUED)

    def refuse(self, messages):
        raise SMTPException("busy")

    monkeypatch.setattr(EmailBackend, "send_messages", refuse)
    failed = dunning.run(as_of=day(8), actor=ar_clerk)

    assert (failed.sent, failed.failed, mail.outbox) == (0, 2, [])
    assert {(letter.status, letter.error) for letter in DunningLetter.objects.all()} == {
        ("failed", "sending failed: SMTPException: busy")
    }
    [activity] = Activity.objects.filter(kind="letter")
    assert "2 invoices" in activity.text and "not sent" in activity.text

    monkeypatch.undo()
    retried = dunning.run(as_of=day(9), actor=ar_clerk)
    assert (retried.sent, retried.emails) == (2, 1)
    assert letters(invoice) == [(1, "sent", D("100.00"))] and letters(second) == [(1, "sent", D("30.00"))]
    assert DunningLetter.objects.count() == 2  # the same rows, now sent
    assert len(mail.outbox) == 1 and dunning.run(as_of=day(10), actor=ar_clerk).planned == 0


@pytest.mark.django_db
def test_a_level_whose_template_does_not_render_fails_its_letters_with_the_reason(ar_clerk, finance_admin, invoice):
    level = DunningLevel.objects.get(level=1)
    level.body = "Dear {% if %}"
    audit.save_as(level, actor=finance_admin)
    assert dunning.run(as_of=day(8), actor=ar_clerk).failed == 1
    assert "does not render" in DunningLetter.objects.get().error and mail.outbox == []


@pytest.mark.django_db
def test_a_levels_template_reaches_only_the_documented_values(ar_clerk, finance_admin, invoice):
    level = DunningLevel.objects.get(level=1)
    level.body = "[{{ customer.owner }}][{{ invoice.customer.owner.password }}][{{ level.name }}][{{ currency }}]"
    audit.save_as(level, actor=finance_admin)
    dunning.run(as_of=day(8), actor=ar_clerk)
    assert mail.outbox[0].body == "[][][Friendly reminder][USD]"


# --- The timeline and the statement ------------------------------------------------------------


@pytest.mark.django_db
def test_each_letter_lands_on_the_customers_timeline(ar_clerk, customer, invoice):
    dunning.run(as_of=day(8), actor=ar_clerk)
    [activity] = Activity.objects.filter(customer=customer, kind=Activity.Kind.LETTER)
    assert activity.subject == invoice.number
    assert "Friendly reminder (level 1)" in activity.text and "ap@northwind.test" in activity.text
    assert activity.actor == ar_clerk
    customer.refresh_from_db()
    assert customer.last_activity_at == activity.occurred_at


@pytest.mark.django_db
def test_the_statement_pdf_is_attached(ar_clerk, customer, invoice):
    dunning.run(as_of=day(8), actor=ar_clerk)
    [(filename, content, mimetype)] = mail.outbox[0].attachments
    assert mimetype == "application/pdf"
    assert content.startswith(b"%PDF-")
    assert filename == f"statement-{customer.account_number}-{day(8).isoformat()}.pdf"


@pytest.mark.django_db
def test_a_level_that_attaches_no_statement_sends_the_letter_alone(ar_clerk, finance_admin, invoice):
    level = DunningLevel.objects.get(level=1)
    level.attach_statement = False
    audit.save_as(level, actor=finance_admin)
    dunning.run(as_of=day(8), actor=ar_clerk)
    assert mail.outbox[0].attachments == []


@pytest.mark.django_db
def test_a_customer_with_several_overdue_invoices_gets_one_e_mail_with_one_statement(ar_clerk, customer, invoice):
    # Changed with the grouped e-mail: one e-mail (and one statement) instead of one per invoice.
    issue(ar_clerk, customer, "30.00", on=ISSUED)
    summary = dunning.run(as_of=day(8), actor=ar_clerk)
    assert summary.sent == 2 and len(summary.statement_seconds) == 1
    [message] = mail.outbox
    [(_, content, _)] = message.attachments
    assert content.startswith(b"%PDF-")


@pytest.mark.django_db
def test_a_large_run_links_the_statement_instead_of_attaching_it(ar_clerk, customer, invoice, monkeypatch, settings):
    # Changed with issue 6: the link is absolute (SITE_URL) and signed, opened without a login
    # (tests/billing/test_statement_links.py), instead of the staff-only statement page.
    settings.SITE_URL = "https://ar.example.com"
    monkeypatch.setattr(dunning, "STATEMENT_PDFS_PER_RUN", 0)
    summary = dunning.run(as_of=day(8), actor=ar_clerk)

    [message] = mail.outbox
    assert summary.statements_linked and summary.statement_seconds == []
    assert message.attachments == []
    [url] = re.findall(r"Your statement is at (\S+)\.\s", message.body)
    assert url.startswith("https://ar.example.com/statements/")
    token = url.removeprefix("https://ar.example.com/statements/").removesuffix("/")
    assert statement_links.read_token(token) == (customer.pk, day(8))


# --- Plan, jobs and the tasks ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_plan_takes_a_fixed_number_of_queries_whatever_the_number_of_invoices(
    ar_clerk, django_assert_max_num_queries
):
    for number in range(6):
        customer = CustomerFactory(display_name=f"Customer {number}")
        ContactFactory(customer=customer)
        issue(ar_clerk, customer, "10.00", on=ISSUED)
        issue(ar_clerk, customer, "20.00", on=ISSUED + timedelta(days=10))
    dunning.run(as_of=day(8), actor=ar_clerk)
    # The levels, the invoices with their customers, the contacts (and the failed letters, if any).
    with django_assert_max_num_queries(4):
        planned = dunning.plan(as_of=day(30))
    assert len(planned) == 12
    assert {(letter.level.level, letter.has_recipient) for letter in planned} == {(2, True), (1, True)}


@pytest.mark.django_db
def test_a_run_reports_progress_to_its_job_after_each_chunk(ar_clerk, monkeypatch):
    # Changed with the chunks: progress comes per chunk of whole customers (here two letters).
    monkeypatch.setattr(dunning, "LETTERS_PER_CHUNK", 2)
    for number in range(3):
        customer = CustomerFactory(display_name=f"Customer {number}")
        ContactFactory(customer=customer)
        issue(ar_clerk, customer, "10.00", on=ISSUED)
    job = job_services.create_job(kind=dunning.JOB_KIND, label="Dunning", actor=ar_clerk)
    seen = []
    original = job_services.advance

    def advance(**kwargs):
        original(**kwargs)
        seen.append(kwargs["done"])

    monkeypatch.setattr(job_services, "advance", advance)
    dunning.run_job(job_id=job.pk, as_of=day(8))

    job.refresh_from_db()
    assert (job.status, job.total, job.done) == ("succeeded", 3, 3)
    assert job.message == "3 letters sent." and job.result_url == reverse("dunning:page")
    assert seen == [0, 2, 3]
    assert set(DunningLetter.objects.values_list("job", flat=True)) == {job.pk}


@pytest.mark.django_db
def test_the_daily_task_runs_as_its_system_actor_in_a_job_of_its_own(ar_clerk, invoice):
    job_id = tasks.send_daily_dunning()
    job = BackgroundJob.objects.get(pk=job_id)
    assert (job.kind, job.status, job.created_by.username) == (
        "dunning_run",
        "succeeded",
        "system.task:billing.tasks.send_daily_dunning",
    )
    letter = DunningLetter.objects.get()
    assert letter.level.level == 3  # 90 days overdue today
    assert letter.history.get().history_user.username == "system.task:billing.tasks.send_daily_dunning"
    assert tasks.send_daily_dunning.name == "billing.tasks.send_daily_dunning"


@pytest.mark.django_db
def test_a_redelivered_run_task_leaves_its_finished_job_alone(ar_clerk, invoice):
    job = job_services.create_job(kind=dunning.JOB_KIND, label="Dunning", actor=ar_clerk)
    tasks.run_dunning(job_id=job.pk, as_of=day(8).isoformat())
    tasks.run_dunning(job_id=job.pk, as_of=day(30).isoformat())
    assert letters(invoice) == [(1, "sent", D("100.00"))]


# --- Two runs at once (PostgreSQL) --------------------------------------------------------------


def run_concurrently(count, work) -> list[Exception]:
    """Run `work()` in `count` threads (each its own database connection), released at once."""
    start = threading.Barrier(count)
    raised: list[Exception] = []

    def run():
        try:
            start.wait()
            work()
        except Exception as error:  # noqa: BLE001 - asserted by the caller
            raised.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_runs_racing_each_other_send_each_letter_once(ar_clerk):
    # Changed with the grouped e-mail: one e-mail per customer (listing its three invoices).
    invoices = {}
    for number in range(3):
        customer = CustomerFactory(display_name=f"Racer {number}")
        ContactFactory(customer=customer)
        invoices[customer.pk] = [issue(ar_clerk, customer, "10.00", on=ISSUED) for _ in range(3)]

    raised = run_concurrently(4, lambda: dunning.run(as_of=day(8), actor=ar_clerk))

    assert raised == []
    assert DunningLetter.objects.filter(status="sent").count() == 9
    assert len(mail.outbox) == 3
    assert sorted(message.extra_headers["X-Concord-Dunning"] for message in mail.outbox) == sorted(
        ", ".join(invoice.number for invoice in customer_invoices) + "; level 1"
        for customer_invoices in invoices.values()
    )
    assert Activity.objects.filter(kind="letter").count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_runs_racing_over_many_chunks_never_send_a_letter_twice(ar_clerk, monkeypatch):
    monkeypatch.setattr(dunning, "LETTERS_PER_CHUNK", 3)
    monkeypatch.setattr(dunning, "STATEMENT_PDFS_PER_RUN", 0)
    invoices = []
    for number in range(12):
        customer = CustomerFactory(display_name=f"Racer {number:02d}")
        ContactFactory(customer=customer)
        invoices += [issue(ar_clerk, customer, "10.00", on=ISSUED) for _ in range(1 + number % 3)]
    # A failed letter from before, which both runs want to send again.
    quiet = CustomerFactory(display_name="Racer without mail")
    retried = issue(ar_clerk, quiet, "10.00", on=ISSUED)
    dunning.run(as_of=day(8), actor=ar_clerk, invoice_ids=[retried.pk])
    ContactFactory(customer=quiet)

    raised = run_concurrently(3, lambda: dunning.run(as_of=day(8), actor=ar_clerk))

    assert raised == []
    headers = [message.extra_headers["X-Concord-Dunning"].split("; ")[0] for message in mail.outbox]
    numbers = [number for header in headers for number in header.split(", ")]
    assert sorted(numbers) == sorted(invoice.number for invoice in [*invoices, retried])
    assert len(mail.outbox) == 13
    assert set(DunningLetter.objects.values_list("status", flat=True)) == {"sent"}
    assert dunning.run(as_of=day(8), actor=ar_clerk).planned == 0


# --- The dunning page ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sales_rep_is_refused_the_dunning_page(client, sales_rep):
    client.force_login(sales_rep)
    assert client.get(reverse("dunning:page")).status_code == 403
    assert client.post(reverse("dunning:send")).status_code == 403


@pytest.mark.django_db
def test_the_page_previews_the_next_run_by_level(client, ar_clerk, customer, invoice):
    younger = issue(ar_clerk, customer, "30.00", on=TODAY - timedelta(days=40))  # 10 days overdue
    silent = CustomerFactory(display_name="Quiet Corp")
    issue(ar_clerk, silent, "55.00", on=ISSUED)
    client.force_login(ar_clerk)
    response = client.get(reverse("dunning:page"))

    preview = response.context["preview"]
    assert [(level.level.level, level.count) for level in preview.levels] == [(1, 1), (2, 0), (3, 2)]
    assert [letter.invoice for letter in preview.levels[0].letters] == [younger]
    assert preview.levels[2].totals == {"USD": D("155.00")}
    page = response.content.decode()
    assert "The next run" in page and "3 letters" in page
    assert "1 letter has no e-mail address" in page and "Quiet Corp" in page
    assert mail.outbox == [] and not DunningLetter.objects.exists()


@pytest.mark.django_db
def test_the_page_previews_another_day(client, ar_clerk, invoice):
    client.force_login(ar_clerk)
    response = client.get(reverse("dunning:page"), {"as_of": day(8).isoformat()})
    assert [level.count for level in response.context["preview"].levels] == [1, 0, 0]
    bad = client.get(reverse("dunning:page"), {"as_of": "yesterday"})
    assert "is not a date" in bad.content.decode()


@pytest.mark.django_db
def test_one_letter_can_be_read_before_it_is_sent(client, ar_clerk, invoice):
    client.force_login(ar_clerk)
    url = reverse("dunning:letter_preview", args=[invoice.pk])
    fragment = client.get(url, {"as_of": day(22).isoformat()}, HTTP_HX_REQUEST="true").content.decode()
    assert f"Second reminder: invoice {invoice.number} is 22 days overdue" in fragment
    assert "Ada Payables &lt;ap@northwind.test&gt;" in fragment
    assert "is now 22 days overdue with 100.00 USD open" in fragment
    page = client.get(url, {"as_of": day(2).isoformat()}).content.decode()
    assert "No letter is due" in page and "not yet at the first level" in page
    assert not DunningLetter.objects.exists()


@pytest.mark.django_db
def test_send_now_runs_in_a_job_and_shows_its_progress(
    client, ar_clerk, invoice, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    client.force_login(ar_clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("dunning:send"), HTTP_HX_REQUEST="true")
    job = BackgroundJob.objects.get()
    assert (job.kind, job.created_by, job.params) == ("dunning_run", ar_clerk, {"as_of": TODAY.isoformat()})
    assert f'id="job-{job.pk}-progress"' in response.content.decode()
    job.refresh_from_db()
    assert job.status == "succeeded" and job.message == "1 letter sent."
    assert DunningLetter.objects.get().history.get().history_user == ar_clerk
    page = client.get(reverse("dunning:page")).content.decode()
    assert "1 letter sent." in page and "Recent letters" in page


@pytest.mark.django_db
def test_a_failed_letter_is_retried_from_the_page(client, ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00", on=ISSUED)
    dunning.run(as_of=TODAY, actor=ar_clerk)
    letter = DunningLetter.objects.get()
    client.force_login(ar_clerk)
    url = reverse("dunning:retry", args=[letter.pk])

    again = client.post(url, follow=True).content.decode()
    assert "failed again: no e-mail address" in again

    ContactFactory(customer=own_customer, email="ap@northwind.test")
    sent = client.post(url, follow=True).content.decode()
    assert f"Sent the letter for invoice {invoice.number}" in sent
    assert letters(invoice) == [(3, "sent", D("100.00"))]
    assert client.post(url).status_code == 404  # nothing left to retry


@pytest.mark.django_db
def test_a_retry_that_is_no_longer_due_says_why(client, ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00", on=ISSUED)
    dunning.run(as_of=TODAY, actor=ar_clerk)
    collections.open_dispute(actor=ar_clerk, invoice=invoice, reason="Never delivered")
    client.force_login(ar_clerk)
    page = client.post(reverse("dunning:retry", args=[DunningLetter.objects.get().pk]), follow=True)
    assert f"Nothing was sent: invoice {invoice.number} is disputed" in page.content.decode()


@pytest.mark.django_db
def test_the_page_query_count_does_not_grow_with_letters(client, ar_clerk, django_assert_max_num_queries):
    def add_customers(count):
        for _ in range(count):
            customer = CustomerFactory()
            ContactFactory(customer=customer)
            issue(ar_clerk, customer, "10.00", on=ISSUED)
            issue(ar_clerk, customer, "20.00", on=ISSUED + timedelta(days=60))
            # one sent and one failed letter on the page
            issue(ar_clerk, CustomerFactory(), "5.00", on=ISSUED)
        dunning.run(as_of=day(8), actor=ar_clerk, customers=Customer.objects.all())

    client.force_login(ar_clerk)
    add_customers(1)
    with django_assert_max_num_queries(14) as few:
        client.get(reverse("dunning:page"))
    add_customers(5)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("dunning:page"))
    assert len(response.context["recent_letters"]) == 12
