"""The API's access rules: role-level model permissions per action, and per-customer visibility
from crm.access (the one place that decides it).

A viewset declares which model permissions each action needs (`required_permissions`), and its
queryset is narrowed with `visible_to`, so a row of a customer outside the caller's reach is
never found: 404, never 403, by every route (list, detail, filters, nested lists, search).
"""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission

from crm import access
from crm.models import Customer

# What an action needs when the viewset does not say: the model's permission for the method.
DEFAULT_ACTION_PERMISSIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def visible_to(user, queryset: QuerySet, *, customer_field: str | None) -> QuerySet:
    """`queryset` narrowed to what `user` may see.

    `customer_field` names the foreign key to the customer a row belongs to ("customer",
    "invoice__customer"); None when the rows are customers themselves; "" when the rows belong
    to no customer (reference data such as products), which only the role decides."""
    if customer_field is None:
        return access.visible_customers(user, queryset)
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if customer_field == "" or access.sees_all_customers(user):
        return queryset
    return queryset.filter(**{f"{customer_field}__in": access.visible_customers(user, Customer.objects.all())})


def required_permissions(view, request) -> list[str]:
    declared = getattr(view, "required_permissions", None) or {}
    action = getattr(view, "action", None)
    if action in declared:
        return list(declared[action])
    if request.method in declared:
        return list(declared[request.method])
    model = view.get_queryset().model
    codename = DEFAULT_ACTION_PERMISSIONS.get(request.method, "view")
    return [f"{model._meta.app_label}.{codename}_{model._meta.model_name}"]


class RolePermissions(BasePermission):
    """The role-level permissions the action needs (the same ones that open the pages).

    An object-level rule, such as "change this customer", is the viewset's `check_object_access`
    (which asks crm.access); visibility is already settled by the queryset."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated or not user.is_active:
            return False
        if user.has_perms(required_permissions(view, request)):
            return True
        # As on the pages, a record out of reach is "not found" before it is "not allowed": the
        # caller learns nothing of a customer they may not see.
        lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", None)
        if lookup and lookup in getattr(view, "kwargs", {}) and hasattr(view, "get_object"):
            view.get_object()  # raises Http404 when out of reach
        return False

    def has_object_permission(self, request, view, obj) -> bool:
        check = getattr(view, "check_object_access", None)
        if check is None or request.method in SAFE_METHODS:
            return True
        return check(request, obj)


class IsAuthenticated(BasePermission):
    """Any signed-in, active person (the schema, the docs)."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_active)
