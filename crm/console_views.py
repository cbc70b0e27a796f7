"""The admin console's users-and-roles pages (/console/users/), for Finance Admins only.

Who holds which role, and which customers each person sees: the ones they own, the ones an admin
granted them one by one or as "every customer of a rep". Every change goes through crm.services
(assign_role, remove_role, grant_customer_access, revoke_customer_access), which write an
AccessChange row for the audit viewer. crm.access reads grants on each request, so a change shows
on the person's next page load.

The reads these pages need sit at the top of this module (there is no console selectors module);
each runs a fixed number of queries whatever the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from config.audit import SYSTEM_USERNAME_PREFIX
from crm import access, services
from crm.console_forms import (
    CustomerSearchForm,
    GrantCustomerForm,
    GrantRepCustomersForm,
    RoleToggleForm,
    UserFilterForm,
)
from crm.models import AccessChange, Customer, CustomerGroupObjectPermission, CustomerUserObjectPermission
from crm.roles import Role

USERS_PER_PAGE = 50
SEARCH_RESULTS = 15
RECENT_ACCESS_CHANGES = 20
# Roles that hold crm.view_all_customers (crm/migrations/0002_roles.py): their holders see every
# customer, so per-customer grants add nothing for them while they hold it.
ROLES_SEEING_ALL = frozenset({Role.ACCOUNTS_RECEIVABLE, Role.FINANCE_ADMIN})
GRANT_DETAIL_ONE = "Granted in the admin console"


def finance_admin_required(view):
    """Console pages: sign-in first, then Finance Admins only (403 for everyone else)."""

    @wraps(view)
    def checked(request, *args, **kwargs):
        if not access.may_administer(request.user):
            raise PermissionDenied("Only a Finance Admin may use the admin console.")
        return view(request, *args, **kwargs)

    return login_required(checked)


# --- Reads -------------------------------------------------------------------------------------


def people() -> QuerySet:
    """Everyone who can hold a role: system actors (tasks, commands) never sign in, so they are left out."""
    return get_user_model().objects.exclude(username__startswith=SYSTEM_USERNAME_PREFIX)


def _view_grants() -> QuerySet[CustomerUserObjectPermission]:
    return CustomerUserObjectPermission.objects.filter(permission__codename="view_customer")


def count_direct_grants() -> int:
    """Grants of a customer to someone other than its owner."""
    return _view_grants().exclude(content_object__owner=F("user")).count()


def _with_access_counts(users: QuerySet) -> QuerySet:
    """Annotate `owned_count` (customers they own) and `granted_count` (further customers granted
    to them one by one), as subqueries so the two counts do not multiply each other's rows."""
    owned = Customer.objects.filter(owner=OuterRef("pk")).order_by().values("owner").annotate(n=Count("pk")).values("n")
    granted = (
        _view_grants()
        .filter(user=OuterRef("pk"))
        .exclude(content_object__owner=OuterRef("pk"))
        .order_by()
        .values("user")
        .annotate(n=Count("pk"))
        .values("n")
    )
    zero = Value(0, output_field=IntegerField())
    return users.annotate(
        owned_count=Coalesce(Subquery(owned, output_field=IntegerField()), zero),
        granted_count=Coalesce(Subquery(granted, output_field=IntegerField()), zero),
    )


def user_rows_queryset(*, search: str = "", role: str = "", active: str = "") -> QuerySet:
    users = _with_access_counts(people()).prefetch_related("groups").order_by("username", "pk")
    if search:
        term = search.strip()
        users = users.filter(
            Q(username__icontains=term)
            | Q(first_name__icontains=term)
            | Q(last_name__icontains=term)
            | Q(email__icontains=term)
        )
    if role == "none":
        users = users.exclude(groups__name__in=Role.values)
    elif role:
        users = users.filter(groups__name=role)
    if active == "yes":
        users = users.filter(is_active=True)
    elif active == "no":
        users = users.filter(is_active=False)
    return users


@dataclass(frozen=True)
class RoleToggle:
    role: Role
    held: bool


@dataclass(frozen=True)
class UserRow:
    user: object
    roles: list[RoleToggle]
    owned_count: int
    granted_count: int
    sees_all: bool

    @property
    def role_names(self) -> list[str]:
        return [toggle.role.label for toggle in self.roles if toggle.held]


def user_row(user) -> UserRow:
    """One row of the user list, from a user fetched through `user_rows_queryset` (groups
    prefetched, counts annotated)."""
    held = {group.name for group in user.groups.all()}
    roles = [RoleToggle(role, role.value in held) for role in Role]
    sees_all = user.is_superuser or any(toggle.held and toggle.role in ROLES_SEEING_ALL for toggle in roles)
    return UserRow(user, roles, user.owned_count, user.granted_count, sees_all)


def fetch_user_row(pk: int) -> UserRow:
    return user_row(get_object_or_404(user_rows_queryset(), pk=pk))


