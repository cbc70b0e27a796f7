"""Exports of the aging report: CSV streamed and XLSX from a temporary file in the request, and a
background job (with its progress and its file) for a selection above EXPORT_INLINE_LIMIT."""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile
from datetime import date, timedelta
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.http import FileResponse, StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing import aging, exports
from billing.selectors import open_position
from config.celery import app
from crm.models import Customer
from jobs import services as job_services
from jobs.models import BackgroundJob
from tests.billing.conftest import issue
from tests.billing.test_aging_page import PAST_DAY, _customers_with_invoices, seed_receivables
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

SHEET_NS = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


@pytest.fixture
def receivables(ar_clerk, finance_admin, sales_rep, other_rep, eur_rates):
    return seed_receivables(clerk=ar_clerk, approver=finance_admin, rep=sales_rep, other_rep=other_rep)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def export(client, export_format: str, **filters):
    data = {"as_of": PAST_DAY.isoformat(), "export_format": export_format, **filters}
    return client.post(reverse("aging:export"), data)


def csv_rows(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM, for Excel
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def _cell_value(cell) -> str:
    inline = cell.find("x:is/x:t", SHEET_NS)
    if inline is not None:
        return inline.text or ""
    value = cell.find("x:v", SHEET_NS)
    return value.text if value is not None else ""


def xlsx_sheets(content: bytes) -> dict[str, list[list[str]]]:
    """Each sheet's rows as text, read back with zipfile and the sheet XML (XlsxWriter's
    constant-memory mode writes strings inline, so no shared-strings table is needed)."""
    sheets = {}
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        # Our own export, just written: not untrusted XML.
        workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))  # noqa: S314
        names = [sheet.get("name") for sheet in workbook.find("x:sheets", SHEET_NS)]
        for number, name in enumerate(names, start=1):
            root = ElementTree.fromstring(book.read(f"xl/worksheets/sheet{number}.xml"))  # noqa: S314
            sheets[name] = [
                [_cell_value(cell) for cell in row.findall("x:c", SHEET_NS)]
                for row in root.find("x:sheetData", SHEET_NS).findall("x:row", SHEET_NS)
            ]
    return sheets


def excel_day(serial: str) -> date:
    return date(1899, 12, 30) + timedelta(days=int(float(serial)))


# --- In the request ----------------------------------------------------------------------------


