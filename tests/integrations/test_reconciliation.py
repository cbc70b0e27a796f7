"""The reconciliation report (integrations/reconciliation.py), its command, job and page, against
the QuickBooks simulator over HTTP as in quickbooks/test_sync_end_to_end.py."""

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from billing import services as billing
from billing.models import Invoice
from crm import services as crm_services
from crm.models import Customer
from integrations import reconciliation
from integrations.core import canonical
from integrations.models import Conflict, Connection, ExternalRef
from integrations.reconciliation import reconcile, report_from_json, report_to_json
from jobs import services as job_services
from jobs.models import BackgroundJob
from tests.integrations.simulated_books import qbo_customer, qbo_invoice, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def synced(connection, quickbooks, realm, finance_admin):
    """A clean sync of both books: a customer with an invoice made in QuickBooks (pulled) and one
    with an invoice and a part payment made in Concord (pushed)."""
    remote_customer = qbo_customer(quickbooks, realm)
    remote_invoice = qbo_invoice(quickbooks, realm, remote_customer["Id"])
    customer = crm_services.create_customer(actor=finance_admin, display_name="Gamma Co", currency="USD")
    draft = billing.create_invoice(
        actor=finance_admin,
        customer=customer,
        lines=[billing.LineInput(description="Consulting", quantity=Decimal(2), unit_price=Decimal("75"))],
    )
    billing.issue_invoice(actor=finance_admin, invoice=draft, issue_date=date(2026, 11, 2))
    billing.record_payment(
        actor=finance_admin, customer=customer, amount=Decimal("100"), received_on=date(2026, 11, 3), method="cheque"
    )
    run(connection)
    return {"customer": remote_customer, "invoice": remote_invoice}


def rows(report) -> dict:
    return {row.entity: row for row in report.entities}


def test_after_a_clean_sync_every_count_and_total_agrees_and_nothing_differs(connection, synced):
    report = reconcile(connection=connection)

    assert report.agrees
    invoices = rows(report)[canonical.INVOICE]
    assert (invoices.local.count, invoices.remote.count) == (2, 2)
    assert invoices.local.amounts["total"] == invoices.remote.amounts["total"] == {"USD": Decimal("300.00")}
    assert invoices.local.amounts["balance"] == {"USD": Decimal("200.00")}
    assert rows(report)[canonical.PAYMENT].remote.amounts["amount"] == {"USD": Decimal("100.00")}
    assert rows(report)[canonical.CUSTOMER].remote.amounts["balance"] == {"USD": Decimal("200.00")}
    assert report.differences == [] and report.balance_differences == []
    assert report.balances_compared == 2


def test_an_invoice_edited_only_in_the_package_after_the_sync_differs_in_that_field(
    connection, synced, quickbooks, realm
):
    quickbooks.act(realm, "Invoice", "update", {"Id": synced["invoice"]["Id"], "DueDate": "2026-12-20"})

    report = reconcile(connection=connection)

    (difference,) = report.differences
    local_invoice = Invoice.objects.get(customer__display_name="Beta LLC")
    assert (difference.entity, difference.kind, difference.local_id) == ("invoice", "differs", local_invoice.pk)
    assert difference.remote_id == synced["invoice"]["Id"]
    assert [(f.name, f.local, f.remote) for f in difference.fields] == [("due_date", "2026-12-01", "2026-12-20")]
    assert not rows(report)[canonical.INVOICE].agrees
    assert rows(report)[canonical.CUSTOMER].agrees


def test_a_field_under_an_open_conflict_is_left_out_of_the_differences(connection, synced, quickbooks, realm):
    quickbooks.act(realm, "Invoice", "update", {"Id": synced["invoice"]["Id"], "DueDate": "2026-12-20"})
    ref = ExternalRef.objects.get(connection=connection, entity="invoice", remote_id=synced["invoice"]["Id"])
    Conflict.objects.create(
        connection=connection, entity="invoice", local_id=ref.local_id, remote_id=ref.remote_id, fields=["due_date"]
    )

    report = reconcile(connection=connection)

    assert report.differences == [] and report.agrees


