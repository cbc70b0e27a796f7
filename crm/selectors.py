"""Reads for the customer pages: querysets narrowed by crm.access, with what each page shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from crm import access, listing
from crm.models import Activity, Contact, Customer


@dataclass(frozen=True)
class CustomerListFilters:
    search: str = ""
    status: str = ""
    owner_id: int | None = None
    ordering: str = listing.DEFAULT_ORDERING
    # Named filters (crm.listing), all of which apply: e.g. ("overdue", "on_hold").
    show: tuple[str, ...] = ()


def customer_list_rows(
    *,
    user,
    filters: CustomerListFilters,
    today: date | None = None,
    options: listing.CustomerListOptions | None = None,
    customers: QuerySet[Customer] | None = None,
) -> QuerySet[Customer]:
    """The customers `user` may see, with what the enabled list extensions annotate (balances,
    promises…), filtered and ordered for the customer list: one query per page, whatever its size.
    `customers` is the annotated queryset to narrow (built here when not given)."""
    options = options or listing.options_for(user)
    if customers is None:
        customers = _annotated_customers(options, today=today or timezone.localdate())
    customers = access.visible_customers(user, customers)
    if filters.search:
        term = filters.search.strip()
        customers = customers.filter(
            Q(display_name__icontains=term)
            | Q(legal_name__icontains=term)
            | Q(account_number__iexact=term)
            | Q(tax_id__iexact=term)
            | Q(billing_city__icontains=term)
        )
    if filters.status:
        customers = customers.filter(status=filters.status)
    if filters.owner_id is not None:
        customers = customers.filter(owner_id=filters.owner_id)
    customers = options.apply_filters(customers, filters.show)
    return options.order(customers, filters.ordering)


def _annotated_customers(
    options: listing.CustomerListOptions, *, today: date, with_owner: bool = True
) -> QuerySet[Customer]:
    customers = Customer.objects.select_related("owner") if with_owner else Customer.objects.all()
    return options.annotate(customers, today=today)


def _is_narrowed(filters: CustomerListFilters) -> bool:
    return bool(filters.search.strip() or filters.status or filters.owner_id is not None or filters.show)


# Counting every match of a broad list costs as much as listing them all: past this many the
# list says "10,000+" instead.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class CustomerPage:
    """One page of the customer list, read by keyset (the rows after or before a given row), so a
    deep page costs what the first one does."""

    customers: list[Customer]
    count: int  # matches, up to COUNT_CAP
    count_capped: bool  # there are more than `count`
    next_after: int | None  # the last row's id, when there are rows after it
    previous_before: int | None  # the first row's id, when there are rows before it

    @property
    def object_list(self) -> list[Customer]:
        return self.customers

    @property
    def has_other_pages(self) -> bool:
        return self.next_after is not None or self.previous_before is not None


def customer_list_page(
    *,
    user,
    filters: CustomerListFilters,
    size: int,
    after: int | None = None,
    before: int | None = None,
    today: date | None = None,
    options: listing.CustomerListOptions | None = None,
    with_owner: bool = True,
) -> CustomerPage:
    """The `size` customers after the customer `after` (or before `before`; else the first ones)
    in the list's order, and how many match (capped): three queries whatever `size` or the depth —
    the cursor row's sort value, the page, the count. A cursor the user cannot see (or that no
    longer matches) starts again from the first page. `with_owner` False leaves each customer's
    owner unread (a list that does not show it: a rep's own customers)."""
    options = options or listing.options_for(user)
    today = today or timezone.localdate()
    annotated = _annotated_customers(options, today=today, with_owner=with_owner)
    rows = customer_list_rows(user=user, filters=filters, today=today, options=options, customers=annotated)
    ordering, descending = options.ordering_for(filters.ordering)
    cursor_pk, backwards = (before, True) if before is not None else (after, False)
    page = rows
    if cursor_pk is not None:
        cursor = rows.order_by().filter(pk=cursor_pk).values_list(ordering.field, flat=True)[:1]
        if cursor:
            page = page.filter(ordering.beyond(cursor[0], cursor_pk, descending, reverse=backwards))
        else:
            cursor_pk = backwards = None
    order_by = ordering.order_by(descending, reverse=bool(backwards))
    # The page's ids are chosen first, sorting only the sort key of every match; the page's own
    # columns (the owner, the promise and balance subqueries) are then read for those rows alone,
    # not for every customer the user may see. Still one query: the ids are its subquery.
    page_ids = page.order_by(*order_by).values("pk")[: size + 1]
    customers = list(annotated.filter(pk__in=page_ids).order_by(*order_by))
    more = len(customers) > size
    customers = customers[:size]
    if backwards:
        customers.reverse()
    if _is_narrowed(filters):
        count = rows.order_by().values("pk")[: COUNT_CAP + 1].count()
    else:
        # Everyone the user may see: counted from the grants alone (crm.access), not customer by
        # customer.
        count = access.count_visible_customers(user, limit=COUNT_CAP + 1)
    first, last = (customers[0].pk, customers[-1].pk) if customers else (None, None)
    return CustomerPage(
        customers=customers,
        count=min(count, COUNT_CAP),
        count_capped=count > COUNT_CAP,
        next_after=last if (more if not backwards else cursor_pk is not None) else None,
        previous_before=first if (more if backwards else cursor_pk is not None) else None,
    )


def customer_owners(*, user):
    """The owners of the customers `user` may see, for the list's owner filter: their names only."""
    users = (
        get_user_model()
        .objects.only("first_name", "last_name", "username")
        .order_by("first_name", "last_name", "username")
    )
    if access.sees_all_customers(user):
        # One probe of the owner index per user, rather than reading every customer.
        return users.filter(Exists(Customer.objects.filter(owner=OuterRef("pk"))))
    # DISTINCT: the few owners are matched to users by hash, rather than each user being looked
    # for among every visible customer.
    owner_ids = access.visible_customers(user).exclude(owner=None).values("owner_id").distinct()
    return users.filter(pk__in=owner_ids)


RECENT_ACTIVITY_LIMIT = 50


def customer_detail(*, user, pk) -> Customer:
    """One customer for its page: owner, collector and contacts, prefetched."""
    queryset = Customer.objects.select_related("owner", "collector").prefetch_related(
        Prefetch("contacts", queryset=Contact.objects.order_by("-is_primary", "name")),
    )
    return access.get_visible_customer_or_404(user, pk, queryset)


def recent_activities(*, customer: Customer, limit: int = RECENT_ACTIVITY_LIMIT) -> list[Activity]:
    return list(customer.activities.select_related("actor").order_by("-occurred_at", "-id")[:limit])


@dataclass(frozen=True)
class HistoryEntry:
    when: object
    who: object
    kind: str  # "+" created, "~" changed, "-" deleted
    changes: list[tuple[str, object, object]]  # (field label, old, new)


def customer_history(*, customer: Customer, limit: int = 20) -> list[HistoryEntry]:
    """Who changed what on the customer, newest first, each change as field: old → new."""
    records = list(
        customer.history.select_related("history_user").order_by("-history_date", "-history_id")[: limit + 1]
    )
    labels = {field.name: field.verbose_name for field in Customer._meta.fields}
    entries = []
    # A customer loaded in bulk (seed_scale, an import) may have no history row at all.
    for record, previous in zip(records, [*records[1:], None][: len(records)], strict=True):
        changes = []
        if previous is not None:
            delta = record.diff_against(previous, foreign_keys_are_objs=True)
            changes = [(labels.get(change.field, change.field), change.old, change.new) for change in delta.changes]
        entries.append(HistoryEntry(record.history_date, record.history_user, record.history_type, changes))
    return entries[:limit]