def test_the_csv_is_streamed_one_row_per_customer_as_on_the_page(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    response = export(client, "csv")
    assert isinstance(response, StreamingHttpResponse) and response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="aging-2026-06-10.csv"'
    header, *rows = csv_rows(b"".join(response.streaming_content))
    assert header == [
        "Account number",
        "Customer",
        "Owner",
        "Customer currency",
        "Current (USD)",
        "1–30 (USD)",
        "31–60 (USD)",
        "61–90 (USD)",
        "90+ (USD)",
        "Open invoices (USD)",
        "Unapplied credit (USD)",
        "Total (USD)",
    ]
    assert [row[1] for row in rows] == ["Contoso Pharmaceuticals", "Northwind Traders", "Lyon Optique"]
    assert rows[0][3:] == ["USD", "0.00", "0.00", "0.00", "0.00", "500.00", "500.00", "80.00", "420.00"]
    assert sum(Decimal(row[-1]) for row in rows) == open_position(as_of=PAST_DAY).net


def test_the_csv_follows_the_filters_and_the_sort(client, ar_clerk, receivables, sales_rep):
    client.force_login(ar_clerk)
    response = export(client, "csv", owner=sales_rep.pk, sort="name")
    _, *rows = csv_rows(b"".join(response.streaming_content))
    assert [(row[1], row[3], row[-1]) for row in rows] == [
        ("Lyon Optique", "EUR", "165.00"),
        ("Northwind Traders", "USD", "280.00"),
    ]


def test_the_invoice_csv_has_a_row_per_invoice_open_that_day(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    response = export(client, "csv_invoices")
    assert response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="aging-invoices-2026-06-10.csv"'
    header, *rows = csv_rows(b"".join(response.streaming_content))
    assert header[2:7] == ["Invoice", "Issued", "Due", "Days overdue", "Bucket"]
    assert [(row[1], row[2], row[5], row[6], row[7], row[8], row[9]) for row in rows] == [
        ("Contoso Pharmaceuticals", receivables.bad_debt.number, "99", "90+", "USD", "500.00", "500.00"),
        ("Lyon Optique", receivables.foreign.number, "70", "61–90", "EUR", "150.00", "165.00"),
        ("Northwind Traders", receivables.partly_paid.number, "70", "61–90", "USD", "60.00", "60.00"),
        ("Northwind Traders", receivables.credited.number, "0", "Current", "USD", "220.00", "220.00"),
    ]
    # The invoices' base amounts add up to the open invoices of the ledger's position.
    assert sum(Decimal(row[9]) for row in rows) == open_position(as_of=PAST_DAY).open_invoices


def test_a_name_that_looks_like_a_formula_stays_text_in_the_csv(client, ar_clerk, receivables):
    sneaky = CustomerFactory(display_name='=HYPERLINK("http://example.com","Click")')
    issue(ar_clerk, sneaky, "10.00", on=date(2026, 6, 1))
    client.force_login(ar_clerk)
    _, *rows = csv_rows(b"".join(export(client, "csv", sort="name").streaming_content))
    assert rows[0][1] == '\'=HYPERLINK("http://example.com","Click")'


def test_the_xlsx_has_the_customers_with_a_totals_row_and_the_invoices(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    response = export(client, "xlsx")
    assert isinstance(response, FileResponse)
    assert response["Content-Disposition"] == 'attachment; filename="aging-2026-06-10.xlsx"'
    assert response["Content-Type"] == exports.FORMATS["xlsx"].content_type
    sheets = xlsx_sheets(b"".join(response.streaming_content))
    assert list(sheets) == ["Customers", "Invoices"]
    header, *customers, totals = sheets["Customers"]
    assert header[1] == "Customer" and header[-1] == "Total (USD)"
    assert [(row[1], row[3], Decimal(row[-1])) for row in customers] == [
        ("Contoso Pharmaceuticals", "USD", Decimal("420")),
        ("Northwind Traders", "USD", Decimal("280")),
        ("Lyon Optique", "EUR", Decimal("165")),
    ]
    assert totals[1] == "Total, 3 customers"
    assert Decimal(totals[-1]) == open_position(as_of=PAST_DAY).net
    _, *invoices = sheets["Invoices"]
    assert [(row[2], excel_day(row[4]), row[5], Decimal(row[9])) for row in invoices] == [
        (receivables.bad_debt.number, date(2026, 3, 3), "99", Decimal("500")),
        (receivables.foreign.number, date(2026, 4, 1), "70", Decimal("165")),
        (receivables.partly_paid.number, date(2026, 4, 1), "70", Decimal("60")),
        (receivables.credited.number, date(2026, 6, 19), "0", Decimal("220")),
    ]


def test_a_formula_like_name_is_written_as_text_in_the_xlsx(client, ar_clerk):
    sneaky = CustomerFactory(display_name="=1+2")
    issue(ar_clerk, sneaky, "10.00", on=date(2026, 6, 1))
    client.force_login(ar_clerk)
    content = b"".join(export(client, "xlsx").streaming_content)
    assert xlsx_sheets(content)["Customers"][1][1] == "=1+2"
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        assert b"<f>" not in book.read("xl/worksheets/sheet1.xml")


def test_an_unknown_format_is_refused(client, ar_clerk, receivables):
    client.force_login(ar_clerk)
    response = export(client, "pdf")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


# --- As a background job -----------------------------------------------------------------------


def run_job(user, export_format: str, **filters) -> BackgroundJob:
    aging_filters = aging.AgingFilters(as_of=PAST_DAY, **filters)
    job = exports.create_export_job(actor=user, filters=aging_filters, export_format=export_format)
    exports.run_export_job(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_the_job_writes_the_export_and_reports_progress_per_chunk(ar_clerk, receivables, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_CHUNK_SIZE", 2)
    reported = []
    advance = job_services.advance

    def record_advance(*, job_id, done, **kwargs):
        reported.append((done, BackgroundJob.objects.get(pk=job_id).total))
        advance(job_id=job_id, done=done, **kwargs)

    monkeypatch.setattr(job_services, "advance", record_advance)
    job = run_job(ar_clerk, "csv")
    # Four customers (Idle Industries has nothing, and so no row) in chunks of two.
    assert reported == [(2, 4), (4, 4)]
    assert (job.status, job.done, job.total, job.kind) == ("succeeded", 4, 4, "aging_export")
    assert job.message == "3 customers open on 2026-06-10."
    assert job.result_name == "aging-2026-06-10.csv"
    with job.result_file.open("rb") as result:
        _, *rows = csv_rows(result.read())
    assert [row[1] for row in rows] == ["Contoso Pharmaceuticals", "Northwind Traders", "Lyon Optique"]
    assert sum(Decimal(row[-1]) for row in rows) == open_position(as_of=PAST_DAY).net


def test_the_job_writes_the_xlsx_in_chunks_with_the_invoices_in_customer_order(ar_clerk, receivables, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_CHUNK_SIZE", 1)
    job = run_job(ar_clerk, "xlsx", sort="name")
    assert job.status == "succeeded" and job.result_name == "aging-2026-06-10.xlsx"
    with job.result_file.open("rb") as result:
        sheets = xlsx_sheets(result.read())
    assert [row[1] for row in sheets["Customers"][1:]] == [
        "Contoso Pharmaceuticals",
        "Lyon Optique",
        "Northwind Traders",
        "Total, 3 customers",
    ]
    assert Decimal(sheets["Customers"][-1][-1]) == open_position(as_of=PAST_DAY).net
    assert [row[1] for row in sheets["Invoices"][1:]] == [
        "Contoso Pharmaceuticals",
        "Lyon Optique",
        "Northwind Traders",
        "Northwind Traders",
    ]


def test_the_job_writes_the_invoice_csv(ar_clerk, receivables, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_CHUNK_SIZE", 1)
    job = run_job(ar_clerk, "csv_invoices", currency="USD")
    assert job.message == "3 invoices open on 2026-06-10."
    with job.result_file.open("rb") as result:
        _, *rows = csv_rows(result.read())
    assert [row[1] for row in rows] == ["Contoso Pharmaceuticals", "Northwind Traders", "Northwind Traders"]


def test_a_finished_job_run_again_is_left_as_it_was(ar_clerk, receivables):
    job = run_job(ar_clerk, "csv")
    finished_at, file_name = job.finished_at, job.result_file.name
    exports.run_export_job(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.finished_at, job.result_file.name) == ("succeeded", finished_at, file_name)


def test_a_job_for_someone_who_lost_the_role_fails_with_what_to_do(ar_clerk, receivables):
    job = exports.create_export_job(actor=ar_clerk, filters=aging.AgingFilters(as_of=PAST_DAY), export_format="csv")
    ar_clerk.groups.clear()
    exports.run_export_job(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and not job.result_file
    assert "Accounts Receivable role" in job.hint


def test_a_large_selection_runs_as_a_job_and_sends_to_its_progress_page(
    client, ar_clerk, receivables, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(exports, "EXPORT_INLINE_LIMIT", 1)
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    client.force_login(ar_clerk)
    with django_capture_on_commit_callbacks(execute=True):
        response = export(client, "xlsx", currency="USD")
    job = BackgroundJob.objects.get()
    assert response.status_code == 302 and response.url == f"/jobs/{job.pk}/"
    assert (job.created_by, job.status, job.params["currency"]) == (ar_clerk, "succeeded", "USD")
    assert job.label == "Aging as of 2026-06-10 (Excel (customers and invoices))"
    page = client.get(response.url).content.decode()
    assert "Download aging-2026-06-10.xlsx" in page
    download = client.get(reverse("jobs:download", args=[job.pk]))
    sheets = xlsx_sheets(b"".join(download.streaming_content))
    assert [row[1] for row in sheets["Customers"][1:]] == [
        "Contoso Pharmaceuticals",
        "Northwind Traders",
        "Total, 2 customers",
    ]


def test_a_selection_within_the_limit_is_answered_at_once(client, ar_clerk, receivables, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_INLINE_LIMIT", 4)
    client.force_login(ar_clerk)
    assert export(client, "csv").streaming
    assert not BackgroundJob.objects.exists()


def test_a_finance_admin_exports_too(client, finance_admin, receivables):
    client.force_login(finance_admin)
    response = export(client, "csv")
    assert response.status_code == 200
    assert b"Lyon Optique" in b"".join(response.streaming_content)


# --- Streamed --------------------------------------------------------------------------------


def test_the_jobs_csv_follows_the_sort_over_every_customer(ar_clerk, receivables, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_CHUNK_SIZE", 1)
    job = run_job(ar_clerk, "csv", sort="name")
    with job.result_file.open("rb") as result:
        _, *rows = csv_rows(result.read())
    assert [(row[1], row[-1]) for row in rows] == [
        ("Contoso Pharmaceuticals", "420.00"),
        ("Lyon Optique", "165.00"),
        ("Northwind Traders", "280.00"),
    ]


@pytest.mark.parametrize("export_format", ["csv", "csv_invoices", "xlsx"])
def test_writing_an_export_takes_no_more_queries_for_more_customers(
    ar_clerk, sales_rep, other_rep, export_format, django_assert_max_num_queries
):
    filters = aging.AgingFilters(as_of=date(2026, 6, 30))

    def write() -> None:
        with tempfile.TemporaryFile() as out:
            exports.write_export(out, filters=filters, export_format=export_format, customers=Customer.objects.all())

    _customers_with_invoices(3, actor=ar_clerk, owners=[sales_rep, other_rep])
    with CaptureQueriesContext(connection) as with_three:
        write()
    _customers_with_invoices(27, actor=ar_clerk, owners=[sales_rep, other_rep])
    with django_assert_max_num_queries(len(with_three)):
        write()
