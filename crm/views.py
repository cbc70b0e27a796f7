"""Customer pages: thin views that parse the request, call a selector or service, and render."""

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import conditional_escape, escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from crm import listing, selectors, services
from crm.forms import ActivityForm, CustomerFilterForm
from crm.models import Customer
from crm.panels import render_customer_panels

CUSTOMERS_PER_PAGE = 25
# The list pages by keyset: ?after=<id> shows the rows that follow that customer in the list's
# order, ?before=<id> those that precede it ("page" is an old bookmark's, and is ignored).
PAGE_CURSORS = ("after", "before", "page")


def _cursor(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _page_query(query, cursor: str, pk: int | None) -> str:
    if pk is None:
        return ""
    query = query.copy()
    query[cursor] = str(pk)
    return query.urlencode()


@dataclass(frozen=True)
class ColumnHeader:
    label: str
    numeric: bool = False
    href: str = ""  # sorts by this column; empty when it does not sort
    aria_sort: str = ""  # "ascending" / "descending" on the column the list is sorted by


@dataclass(frozen=True)
class CustomerRow:
    customer: Customer
    html: str  # the row's <tr>, rendered (see _row_html)


# Numbers are right-aligned and kept on one line.
NUMERIC_CELL = ' class="text-end text-nowrap"'
NEVER_CONTACTED = '<span class="text-body-secondary">never</span>'


def _rows(customers: list[Customer], columns: tuple[listing.ListColumn, ...], *, show_owner: bool) -> list[CustomerRow]:
    """Each customer's row of the list, a hundred at most.

    Made here rather than by a template loop, which cost about 50 µs a row in variable lookups,
    filters and includes, for a list a rep opens many times a day. The markup is what
    crm/customer_list.html had in its loop (the tests compare it); the status badge is the shared
    component, rendered once per status."""
    badges: dict[str, str] = {}
    cell_classes = [NUMERIC_CELL if column.numeric else "" for column in columns]
    rows = []
    for customer in customers:
        badge = badges.get(customer.status)
        if badge is None:
            badge = badges[customer.status] = render_to_string(
                "components/status_badge.html", {"status": customer.status}
            )
        # Each cell escaped unless its column marked it safe, as format_html would.
        cells = "".join(
            f"<td{cell_class}>{conditional_escape(column.render(customer))}</td>"
            for cell_class, column in zip(cell_classes, columns, strict=True)
        )
        rows.append(CustomerRow(customer, _row_html(customer, badge, cells, show_owner=show_owner)))
    return rows


def _row_html(customer: Customer, badge: str, cells: str, *, show_owner: bool) -> str:
    place = ""
    if customer.billing_city:
        place = f" · {escape(customer.billing_city)}"
        if customer.billing_country:
            place += f" {escape(customer.billing_country)}"
    owner = ""
    if show_owner:
        owner_name = (customer.owner.get_full_name() or customer.owner.username) if customer.owner else ""
        owner = f"<td>{escape(owner_name or '—')}</td>"
    if customer.last_activity_at:
        contacted = f'<span title="{escape(customer.last_activity_title)}">{escape(customer.last_activity_ago)}</span>'
    else:
        contacted = NEVER_CONTACTED
    # Every text above is escaped; the badge, the cells (escaped by _rows) and the rest are markup.
    return mark_safe(  # noqa: S308
        '\n    <tr class="customer-row">\n'
        f'      <td><a href="{escape(customer.list_url)}" class="fw-semibold">{escape(customer.display_name)}</a>\n'
        f'        <div class="small text-body-secondary"><span class="font-monospace">{escape(customer.account_number)}'
        f"</span>{place}</div></td>\n"
        f"      {owner}\n"
        f"      <td>{badge}</td>\n"
        f"      {cells}\n"
        f'      <td class="text-nowrap">{contacted}</td>\n'
        "    </tr>\n    "
    )


def _list_filters(form: CustomerFilterForm) -> selectors.CustomerListFilters:
    """What the person asked for; a value that does not validate (e.g. a sort key from an old
    bookmark) is dropped on its own rather than losing the search with it."""
    form.is_valid()
    data = form.cleaned_data
    return selectors.CustomerListFilters(
        search=data.get("q") or "",
        status=data.get("status") or "",
        owner_id=data.get("owner"),
        ordering=data.get("sort") or listing.DEFAULT_ORDERING,
        show=tuple(data.get("show") or ()),
    )


def _header(request, label: str, ordering: listing.ListOrdering | None, current: str, numeric=False) -> ColumnHeader:
    if ordering is None:
        return ColumnHeader(label, numeric)
    query = request.GET.copy()
    for cursor in PAGE_CURSORS:
        query.pop(cursor, None)
    if current.removeprefix("-") == ordering.key:
        descending = current.startswith("-")
        aria_sort = "descending" if descending else "ascending"
        query["sort"] = ordering.key if descending else f"-{ordering.key}"  # a second click reverses
    else:
        aria_sort = ""
        query["sort"] = f"-{ordering.key}" if ordering.descending_first else ordering.key
    return ColumnHeader(label, numeric, href=f"?{query.urlencode()}", aria_sort=aria_sort)


@login_required
@permission_required("crm.view_customer", raise_exception=True)
def customer_list(request):
    options = listing.options_for(request.user)
    owners = selectors.customer_owners(user=request.user)
    form = CustomerFilterForm(request.GET, owners=owners, options=options)
    filters = _list_filters(form)
    # The owner column shows only when the customers the user sees have more than one owner.
    show_owner = len(form.fields["owner"].choices) > 2
    today = timezone.localdate()
    page = selectors.customer_list_page(
        user=request.user,
        filters=filters,
        size=CUSTOMERS_PER_PAGE,
        after=_cursor(request.GET.get("after")),
        before=_cursor(request.GET.get("before")),
        today=today,
        options=options,
        with_owner=show_owner,
    )
    customers = page.customers
    options.prepare_rows(customers, today=today)
    sort = filters.ordering if filters.ordering.removeprefix("-") in options.orderings else listing.DEFAULT_ORDERING
    headers = [
        _header(request, "Customer", options.orderings["name"], sort),
        *([ColumnHeader("Owner")] if show_owner else []),
        ColumnHeader("Status"),
        *(
            _header(request, column.label, options.orderings.get(column.ordering), sort, numeric=column.numeric)
            for column in options.columns
        ),
        _header(request, "Last activity", options.orderings["last_activity"], sort),
    ]
    query_without_page = request.GET.copy()
    for cursor in PAGE_CURSORS:
        query_without_page.pop(cursor, None)
    return render(
        request,
        "crm/customer_list.html",
        {
            "form": form,
            "page": page,
            "rows": _rows(customers, options.columns, show_owner=show_owner),
            "columns": options.columns,
            "headers": headers,
            "show_owner": show_owner,
            "filter_options": [(key, list_filter) for key, list_filter in options.filters.items()],
            "query_without_page": query_without_page.urlencode(),
            "next_query": _page_query(query_without_page, "after", page.next_after),
            "previous_query": _page_query(query_without_page, "before", page.previous_before),
            "filters": filters,
            "filtered": bool(filters.search or filters.status or filters.owner_id or filters.show),
        },
    )


def _activity_context(request, customer, activity_form) -> dict:
    return {
        "customer": customer,
        "activities": selectors.recent_activities(customer=customer),
        "activity_form": activity_form,
        "can_log_activity": request.user.has_perm("crm.add_activity"),
    }


def _render_detail(request, customer, activity_form, status=200):
    return render(
        request,
        "crm/customer_detail.html",
        {
            **_activity_context(request, customer, activity_form),
            "contacts": customer.contacts.all(),
            "history": selectors.customer_history(customer=customer),
            # Other apps' sections of the page: billing's summary, invoices and payments,
            # collections' promises and disputes.
            "panels": render_customer_panels(request, customer),
        },
        status=status,
    )


@login_required
@permission_required("crm.view_customer", raise_exception=True)
def customer_detail(request, pk):
    customer = selectors.customer_detail(user=request.user, pk=pk)
    return _render_detail(request, customer, ActivityForm())


@login_required
@permission_required("crm.add_activity", raise_exception=True)
@require_POST
def log_activity(request, pk):
    customer = selectors.customer_detail(user=request.user, pk=pk)
    form = ActivityForm(request.POST)
    if form.is_valid():
        try:
            services.log_activity(actor=request.user, customer=customer, **form.cleaned_data)
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
    if request.htmx:
        # Swap just the timeline and its form: a fresh form after success, the bound one with its
        # errors otherwise (200 either way, since htmx does not swap 4xx responses by default).
        return render(
            request,
            "crm/_activity_panel.html",
            _activity_context(request, customer, ActivityForm() if not form.errors else form),
        )
    if form.errors:
        return _render_detail(request, customer, form, status=422)
    messages.success(request, "Activity logged.")
    return redirect("crm:customer_detail", pk=customer.pk)
