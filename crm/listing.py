"""What other apps add to the customer list (columns, filters, orderings), without crm importing them.

crm must not import billing, yet "My customers" shows balances and sorts by what is overdue. So an
app registers an extension from its AppConfig.ready(), as it registers a panel (crm.panels):

    register_customer_list_extension(CustomerListExtension(
        name="billing",
        enabled=lambda user: user.has_perm("billing.view_invoice"),
        annotate=lambda customers, *, today: with_balances(customers, today=today),
        filters=[ListFilter("overdue", "Overdue", lambda customers: customers.filter(overdue__gt=0))],
        orderings=[ListOrdering("balance", "balance", ascending_label="Lowest balance", ...)],
        columns=[ListColumn("balance", "Balance", render=balance_cell, ordering="balance", numeric=True)],
    ))

The list's selector applies, for each extension the user may use, `annotate` (subqueries in the
page's one query: an extension must not add a query per row), then the named filters the person
ticked, then the ordering. `prepare_rows(customers, today=...)` may attach Python-side figures to
the customers of one page, in a fixed number of queries. A column's `render(customer)` returns
the cell's HTML (a SafeString, e.g. from format_html; a plain str is escaped).

crm's own filters and orderings (on hold, name, last activity, credit limit) are declared here
the same way, so the page treats its own and the contributed ones alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.db.models import F, OrderBy, Q, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.urls import reverse
from django.utils import timezone

from crm.models import Customer

CustomerFilter = Callable[[QuerySet[Customer]], QuerySet[Customer]]


@dataclass(frozen=True)
class ListFilter:
    """A named narrowing the person can tick (`?show=<key>`); ticked filters all apply."""

    key: str
    label: str
    apply: CustomerFilter
    help_text: str = ""


@dataclass(frozen=True)
class ListOrdering:
    """Sorting by one field or annotation; `key` sorts ascending, `-key` descending.

    Rows without a value go last either way, unless `nulls_low` (they count as the smallest:
    first ascending, e.g. customers never contacted under "least recent activity"). A field that is
    never NULL says so (`nullable=False`): its ORDER BY then matches a plain (field, id) index in
    both directions, and paging compares (field, id) as a row, which that index answers."""

    key: str
    field: str
    ascending_label: str
    descending_label: str
    # The direction a click on the column header sorts first (money: largest first).
    descending_first: bool = False
    nulls_low: bool = False
    nullable: bool = True

    def _nulls_first(self, descending: bool) -> bool:
        return self.nulls_low and not descending

    def order_by(self, descending: bool, *, reverse: bool = False) -> tuple[OrderBy, OrderBy]:
        """The ORDER BY of this sort; `reverse` turns it round exactly (to read a page backwards)."""
        nulls_first = self._nulls_first(descending)
        if reverse:
            descending, nulls_first = not descending, not nulls_first
        expression, pk = F(self.field), F("id")
        # The primary key breaks ties so that pages do not overlap or skip rows.
        if not self.nullable:
            return (expression.desc(), pk.desc()) if descending else (expression.asc(), pk.asc())
        nulls = {"nulls_first": True} if nulls_first else {"nulls_last": True}
        ordered = expression.desc(**nulls) if descending else expression.asc(**nulls)
        return ordered, pk.desc() if descending else pk.asc()

    def beyond(self, value, pk: int, descending: bool, *, reverse: bool = False) -> Q:
        """The rows that come after the row (value, pk) in this sort (before it, with `reverse`):
        the keyset condition that pages without OFFSET."""
        nulls_first = self._nulls_first(descending)
        if reverse:
            descending, nulls_first = not descending, not nulls_first
        later = TupleLessThan if descending else TupleGreaterThan
        if value is not None:
            # A row comparison is never true for a NULL field: the NULL rows are added by hand.
            later_values = Q(later(Tuple(F(self.field), F("id")), (value, pk)))
            if not self.nullable or nulls_first:
                return later_values
            return later_values | Q(**{f"{self.field}__isnull": True})
        later_nulls = Q(**{f"{self.field}__isnull": True}) & Q(**{"id__lt" if descending else "id__gt": pk})
        return later_nulls | Q(**{f"{self.field}__isnull": False}) if nulls_first else later_nulls


@dataclass(frozen=True)
class ListColumn:
    key: str
    label: str
    render: Callable[[Customer], str]
    ordering: str = ""  # the ListOrdering key its header sorts by, if any
    numeric: bool = False  # right-aligned figures


@dataclass(frozen=True)
class CustomerListExtension:
    name: str
    order: int = 100
    enabled: Callable[[object], bool] = lambda user: True
    annotate: Callable[..., QuerySet[Customer]] | None = None  # (customers, *, today) -> customers
    prepare_rows: Callable[..., None] | None = None  # (customers: list, *, today) -> None
    filters: Iterable[ListFilter] = field(default_factory=tuple)
    orderings: Iterable[ListOrdering] = field(default_factory=tuple)
    columns: Iterable[ListColumn] = field(default_factory=tuple)


_extensions: dict[str, CustomerListExtension] = {}


def register_customer_list_extension(extension: CustomerListExtension) -> None:
    """Add (or replace: ready() may run more than once) the extension called `extension.name`."""
    _extensions[extension.name] = extension


def unregister_customer_list_extension(name: str) -> None:
    _extensions.pop(name, None)


# --- crm's own ------------------------------------------------------------------------------------

CORE_FILTERS = (
    ListFilter(
        "on_hold",
        "On hold",
        lambda customers: customers.filter(status=Customer.Status.ON_HOLD),
        help_text="Customers whose account is on hold.",
    ),
)

CORE_ORDERINGS = (
    ListOrdering("name", "display_name", ascending_label="Name A–Z", descending_label="Name Z–A", nullable=False),
    ListOrdering(
        "last_activity",
        "last_activity_at",
        ascending_label="Least recent activity",
        descending_label="Most recent activity",
        descending_first=True,
        nulls_low=True,
    ),
    ListOrdering(
        "credit_limit",
        "credit_limit",
        ascending_label="Lowest credit limit",
        descending_label="Highest credit limit",
        descending_first=True,
    ),
)
DEFAULT_ORDERING = "name"


@dataclass(frozen=True)
class CustomerListOptions:
    """What one user's customer list offers: the enabled extensions' parts and crm's own."""

    extensions: tuple[CustomerListExtension, ...]
    filters: dict[str, ListFilter]
    orderings: dict[str, ListOrdering]
    columns: tuple[ListColumn, ...]

    def sort_choices(self) -> list[tuple[str, str]]:
        choices = []
        for ordering in self.orderings.values():
            first, second = (
                [(f"-{ordering.key}", ordering.descending_label), (ordering.key, ordering.ascending_label)]
                if ordering.descending_first
                else [(ordering.key, ordering.ascending_label), (f"-{ordering.key}", ordering.descending_label)]
            )
            choices += [first, second]
        return choices

    def filter_choices(self) -> list[tuple[str, str]]:
        return [(key, list_filter.label) for key, list_filter in self.filters.items()]

    def annotate(self, customers: QuerySet[Customer], *, today: date) -> QuerySet[Customer]:
        for extension in self.extensions:
            if extension.annotate is not None:
                customers = extension.annotate(customers, today=today)
        return customers

    def apply_filters(self, customers: QuerySet[Customer], keys: Iterable[str]) -> QuerySet[Customer]:
        for key in keys:
            if key in self.filters:
                customers = self.filters[key].apply(customers)
        return customers

    def ordering_for(self, sort: str) -> tuple[ListOrdering, bool]:
        """The ordering `sort` ("key" or "-key") names and whether it descends; an unknown key
        sorts by name."""
        descending = sort.startswith("-")
        ordering = self.orderings.get(sort.removeprefix("-"))
        if ordering is None:
            ordering, descending = self.orderings[DEFAULT_ORDERING], False
        return ordering, descending

    def order(self, customers: QuerySet[Customer], sort: str) -> QuerySet[Customer]:
        """Ordered by `sort` ("key" or "-key"); an unknown key sorts by name."""
        ordering, descending = self.ordering_for(sort)
        return customers.order_by(*ordering.order_by(descending))

    def prepare_rows(self, customers: list[Customer], *, today: date) -> None:
        """crm's own figures of each row (its link, when it was last contacted), then each
        extension's."""
        prepare_core_rows(customers)
        for extension in self.extensions:
            if extension.prepare_rows is not None:
                extension.prepare_rows(customers, today=today)


