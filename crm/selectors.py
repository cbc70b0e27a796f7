"""Reads for the customer pages: querysets narrowed by crm.access, with what each page shows."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q, QuerySet

from crm import access
from crm.models import Activity, Contact, Customer

CUSTOMER_LIST_ORDERINGS = {
    "name": ("display_name", "id"),
    "-name": ("-display_name", "-id"),
    "last_activity": ("last_activity_at", "id"),
    "-last_activity": ("-last_activity_at", "-id"),
    "credit_limit": ("credit_limit", "id"),
    "-credit_limit": ("-credit_limit", "-id"),
}


@dataclass(frozen=True)
class CustomerListFilters:
    search: str = ""
    status: str = ""
    owner_id: int | None = None
    ordering: str = "name"


def customer_list_rows(*, user, filters: CustomerListFilters) -> QuerySet[Customer]:
    """The customers `user` may see, filtered and ordered for the customer list."""
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
    ordering = CUSTOMER_LIST_ORDERINGS.get(filters.ordering, CUSTOMER_LIST_ORDERINGS["name"])
    return customers.order_by(*ordering)


def customer_owners(*, user):
    """The owners of the customers `user` may see, for the list's owner filter."""
    owner_ids = access.visible_customers(user).exclude(owner=None).values("owner_id")
    return get_user_model().objects.filter(pk__in=owner_ids).order_by("first_name", "last_name", "username")


RECENT_ACTIVITY_LIMIT = 50


def customer_detail(*, user, pk) -> Customer:
    """One customer for its page: owner, contacts and the most recent activities, prefetched."""
    queryset = Customer.objects.select_related("owner").prefetch_related(
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
