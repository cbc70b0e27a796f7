"""A connection's reconciliation report page, mounted under /sync/connections/<connection_pk>/reconciliation/.

Reading both books takes too long for a request on a large company, so the report is computed by
a job ("Run the report", with a progress bar on the job's page) and this page shows the latest
report kept. Who may use it: integrations/access.py — Accounts Receivable and Finance Admins.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from jobs.models import BackgroundJob

from . import access, reconciliation
from .access import sync_viewer_required, sync_worker_required
from .core import canonical
from .models import Connection
from .selectors import ShownValue, shown

# How each figure is named on the page, per record type.
MEASURE_LABELS = {
    (canonical.CUSTOMER, "balance"): "AR balance",
    (canonical.INVOICE, "total"): "Gross total",
    (canonical.INVOICE, "balance"): "Open balance",
    (canonical.CREDIT_NOTE, "total"): "Gross total",
    (canonical.CREDIT_NOTE, "remaining"): "Unused credit",
    (canonical.PAYMENT, "amount"): "Amount",
    (canonical.PAYMENT, "unapplied"): "Unapplied",
    (canonical.REFUND, "amount"): "Amount",
}
KIND_LABELS = {
    reconciliation.DIFFERS: "Differs",
    reconciliation.LOCAL_ONLY: "Only in Concord",
    reconciliation.REMOTE_ONLY: "Only in the package",
    reconciliation.UNREADABLE: "Unreadable in the package",
}


@dataclass(frozen=True)
class FigureRow:
    """One line of the counts and totals table."""

    entity_label: str
    first_of_entity: bool
    figure: str
    currency: str
    concord: int | Decimal | None
    package: int | Decimal | None
    agrees: bool


@dataclass(frozen=True)
class FieldRow:
    name: str
    concord: ShownValue
    package: ShownValue


@dataclass(frozen=True)
class DifferenceRow:
    entity_label: str
    kind: str
    kind_label: str
    label: str
    local_url: str
    local_id: int | None
    remote_id: str
    fields: list[FieldRow]
    note: str


@dataclass(frozen=True)
class BalanceRow:
    label: str
    currency: str
    concord: Decimal | None
    package: Decimal | None
    gap: Decimal
    local_url: str
    remote_id: str
    remote_source: str


def figure_rows(report: reconciliation.Report) -> list[FigureRow]:
    rows = []
    for entity in report.entities:
        rows.append(
            FigureRow(
                entity.label,
                True,
                "Count",
                "",
                entity.local.count,
                entity.remote.count,
                entity.counts_agree and not entity.differences,
            )
        )
        for measure in entity.measures:
            local, remote = entity.local.amounts.get(measure, {}), entity.remote.amounts.get(measure, {})
            for currency in sorted(set(local) | set(remote)):
                concord, package = local.get(currency, Decimal("0.00")), remote.get(currency, Decimal("0.00"))
                rows.append(
                    FigureRow(
                        entity.label,
                        False,
                        MEASURE_LABELS.get((entity.entity, measure), measure),
                        currency,
                        concord,
                        package,
                        concord == package,
                    )
                )
    return rows


def _local_url(user, entity: str, local_id: int | None, customer_id: int | None) -> str:
    """The page that shows a Concord record: the invoice's own page, a customer's page for the
    customer and its other documents, the admin for a product (Finance Admins)."""
    if local_id is None:
        return ""
    try:
        if entity == canonical.INVOICE and customer_id is not None:
            return reverse("invoices:detail", kwargs={"pk": customer_id, "invoice_pk": local_id})
        if entity == canonical.PRODUCT:
            return reverse("admin:billing_product_change", args=[local_id]) if user.is_staff else ""
        if customer_id is not None:
            return reverse("crm:customer_detail", args=[customer_id])
    except NoReverseMatch:
        return ""
    return ""


def difference_rows(user, report: reconciliation.Report) -> list[DifferenceRow]:
    labels = dict(reconciliation.ENTITY_CHOICES)
    return [
        DifferenceRow(
            entity_label=labels.get(difference.entity, difference.entity),
            kind=difference.kind,
            kind_label=KIND_LABELS.get(difference.kind, difference.kind),
            label=difference.label,
            local_url=_local_url(user, difference.entity, difference.local_id, difference.customer_id),
            local_id=difference.local_id,
            remote_id=difference.remote_id,
            fields=[FieldRow(f.name, shown(f.local), shown(f.remote)) for f in difference.fields],
            note=difference.note,
        )
        for difference in report.differences
    ]


def balance_rows(user, report: reconciliation.Report) -> list[BalanceRow]:
    return [
        BalanceRow(
            label=balance.label,
            currency=balance.currency,
            concord=balance.local,
            package=balance.remote,
            gap=balance.gap,
            local_url=_local_url(user, canonical.CUSTOMER, balance.local_id, balance.local_id),
            remote_id=balance.remote_id,
            remote_source=balance.remote_source,
        )
        for balance in report.balance_differences
    ]


def _is_mine(user, job: BackgroundJob | None) -> bool:
    """Whether `user` may open the job's page and file (jobs.selectors: its starter, or a superuser)."""
    return job is not None and (user.is_superuser or job.created_by_id == user.pk)


@sync_viewer_required
@require_GET
def report_page(request, connection_pk: int):
    connection = get_object_or_404(Connection, pk=connection_pk)
    latest_job = reconciliation.jobs_of(connection).select_related("created_by").first()
    shown_job = (
        reconciliation.jobs_of(connection)
        .filter(status=BackgroundJob.Status.SUCCEEDED)
        .select_related("created_by")
        .first()
    )
    report = reconciliation.read_job_report(shown_job) if shown_job else None
    context = {
        "connection": connection,
        "latest_job": latest_job,
        "latest_job_is_mine": _is_mine(request.user, latest_job),
        "shown_job": shown_job,
        # A job's file is its starter's (jobs.selectors): the link is offered to them only.
        "shown_job_is_mine": _is_mine(request.user, shown_job),
        "report": report,
        "can_run": access.may_work_sync(request.user),
    }
    if report is not None:
        context.update(
            figures=figure_rows(report),
            differences=difference_rows(request.user, report),
            balances=balance_rows(request.user, report),
            max_listed=reconciliation.MAX_LISTED,
        )
    return render(request, "integrations/reconciliation.html", context)


@sync_worker_required
@require_POST
def run_report(request, connection_pk: int):
    connection = get_object_or_404(Connection, pk=connection_pk)
    try:
        job = reconciliation.start_reconciliation(actor=request.user, connection=connection)
    except ValidationError as refused:
        messages.error(request, " ".join(refused.messages))
        return redirect("reconciliation:report", connection_pk=connection.pk)
    return redirect(job.get_absolute_url())