@dataclass(frozen=True)
class GrantedCustomer:
    customer: Customer
    change: AccessChange | None  # the latest grant's record: who granted it, when, how


@dataclass
class UserAccess:
    row: UserRow
    owned: list[Customer]
    granted: list[GrantedCustomer]
    through_groups: list[Customer]
    recent_changes: list[AccessChange]
    reps: QuerySet
    total_customers: int = 0


def user_access(*, row: UserRow) -> UserAccess:
    """What the user page shows about one person's access, in a fixed number of queries."""
    person = row.user
    owned = list(Customer.objects.filter(owner=person).order_by("display_name", "pk"))
    granted_customers = list(
        Customer.objects.filter(pk__in=_view_grants().filter(user=person).values("content_object"))
        .exclude(owner=person)
        .select_related("owner")
        .order_by("display_name", "pk")
    )
    latest_grants: dict[int, AccessChange] = {}
    for change in (
        AccessChange.objects.filter(
            user=person, kind=AccessChange.Kind.ACCESS_GRANTED, customer__in=[c.pk for c in granted_customers]
        )
        .select_related("changed_by")
        .order_by("changed_at", "pk")
    ):
        latest_grants[change.customer_id] = change
    through_groups = list(
        Customer.objects.filter(
            pk__in=CustomerGroupObjectPermission.objects.filter(
                permission__codename="view_customer", group__user=person
            ).values("content_object")
        )
        .exclude(owner=person)
        .exclude(pk__in=[c.pk for c in granted_customers])
        .order_by("display_name", "pk")
    )
    recent = list(
        AccessChange.objects.filter(user=person)
        .select_related("customer", "changed_by")
        .order_by("-changed_at", "-pk")[:RECENT_ACCESS_CHANGES]
    )
    return UserAccess(
        row=row,
        owned=owned,
        granted=[GrantedCustomer(customer, latest_grants.get(customer.pk)) for customer in granted_customers],
        through_groups=through_groups,
        recent_changes=recent,
        reps=reps_to_copy(exclude=person),
        total_customers=Customer.objects.count() if row.sees_all else 0,
    )


def reps_to_copy(*, exclude) -> QuerySet:
    """People who own customers, whose customers can be granted to someone else in one go."""
    return (
        _with_access_counts(people().filter(is_active=True))
        .filter(owned_count__gt=0)
        .exclude(pk=exclude.pk)
        .order_by("first_name", "last_name", "username")
    )


@dataclass(frozen=True)
class SearchResult:
    customer: Customer
    state: str  # "owned", "granted", "all" (sees every customer anyway) or "" (may be granted)


def search_customers_for(*, person, row: UserRow, term: str) -> list[SearchResult]:
    """Customers matching `term` by name or account number, each saying whether `person` sees it."""
    term = term.strip()
    if not term:
        return []
    matches = list(
        Customer.objects.filter(
            Q(display_name__icontains=term) | Q(legal_name__icontains=term) | Q(account_number__icontains=term)
        )
        .select_related("owner")
        .order_by("display_name", "pk")[:SEARCH_RESULTS]
    )
    granted = set(
        _view_grants()
        .filter(user=person, content_object__in=[c.pk for c in matches])
        .values_list("content_object_id", flat=True)
    )

    def state(customer: Customer) -> str:
        if customer.owner_id == person.pk:
            return "owned"
        if customer.pk in granted:
            return "granted"
        return "all" if row.sees_all else ""

    return [SearchResult(customer, state(customer)) for customer in matches]


# --- Pages -------------------------------------------------------------------------------------


