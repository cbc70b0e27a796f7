"""The aging report as files: CSV (customers, or invoice by invoice) and XLSX (both, one sheet
each), for the same customers and filters as the page.

A selection of up to EXPORT_INLINE_LIMIT customers is answered in the request: the CSV streamed
line by line, the XLSX written by XlsxWriter in constant-memory mode to a temporary file that is
streamed back. A larger one runs as a background job (`run_export_job`, called by the task
billing.tasks.export_aging_report) and leaves the file on the job for its starter to download.

Either way nothing holds the whole report: the database sums, sorts and joins the customers'
names (billing.aging.customer_rows), and the rows come from a server-side cursor in chunks and
go straight into the file; the totals row is summed on the way.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date

import xlsxwriter
from django.core.files import File
from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from billing import aging
from billing.selectors import BUCKET_LABELS, BUCKETS
from crm.models import Customer
from jobs import services as job_services
from jobs.models import BackgroundJob
from ledger.money import ZERO, base_currency

# More customers than this in the selection, and the export runs as a background job.
EXPORT_INLINE_LIMIT = 2000
# Rows written between two reports of a background export's progress.
EXPORT_CHUNK_SIZE = 500
JOB_KIND = "aging_export"


@dataclass(frozen=True)
class ExportFormat:
    label: str
    extension: str
    content_type: str
    file_stem: str


FORMATS = {
    "csv": ExportFormat("CSV, one row per customer", "csv", "text/csv; charset=utf-8", "aging"),
    "csv_invoices": ExportFormat("CSV, one row per open invoice", "csv", "text/csv; charset=utf-8", "aging-invoices"),
    "xlsx": ExportFormat(
        "Excel (customers and invoices)",
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "aging",
    ),
}


def file_name(*, filters: aging.AgingFilters, export_format: str) -> str:
    spec = FORMATS[export_format]
    return f"{spec.file_stem}-{filters.as_of:%Y-%m-%d}.{spec.extension}"


# --- Rows ------------------------------------------------------------------------------------


def customer_header(currency: str) -> list[str]:
    return [
        "Account number",
        "Customer",
        "Owner",
        "Customer currency",
        *(f"{BUCKET_LABELS[bucket]} ({currency})" for bucket in BUCKETS),
        f"Open invoices ({currency})",
        f"Unapplied credit ({currency})",
        f"Total ({currency})",
    ]


def customer_cells(row: aging.CustomerAging) -> list:
    return [
        row.account_number,
        row.name,
        row.owner_name,
        row.currency,
        *row.bucket_amounts,
        row.open_total,
        row.unapplied,
        row.total,
    ]


def invoice_header(currency: str) -> list[str]:
    return [
        "Account number",
        "Customer",
        "Invoice",
        "Issued",
        "Due",
        "Days overdue",
        "Bucket",
        "Invoice currency",
        "Open (invoice currency)",
        f"Open ({currency})",
    ]


def invoice_cells(invoice: aging.InvoiceThen) -> list:
    return [
        invoice.account_number,
        invoice.customer_name,
        invoice.number,
        invoice.issue_date,
        invoice.due_date,
        invoice.days_overdue,
        invoice.bucket_label,
        invoice.currency,
        invoice.open_amount,
        invoice.open_base,
    ]


# --- CSV -------------------------------------------------------------------------------------

# A spreadsheet would run a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value) -> str:
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


class _Line:
    """A file-like object whose write() hands the line back, so csv.writer formats one line at a
    time for a streamed response."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """The CSV text, line by line. It starts with a byte order mark: Excel otherwise reads UTF-8
    (the en dashes in the bucket names, accented customer names) as another encoding."""
    writer = csv.writer(_Line())
    yield "\ufeff" + writer.writerow(header)
    for row in rows:
        yield writer.writerow([_csv_value(value) for value in row])


# --- XLSX ------------------------------------------------------------------------------------


class AgingWorkbook:
    """An XLSX of the report written row by row in constant-memory mode: XlsxWriter keeps one row
    of each sheet in memory, so the rows of each sheet must be added in order."""

    def __init__(self, out, *, as_of: date, currency: str):
        self.workbook = xlsxwriter.Workbook(out, {"constant_memory": True})
        self.as_of, self.currency = as_of, currency
        self.bold = self.workbook.add_format({"bold": True})
        self.money = self.workbook.add_format({"num_format": "#,##0.00"})
        self.money_bold = self.workbook.add_format({"num_format": "#,##0.00", "bold": True})
        self.day = self.workbook.add_format({"num_format": "yyyy-mm-dd"})
        self.customers = self._sheet("Customers", customer_header(currency), widths=[14, 36, 22, 10] + [14] * 8)
        self.invoices = self._sheet("Invoices", invoice_header(currency), widths=[14, 36, 16, 11, 11, 8, 8, 9, 16, 16])
        self.customer_row = self.invoice_row = 1

    def _sheet(self, name: str, header: list[str], *, widths: list[int]):
        sheet = self.workbook.add_worksheet(name)
        for column, width in enumerate(widths):
            sheet.set_column(column, column, width)
        sheet.freeze_panes(1, 0)
        for column, title in enumerate(header):
            sheet.write_string(0, column, title, self.bold)
        return sheet

    def _write(self, sheet, row: int, cells: list, *, bold: bool = False) -> None:
        for column, value in enumerate(cells):
            if isinstance(value, str):
                # write_string, never write(): a name starting with "=" stays text, not a formula.
                sheet.write_string(row, column, value, self.bold if bold else None)
            elif isinstance(value, date):
                sheet.write_datetime(row, column, value, self.day)
            elif isinstance(value, int):
                sheet.write_number(row, column, value)
            else:
                # Decimals to the cent: exact in a double at these magnitudes.
                sheet.write_number(row, column, float(value), self.money_bold if bold else self.money)

    def add_customers(self, rows: Iterable[aging.CustomerAging]) -> None:
        for row in rows:
            self._write(self.customers, self.customer_row, customer_cells(row))
            self.customer_row += 1

    def add_totals(self, totals: aging.AgingTotals) -> None:
        cells = [
            "",
            f"Total, {totals.customers} customers",
            "",
            "",
            *totals.bucket_amounts,
            totals.open_total,
            totals.unapplied,
            totals.total,
        ]
        self._write(self.customers, self.customer_row, cells, bold=True)
        self.customer_row += 1

    def add_invoices(self, invoices: Iterable[aging.InvoiceThen]) -> None:
        for invoice in invoices:
            self._write(self.invoices, self.invoice_row, invoice_cells(invoice))
            self.invoice_row += 1

    def close(self) -> None:
        if self.customer_row > 1:
            self.customers.autofilter(0, 0, self.customer_row - 1, 11)
        if self.invoice_row > 1:
            self.invoices.autofilter(0, 0, self.invoice_row - 1, 9)
        self.workbook.close()


# --- Writing a whole export ------------------------------------------------------------------


def _no_progress(done: int) -> None:
    pass


def _reporting(rows: Iterable, progress: Callable[[int], None]) -> Iterator:
    """`rows` as they come, calling `progress(rows so far)` after every EXPORT_CHUNK_SIZE."""
    for done, row in enumerate(rows, start=1):
        yield row
        if done % EXPORT_CHUNK_SIZE == 0:
            progress(done)


class _Totals:
    """The totals row, summed as the customer rows go by."""

    def __init__(self):
        self.customers, self.buckets, self.unapplied = 0, dict.fromkeys(BUCKETS, ZERO), ZERO

    def counted(self, rows: Iterable[aging.CustomerAging]) -> Iterator[aging.CustomerAging]:
        for row in rows:
            self.customers += 1
            for bucket in BUCKETS:
                self.buckets[bucket] += row.buckets[bucket]
            self.unapplied += row.unapplied
            yield row

    def result(self) -> aging.AgingTotals:
        return aging.AgingTotals(customers=self.customers, buckets=self.buckets, unapplied=self.unapplied)


def write_export(
    out,
    *,
    filters: aging.AgingFilters,
    export_format: str,
    customers: QuerySet[Customer],
    progress: Callable[[int], None] = _no_progress,
) -> int:
    """Write the report for `customers` (narrowed by crm.access and the filters already) to the
    binary file `out`, calling `progress(rows written)` every EXPORT_CHUNK_SIZE rows. Returns the
    number of data rows: customers, or invoices for the invoice CSV."""
    currency, as_of = base_currency(), filters.as_of
    if export_format == "csv_invoices":
        rows = (invoice_cells(invoice) for invoice in aging.invoices_then(customers=customers, as_of=as_of))
        return _write_csv(out, invoice_header(currency), _reporting(rows, progress))
    customer_rows = _reporting(aging.customer_rows(customers=customers, as_of=as_of, sort=filters.sort), progress)
    if export_format == "csv":
        return _write_csv(out, customer_header(currency), (customer_cells(row) for row in customer_rows))
    workbook = AgingWorkbook(out, as_of=as_of, currency=currency)
    totals = _Totals()
    workbook.add_customers(totals.counted(customer_rows))
    workbook.add_totals(totals.result())
    workbook.add_invoices(aging.invoices_then(customers=customers, as_of=as_of))
    workbook.close()
    return totals.customers


def _write_csv(out, header: list[str], rows: Iterable[list]) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    try:
        written = -1  # the header line
        for line in csv_lines(header, rows):
            text.write(line)
            written += 1
    finally:
        text.flush()
        text.detach()
    return written


def export_response(*, user, filters: aging.AgingFilters, export_format: str) -> HttpResponseBase:
    """The export answered in the request (the selection is at most EXPORT_INLINE_LIMIT
    customers): CSV streamed as it is formatted, XLSX from a temporary file."""
    spec, name = FORMATS[export_format], file_name(filters=filters, export_format=export_format)
    customers = aging.customers_in_report(user=user, filters=filters)
    if export_format == "xlsx":
        out = tempfile.TemporaryFile()  # noqa: SIM115 — FileResponse closes it (and so deletes it)
        write_export(out, filters=filters, export_format=export_format, customers=customers)
        out.seek(0)
        return FileResponse(out, as_attachment=True, filename=name, content_type=spec.content_type)
    currency = base_currency()
    if export_format == "csv_invoices":
        invoices = aging.invoices_then(customers=customers, as_of=filters.as_of)
        lines = csv_lines(invoice_header(currency), (invoice_cells(invoice) for invoice in invoices))
    else:
        # The rows are worked out before the response starts, so that a failure is an error page
        # rather than a truncated file; only their formatting is streamed.
        rows = aging.aging_rows(customers=customers, as_of=filters.as_of, sort=filters.sort)
        lines = csv_lines(customer_header(currency), (customer_cells(row) for row in rows))
    response = StreamingHttpResponse(lines, content_type=spec.content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- As a background job ---------------------------------------------------------------------


def create_export_job(*, actor, filters: aging.AgingFilters, export_format: str) -> BackgroundJob:
    """The job for an export too large to answer in the request; the caller enqueues
    billing.tasks.export_aging_report for it."""
    return job_services.create_job(
        kind=JOB_KIND,
        label=f"Aging as of {filters.as_of:%Y-%m-%d} ({FORMATS[export_format].label})",
        actor=actor,
        params={**filters.as_params(), "format": export_format},
    )


NOT_PERMITTED_HINT = "Ask a Finance Admin for the Accounts Receivable role, then export again from the aging page."


def run_export_job(*, job_id: int) -> None:
    """Write the export a job asks for, for the person who started it (crm.access decides which
    customers, as on the page). Safe to run twice: a finished job is left as it is."""
    job_services.run_tracked(job_id=job_id, work=_run_export)


def _run_export(job_id: int) -> None:
    job = BackgroundJob.objects.select_related("created_by").get(pk=job_id)
    if job.is_finished:
        return
    user = job.created_by
    if user is None or not aging.may_see_aging(user):
        # Not an error to retry: the person lost the right to the report since they asked.
        job_services.fail(
            job_id=job_id,
            error="The person who started this export may no longer see the aging.",
            hint=NOT_PERMITTED_HINT,
        )
        return
    filters = aging.AgingFilters.from_params(job.params)
    export_format = job.params["format"]
    customers = aging.customers_in_report(user=user, filters=filters)
    total = customers.count()
    job = job_services.start(job_id=job_id, total=total, message="Ageing customers")
    if job.is_finished:
        return

    def progress(done: int) -> None:
        # Rows written, of the customers in the selection (only those with something open or
        # some credit have a row; an invoice CSV may have more rows than that).
        job_services.advance(job_id=job_id, done=min(done, total))

    name = file_name(filters=filters, export_format=export_format)
    with tempfile.TemporaryFile() as out:
        written = write_export(
            out, filters=filters, export_format=export_format, customers=customers, progress=progress
        )
        progress(total)
        out.seek(0)
        what = "invoice" if export_format == "csv_invoices" else "customer"
        job_services.succeed(
            job_id=job_id,
            message=f"{written} {what}{'' if written == 1 else 's'} open on {filters.as_of:%Y-%m-%d}.",
            file=File(out, name=name),
            file_name=name,
        )
