"""The aging report for Accounts Receivable and Finance Admins: the page, a customer's invoices
open on the day, and the exports.

Thin views: billing.aging.may_see_aging decides who has the page (403 otherwise: a rep has no
aging page, their figures are on their customers' pages), crm.access which customers it covers
(404 for a customer out of reach), billing.aging and billing.exports work out the figures.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from billing import aging, exports, tasks
from billing.aging_forms import AgingExportForm, AgingFilterForm
from billing.selectors import BUCKET_LABELS, BUCKETS
from crm import access
from crm.models import Customer
from crm.selectors import customer_owners
from jobs import services as job_services

ROWS_PER_PAGE = 100
# Query parameters that are the report's filters (the rest, e.g. the page, are not carried on).
FILTER_PARAMS = ("as_of", "owner", "currency", "sort")


def _require_aging(user) -> None:
    if not aging.may_see_aging(user):
        raise PermissionDenied


def _filter_form(request, data, form_class=AgingFilterForm):
    return form_class(
        data,
        owners=customer_owners(user=request.user),
        currencies=aging.report_currencies(user=request.user),
    )


def _query(params: dict, **changes) -> str:
    """A query string of the filters with `changes`, leaving out empty values."""
    merged = {**params, **changes}
    return urlencode([(name, merged[name]) for name in FILTER_PARAMS if merged.get(name)])


@login_required
@require_GET
def aging_report(request):
    _require_aging(request.user)
    form = _filter_form(request, request.GET)
    context = {"form": form, "report": None, "formats": exports.FORMATS}
    if form.is_valid():
        filters = form.filters()
        # The database sorts and pages: one page of rows is read, the totals cover them all.
        report = aging.aging_page(
            user=request.user, filters=filters, page_number=request.GET.get("page"), per_page=ROWS_PER_PAGE
        )
        params = filters.as_params()
        context.update(
            report=report,
            filters=filters,
            page=report.page,
            query=_query(params),
            # Column headers that sort: the customer name, the 90+ column and the total.
            sort_links={
                "name": _query(params, sort="name"),
                **{sort.lstrip("-"): _query(params, sort=sort) for sort in ("-total", "-over_90")},
            },
            bucket_columns=[(bucket, BUCKET_LABELS[bucket]) for bucket in BUCKETS],
            export_inline_limit=exports.EXPORT_INLINE_LIMIT,
            filtered=bool(filters.owner or filters.currency),
        )
    return render(request, "billing/aging/report.html", context)


@login_required
@require_GET
def customer_invoices(request, pk):
    """The invoices behind one customer's row: a fragment swapped under the row (htmx), or a
    page of its own (a link opened without JavaScript, or in a new tab)."""
    _require_aging(request.user)
    customer = access.get_visible_customer_or_404(request.user, pk, Customer.objects.select_related("owner"))
    form = _filter_form(request, request.GET)
    as_of = form.cleaned_data["as_of"] if form.is_valid() else None
    context = {"form": form, "customer": customer, "drilldown": None}
    if as_of is not None:
        context["drilldown"] = aging.customer_drilldown(customer=customer, as_of=as_of)
        params = form.filters().as_params()
        context["back_query"] = _query(params)
        # Picking another day on the page keeps the report's other filters for the way back.
        context["carried"] = {name: params[name] for name in ("owner", "currency", "sort") if params[name]}
    template = "billing/aging/_invoices.html" if request.htmx else "billing/aging/customer.html"
    return render(request, template, context)


@login_required
@require_POST
def export_report(request):
    """The report as CSV or XLSX, for the same customers and filters as the page. Up to
    EXPORT_INLINE_LIMIT customers it is the response; beyond, a background job writes it and the
    person watches its progress on the job's page."""
    _require_aging(request.user)
    form = _filter_form(request, request.POST, form_class=AgingExportForm)
    if not form.is_valid():
        # Only a hand-made request gets here (the page's buttons send valid filters); the page
        # shows the refusal next to the fields.
        return render(
            request, "billing/aging/report.html", {"form": form, "report": None, "formats": exports.FORMATS}, status=400
        )
    filters, export_format = form.filters(), form.cleaned_data["export_format"]
    selection = aging.customers_in_report(user=request.user, filters=filters).count()
    if selection > exports.EXPORT_INLINE_LIMIT:
        job = exports.create_export_job(actor=request.user, filters=filters, export_format=export_format)
        job_services.enqueue(job=job, task=tasks.export_aging_report)
        return redirect(job)
    return exports.export_response(user=request.user, filters=filters, export_format=export_format)
