"""Reads for the customer pages: querysets narrowed by crm.access, with what each page shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q, QuerySet
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
) -> QuerySet[Customer]:
    """The customers `user` may see, with what the enabled list extensions annotate (balances,
    promises…), filtered and ordered for the customer list: one query per page, whatever its size."""
    options = options or listing.options_for(user)
    customers = access.visible_customers(user).select_related("owner")
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
    customers = options.annotate(customers, today=today or timezone.localdate())
    customers = options.apply_filters(customers, filters.show)
    return options.order(customers, filters.ordering)


def customer_owners(*, user):
    """The owners of the customers `user` may see, for the list's owner filter."""
    owner_ids = access.visible_customers(user).exclude(owner=None).values("owner_id")
    return get_user_model().objects.filter(pk__in=owner_ids).order_by("first_name", "last_name", "username")


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
    for record, previous in zip(records, [*records[1:], None], strict=True):
        changes = []
        if previous is not None:
            delta = record.diff_against(previous, foreign_keys_are_objs=True)
            changes = [(labels.get(change.field, change.field), change.old, change.new) for change in delta.changes]
        entries.append(HistoryEntry(record.history_date, record.history_user, record.history_type, changes))
    return entries[:limit]
