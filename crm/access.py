"""The one place that decides which customers a user may see or change.

Every page, export, API endpoint and task acting for a person asks here. The rule:
- holders of `crm.view_all_customers` (Accounts Receivable, Finance Admin, superusers) see all;
- everyone else sees the customers they were granted per object: a customer's owner is granted
  `view_customer` and `change_customer` on it (crm.services keeps that in step with the owner),
  and an admin may grant any user or group more.
A customer outside a user's reach is answered with 404, never 403, so its existence and name
do not leak.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from crm.models import Customer, CustomerGroupObjectPermission, CustomerUserObjectPermission

VIEW_ALL_CUSTOMERS = "crm.view_all_customers"
VIEW_CUSTOMER = "crm.view_customer"
CHANGE_CUSTOMER = "crm.change_customer"
# The object permissions a customer's owner holds on it, moved when the owner changes.
OWNER_PERMISSIONS = ("view_customer", "change_customer")


def sees_all_customers(user) -> bool:
    return user.is_active and user.has_perm(VIEW_ALL_CUSTOMERS)


def visible_customers(user, queryset: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    """`queryset` (all customers by default) narrowed to those `user` may see."""
    queryset = Customer.objects.all() if queryset is None else queryset
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if sees_all_customers(user):
        return queryset
    return queryset.filter(pk__in=_granted_customer_ids(user, "view_customer"))


def count_visible_customers(user, *, limit: int) -> int:
    """How many customers `user` may see, counting no further than `limit`: what
    `visible_customers(user).count()` answers (up to `limit`), read from the grants alone for
    someone who sees only their own: every grant names an existing customer (a foreign key,
    deleted with it), and the UNION counts a customer granted twice once."""
    if not user.is_authenticated or not user.is_active:
        return 0
    if sees_all_customers(user):
        return Customer.objects.order_by().values("pk")[:limit].count()
    return _granted_customer_ids(user, "view_customer")[:limit].count()


def _granted_customer_ids(user, codename: str) -> QuerySet:
    """The ids of the customers on which `user` holds `codename` per object, granted to them or to
    one of their groups: what guardian's get_objects_for_user(accept_global_perms=False,
    with_superuser=False) answers, written as one UNION so that PostgreSQL looks the customers up
    by primary key (guardian's two ORed IN subqueries make it scan every customer)."""
    for_customer = {"permission__content_type__app_label": "crm", "permission__content_type__model": "customer"}
    granted_to_user = CustomerUserObjectPermission.objects.filter(
        user=user, permission__codename=codename, **for_customer
    ).values("content_object_id")
    granted_to_groups = CustomerGroupObjectPermission.objects.filter(
        group__user=user, permission__codename=codename, **for_customer
    ).values("content_object_id")
    return granted_to_user.union(granted_to_groups)


def can_view_customer(user, customer: Customer) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return sees_all_customers(user) or user.has_perm(VIEW_CUSTOMER, customer)


def can_change_customer(user, customer: Customer) -> bool:
    """Global `change_customer` (a role's) or a per-customer grant, and the customer visible."""
    if not can_view_customer(user, customer):
        return False
    return user.has_perm(CHANGE_CUSTOMER) or user.has_perm(CHANGE_CUSTOMER, customer)


def may_administer(user) -> bool:
    """Finance Admins (and system actors, for migrations and commands) manage roles and access."""
    from config.audit import is_system_actor

    if is_system_actor(user):
        return True
    return user.is_authenticated and user.is_active and (user.is_superuser or user.has_perm("auth.change_user"))


def get_visible_customer_or_404(user, pk, queryset: QuerySet[Customer] | None = None) -> Customer:
    try:
        return visible_customers(user, queryset).get(pk=pk)
    except Customer.DoesNotExist:
        raise Http404("No customer matches the given query.") from None