# Any id: the detail page's address of every customer is this one's with the id swapped, so
# that a page of 100 rows costs one URL reversal rather than 100.
_URL_SAMPLE_ID = 987654321


def prepare_core_rows(customers: list[Customer]) -> None:
    """Each customer's `list_url` (its page), `last_activity_title` (local date and time) and
    `last_activity_ago` ("3 days ago"), worked out here once rather than by template filters in
    the row loop, which cost several times more."""
    sample = reverse("crm:customer_detail", args=[_URL_SAMPLE_ID])
    for customer in customers:
        customer.list_url = sample.replace(str(_URL_SAMPLE_ID), str(customer.pk), 1)
        if customer.last_activity_at is not None:
            contacted = timezone.localtime(customer.last_activity_at)
            customer.last_activity_title = contacted.strftime("%Y-%m-%d %H:%M")
            customer.last_activity_ago = naturaltime(customer.last_activity_at)


def options_for(user) -> CustomerListOptions:
    """The columns, filters and orderings `user` may use: each enabled extension's (lowest
    `order` first) and crm's own — crm's orderings first, its filters last."""
    extensions = tuple(
        extension
        for extension in sorted(_extensions.values(), key=lambda extension: (extension.order, extension.name))
        if extension.enabled(user)
    )
    filters: dict[str, ListFilter] = {}
    orderings = {ordering.key: ordering for ordering in CORE_ORDERINGS}
    columns: list[ListColumn] = []
    for extension in extensions:
        filters.update((list_filter.key, list_filter) for list_filter in extension.filters)
        orderings.update((ordering.key, ordering) for ordering in extension.orderings)
        columns += extension.columns
    filters.update((list_filter.key, list_filter) for list_filter in CORE_FILTERS)
    return CustomerListOptions(extensions=extensions, filters=filters, orderings=orderings, columns=tuple(columns))