def test_an_invoice_created_in_the_package_and_not_pulled_yet_is_only_in_the_package(
    connection, synced, quickbooks, realm
):
    created = qbo_invoice(quickbooks, realm, synced["customer"]["Id"], amount="40.00", number="1040")

    report = reconcile(connection=connection)

    invoices = rows(report)[canonical.INVOICE]
    assert (invoices.local.count, invoices.remote.count, invoices.remote_only) == (2, 3, 1)
    assert invoices.remote.amounts["total"] == {"USD": Decimal("340.00")}
    (difference,) = [d for d in report.differences if d.entity == "invoice"]
    assert (difference.kind, difference.remote_id, difference.label) == ("remote_only", created["Id"], "1040")


def test_an_invoice_issued_in_concord_and_not_pushed_yet_is_only_in_concord(connection, synced, finance_admin):
    customer = Customer.objects.get(display_name="Gamma Co")
    draft = billing.create_invoice(
        actor=finance_admin,
        customer=customer,
        lines=[billing.LineInput(description="Training", quantity=Decimal(1), unit_price=Decimal("60"))],
    )
    invoice = billing.issue_invoice(actor=finance_admin, invoice=draft, issue_date=date(2026, 11, 9))
    billing.create_invoice(  # a draft is not shared with the package: not counted, not missing
        actor=finance_admin,
        customer=customer,
        lines=[billing.LineInput(description="Draft", quantity=Decimal(1), unit_price=Decimal("5"))],
    )

    report = reconcile(connection=connection)

    invoices = rows(report)[canonical.INVOICE]
    assert (invoices.local.count, invoices.remote.count, invoices.local_only) == (3, 2, 1)
    local_only = [d for d in report.differences if d.entity == "invoice"]
    assert [(d.kind, d.local_id, d.customer_id) for d in local_only] == [("local_only", invoice.pk, customer.pk)]


def test_a_payment_made_in_the_package_and_not_pulled_yet_makes_the_customer_balances_differ(
    connection, synced, quickbooks, realm
):
    quickbooks.act(
        realm,
        "Payment",
        "create",
        {
            "CustomerRef": {"value": synced["customer"]["Id"]},
            "TotalAmt": "150.00",
            "TxnDate": "2026-11-05",
            "Line": [{"Amount": "150.00", "LinkedTxn": [{"TxnId": synced["invoice"]["Id"], "TxnType": "Invoice"}]}],
        },
    )

    report = reconcile(connection=connection)

    (balance,) = report.balance_differences
    beta = Customer.objects.get(display_name="Beta LLC")
    assert (balance.local_id, balance.remote_id, balance.currency) == (beta.pk, synced["customer"]["Id"], "USD")
    assert (balance.local, balance.remote, balance.remote_source) == (Decimal("150.00"), Decimal("0"), "reported")
    assert rows(report)[canonical.PAYMENT].remote_only == 1
    assert not report.agrees


def test_without_a_balance_from_the_package_a_customer_balance_is_summed_from_its_documents(
    connection, synced, quickbooks, realm, monkeypatch
):
    quickbooks.act(
        realm,
        "Payment",
        "create",
        {
            "CustomerRef": {"value": synced["customer"]["Id"]},
            "TotalAmt": "200.00",
            "TxnDate": "2026-11-05",
            "Line": [{"Amount": "150.00", "LinkedTxn": [{"TxnId": synced["invoice"]["Id"], "TxnType": "Invoice"}]}],
        },
    )
    build = reconciliation.build_adapter

    def without_customer_balances(connection, **kwargs):
        adapter = build(connection, **kwargs)
        changes = adapter.changes

        def read(entity, *, cursor):
            page = changes(entity, cursor=cursor)
            if entity != canonical.CUSTOMER:
                return page
            states = [replace(s, record=s.record.replace(balance=None)) for s in page.states]
            return replace(page, states=states)

        adapter.changes = read
        return adapter

    monkeypatch.setattr(reconciliation, "build_adapter", without_customer_balances)

    report = reconcile(connection=connection)

    (balance,) = report.balance_differences
    # Invoice 1037 fully paid, 50.00 of the payment unapplied: the customer is owed 50.00.
    assert (balance.label, balance.local, balance.remote) == ("Beta LLC", Decimal("150.00"), Decimal("-50.00"))
    assert balance.remote_source == "derived"