@finance_admin_required
@require_GET
def user_list(request):
    form = UserFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    users = user_rows_queryset(
        search=filters.get("q", ""), role=filters.get("role", ""), active=filters.get("active", "")
    )
    page = Paginator(users, USERS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [user_row(user) for user in page.object_list]
    query_without_page = request.GET.copy()
    query_without_page.pop("page", None)
    return render(
        request,
        "console/user_list.html",
        {
            "form": form,
            "page": page,
            "rows": rows,
            "query_without_page": query_without_page.urlencode(),
            "filtered": bool(filters and any(filters.values())),
        },
    )


def _access_context(row: UserRow, **extra) -> dict:
    """What the user page's access section needs (the whole page and its htmx swaps)."""
    access_data = user_access(row=row)
    return {
        "row": row,
        "person": row.user,
        "access": access_data,
        "search_form": CustomerSearchForm(),
        "results": None,
        "term": "",
        "grant_rep_form": GrantRepCustomersForm(),
        **extra,
    }


@finance_admin_required
@require_GET
def user_detail(request, user_pk):
    row = fetch_user_row(user_pk)
    search_form = CustomerSearchForm(request.GET or None)
    term = search_form.cleaned_data["q"] if search_form.is_valid() else ""
    results = search_customers_for(person=row.user, row=row, term=term) if term else None
    return render(
        request,
        "console/user_detail.html",
        _access_context(row, search_form=search_form, results=results, term=term),
    )


@finance_admin_required
@require_GET
def user_customer_search(request, user_pk):
    """The grant form's search results, swapped into the user page in place."""
    row = fetch_user_row(user_pk)
    form = CustomerSearchForm(request.GET)
    term = form.cleaned_data["q"] if form.is_valid() else ""
    return render(
        request,
        "console/_customer_results.html",
        {
            "person": row.user,
            "results": search_customers_for(person=row.user, row=row, term=term) if term else None,
            "term": term,
        },
    )


def _back(request, default: str) -> str:
    """Where a plain (non-htmx) form post returns to: its `next` if it is on this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


@finance_admin_required
@require_POST
def toggle_role(request, user_pk):
    person = get_object_or_404(people(), pk=user_pk)
    form = RoleToggleForm(request.POST)
    error = ""
    done = ""
    if form.is_valid():
        role, held = form.role_value(), form.cleaned_data["held"]
        try:
            if held:
                services.assign_role(actor=request.user, user=person, role=role)
                done = f"{person.get_username()} now has the {role.label} role."
            else:
                services.remove_role(actor=request.user, user=person, role=role)
                done = f"{person.get_username()} no longer has the {role.label} role."
        except ValidationError as refusal:
            error = " ".join(refusal.messages)
    else:
        error = "Choose a role to give or take away."
    if request.htmx:
        return render(
            request,
            "console/_user_roles.html",
            {"row": fetch_user_row(person.pk), "role_error": error, "role_done": done},
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, done)
    return redirect(_back(request, reverse("console:user_detail", args=[person.pk])))


def _after_access_change(request, person, *, error: str = "", done: str = "", grant_rep_form=None):
    """The user page's access section again (htmx), or back to the page with a message."""
    if request.htmx:
        extra = {"access_error": error, "access_done": done}
        if grant_rep_form is not None:
            extra["grant_rep_form"] = grant_rep_form
        return render(request, "console/_user_access.html", _access_context(fetch_user_row(person.pk), **extra))
    if error:
        messages.error(request, error)
    elif done:
        messages.success(request, done)
    return redirect("console:user_detail", user_pk=person.pk)


@finance_admin_required
@require_POST
def grant_customer(request, user_pk):
    person = get_object_or_404(people(), pk=user_pk)
    form = GrantCustomerForm(request.POST)
    if not form.is_valid():
        return _after_access_change(
            request, person, error=" ".join(form.errors.get("customer", ["Choose a customer."]))
        )
    customer = form.cleaned_data["customer"]
    try:
        granted = services.grant_customer_access(
            actor=request.user, user=person, customers=[customer], detail=GRANT_DETAIL_ONE
        )
    except ValidationError as refusal:
        return _after_access_change(request, person, error=" ".join(refusal.messages))
    done = (
        f"{person.get_username()} can now see {customer}."
        if granted
        else f"{person.get_username()} could already see {customer}; nothing changed."
    )
    return _after_access_change(request, person, done=done)


@finance_admin_required
@require_POST
def grant_rep_customers(request, user_pk):
    """Grant every customer a rep owns today (customers the rep gets later are not included)."""
    person = get_object_or_404(people(), pk=user_pk)
    candidates = _with_access_counts(people().filter(is_active=True)).exclude(pk=person.pk)
    form = GrantRepCustomersForm(request.POST, candidates=candidates)
    if not form.is_valid():
        if request.htmx:
            return _after_access_change(request, person, grant_rep_form=form)
        return _after_access_change(request, person, error=" ".join(form.errors.get("rep", [])))
    rep = form.cleaned_data["rep"]
    customers = list(Customer.objects.filter(owner=rep).order_by("pk"))
    try:
        granted = services.grant_customer_access(
            actor=request.user,
            user=person,
            customers=customers,
            detail=f"All customers of {rep.get_username()}, granted in the admin console",
        )
    except ValidationError as refusal:
        return _after_access_change(request, person, error=" ".join(refusal.messages))
    skipped = len(customers) - granted
    done = f"{person.get_username()} can now see {granted} more customer{'s' if granted != 1 else ''} of {rep}"
    done += f" ({skipped} they could see already)." if skipped else "."
    return _after_access_change(request, person, done=done)


@finance_admin_required
@require_POST
def revoke_customer(request, user_pk, customer_pk):
    person = get_object_or_404(people(), pk=user_pk)
    customer = get_object_or_404(Customer, pk=customer_pk)
    try:
        revoked = services.revoke_customer_access(
            actor=request.user, user=person, customers=[customer], detail="Revoked in the admin console"
        )
    except ValidationError as refusal:
        return _after_access_change(request, person, error=" ".join(refusal.messages))
    done = (
        f"{person.get_username()} can no longer see {customer}."
        if revoked
        else f"{person.get_username()} had no grant of {customer}; nothing changed."
    )
    return _after_access_change(request, person, done=done)