def test_the_differences_listed_stop_at_the_cap_and_the_rest_are_counted(
    connection, synced, quickbooks, realm, monkeypatch
):
    monkeypatch.setattr(reconciliation, "MAX_LISTED", 1)
    for number in ("2001", "2002", "2003"):
        qbo_invoice(quickbooks, realm, synced["customer"]["Id"], amount="10.00", number=number)

    report = reconcile(connection=connection)

    assert rows(report)[canonical.INVOICE].remote_only == 3
    assert len([d for d in report.differences if d.entity == "invoice"]) == 1
    assert report.differences_omitted == 2


def test_a_connection_without_a_grant_is_refused(connection):
    from django.core.exceptions import ValidationError

    Connection.objects.filter(pk=connection.pk).update(status=Connection.Status.NEEDS_REAUTHORIZATION)
    connection.refresh_from_db()

    with pytest.raises(ValidationError, match="re-authorisation"):
        reconcile(connection=connection)


def test_the_report_reads_back_from_its_json_as_it_was(connection, synced, quickbooks, realm):
    quickbooks.act(realm, "Invoice", "update", {"Id": synced["invoice"]["Id"], "DueDate": "2026-12-20"})
    report = reconcile(connection=connection)

    data = json.loads(json.dumps(report_to_json(report)))

    assert report_from_json(data) == report


@pytest.mark.parametrize(
    ("entity", "name", "concord", "package", "same"),
    [
        ("customer", "payment_terms_days", 30, None, True),
        ("customer", "payment_terms_days", 30, 45, False),
        ("payment", "method", "other", "", True),
        ("payment", "method", "cheque", "", False),
        ("refund", "method", "other", "", True),
        (
            "invoice",
            "lines",
            [{"amount": "5", "revenue_account": "4000"}],
            [{"amount": "5", "revenue_account": ""}],
            True,
        ),
        ("invoice", "lines", [{"amount": "5", "revenue_account": ""}], [{"amount": "6", "revenue_account": ""}], False),
        ("credit_note", "lines", [{"revenue_account": "4000"}], [{"revenue_account": ""}], True),
        ("invoice", "memo", "Call first", "", False),
    ],
)
def test_a_value_the_package_leaves_unsaid_is_no_difference_only_where_concord_fills_it_in(
    entity, name, concord, package, same
):
    assert reconciliation.same_value(entity, name, concord, package) is same


def test_the_command_prints_the_counts_the_differences_and_the_balances(connection, synced, quickbooks, realm):
    quickbooks.act(realm, "Invoice", "update", {"Id": synced["invoice"]["Id"], "DueDate": "2026-12-20"})
    out = StringIO()

    call_command("reconcile_connection", connection=connection.pk, stdout=out)

    printed = out.getvalue()
    assert "✓ Customers" in printed and "✗ Invoices" in printed
    assert 'due_date: Concord "2026-12-01", package "2026-12-20"' in printed
    assert "2 customers compared, 0 differ." in printed
    assert printed.rstrip().endswith("The books differ (invoices): 1 record and 0 customer balances.")


def test_the_command_prints_json_with_json(connection, synced):
    out = StringIO()

    call_command("reconcile_connection", connection=connection.pk, as_json=True, stdout=out)

    data = json.loads(out.getvalue())
    assert data["agrees"] is True
    assert [row["entity"] for row in data["entities"]] == list(canonical.ENTITIES)


def test_run_starts_a_job_whose_report_the_page_then_shows(
    client, ar_clerk, connection, synced, quickbooks, realm, media, monkeypatch, django_capture_on_commit_callbacks
):
    from config.celery import app

    # The task runs in this process (the Celery app read its settings long before this test).
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    qbo_invoice(quickbooks, realm, synced["customer"]["Id"], amount="40.00", number="1040")
    client.force_login(ar_clerk)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("reconciliation:run", kwargs={"connection_pk": connection.pk}))

    job = BackgroundJob.objects.get(kind=reconciliation.JOB_KIND)
    assert response.status_code == 302 and response.url == job.get_absolute_url()
    assert job.status == "succeeded" and job.done > 0
    assert job.result_url == reverse("reconciliation:report", kwargs={"connection_pk": connection.pk})
    page = client.get(job.result_url)
    assert page.status_code == 200
    assert "The books differ." in page.text and "Only in the package" in page.text and "1040" in page.text


def hand_made_report(connection, customer) -> reconciliation.Report:
    """A report as a job keeps it: invoices differ in one field, one customer's balance differs."""
    invoices = reconciliation.EntityReport(
        entity="invoice",
        measures=("total", "balance"),
        local=reconciliation.Side(count=1, amounts={"total": {"USD": Decimal("150.00")}}),
        remote=reconciliation.Side(count=1, amounts={"total": {"USD": Decimal("150.00")}}),
        differing=1,
    )
    return reconciliation.Report(
        connection_id=connection.pk,
        connection_name=connection.name,
        provider="QuickBooks Online",
        started_at=timezone.now(),
        finished_at=timezone.now(),
        entities=[invoices],
        differences=[
            reconciliation.Difference(
                "invoice",
                "differs",
                "INV-000042",
                local_id=7,
                remote_id="130",
                customer_id=customer.pk,
                fields=[reconciliation.FieldDifference("memo", "Call first", "Call before paying")],
            )
        ],
        balances_compared=1,
        balance_differences=[
            reconciliation.BalanceDifference(
                customer.display_name, "USD", Decimal("150.00"), Decimal("110.00"), customer.pk, "58", "reported"
            )
        ],
    )


def kept(report, actor, connection) -> BackgroundJob:
    job = job_services.create_job(
        kind=reconciliation.JOB_KIND, label="Reconciliation", actor=actor, params={"connection_id": connection.pk}
    )
    job_services.start(job_id=job.pk)
    body = ContentFile(json.dumps(report_to_json(report)).encode())
    return job_services.succeed(job_id=job.pk, message="The books differ.", file=body, file_name="report.json")


def test_the_page_shows_the_latest_report_to_accounts_receivable(
    client, ar_clerk, finance_admin, connection, own_customer, media
):
    kept(hand_made_report(connection, own_customer), finance_admin, connection)
    client.force_login(ar_clerk)

    response = client.get(reverse("reconciliation:report", kwargs={"connection_pk": connection.pk}))

    assert response.status_code == 200
    text = response.text
    assert "INV-000042" in text and "Call before paying" in text and "110.00" in text
    assert reverse("invoices:detail", kwargs={"pk": own_customer.pk, "invoice_pk": 7}) in text
    assert [row.agrees for row in response.context["figures"]] == [False, True]


def test_the_page_says_when_there_is_no_report_yet(client, finance_admin, connection):
    client.force_login(finance_admin)

    response = client.get(reverse("reconciliation:report", kwargs={"connection_pk": connection.pk}))

    assert response.status_code == 200 and "No report yet." in response.text


def test_a_sales_rep_may_neither_read_nor_run_the_report(client, sales_rep, connection):
    client.force_login(sales_rep)
    url = reverse("reconciliation:report", kwargs={"connection_pk": connection.pk})

    assert client.get(url).status_code == 403
    assert client.post(reverse("reconciliation:run", kwargs={"connection_pk": connection.pk})).status_code == 403
    assert not BackgroundJob.objects.exists()
