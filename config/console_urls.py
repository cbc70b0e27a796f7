"""The admin console for Finance Admins, mounted at /console/ (Django's own admin stays at /admin/).

config assembles it from the apps' parts: users and roles (crm), the audit history (config), the
period lock (ledger) and the dunning levels (billing). Every page is behind the same gate,
crm.access.may_administer (403 for anyone else); the home page below only counts and links.
"""

from datetime import timedelta

from django.db.models import Count, Q
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing import dunning_level_views
from billing.models import DunningLevel
from config import audit_viewer
from crm import console_views
from crm.console_views import finance_admin_required
from crm.models import AccessChange, Customer
from crm.roles import Role
from ledger import console_views as ledger_console_views
from ledger import services as ledger_services

app_name = "console"

RECENT_DAYS = 7


@finance_admin_required
@require_GET
def home(request):
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    people = console_views.people()
    role_counts = people.filter(is_active=True).aggregate(
        active=Count("pk", distinct=True),
        **{role.name.lower(): Count("pk", filter=Q(groups__name=role.value), distinct=True) for role in Role},
    )
    levels = DunningLevel.objects.aggregate(total=Count("pk"), active=Count("pk", filter=Q(is_active=True)))
    return render(
        request,
        "console/home.html",
        {
            "role_counts": role_counts,
            "roles": [(role, role_counts[role.name.lower()]) for role in Role],
            "customers": Customer.objects.count(),
            "grants": console_views.count_direct_grants(),
            "access_changes": AccessChange.objects.filter(changed_at__gte=since).count(),
            "recent_changes": audit_viewer.count_changes_since(since),
            "recent_days": RECENT_DAYS,
            "locked_through": ledger_services.locked_through(),
            "levels": levels,
        },
    )


urlpatterns = [
    path("", home, name="home"),
    path("users/", console_views.user_list, name="users"),
    path("users/<int:user_pk>/", console_views.user_detail, name="user_detail"),
    path("users/<int:user_pk>/roles/", console_views.toggle_role, name="user_role"),
    path("users/<int:user_pk>/customers/", console_views.user_customer_search, name="user_customer_search"),
    path("users/<int:user_pk>/grants/", console_views.grant_customer, name="grant_customer"),
    path("users/<int:user_pk>/grants/rep/", console_views.grant_rep_customers, name="grant_rep_customers"),
    path(
        "users/<int:user_pk>/grants/<int:customer_pk>/revoke/",
        console_views.revoke_customer,
        name="revoke_customer",
    ),
    path("audit/", audit_viewer.audit_log, name="audit"),
    path("period-lock/", finance_admin_required(ledger_console_views.period_lock), name="period_lock"),
    path("dunning-levels/", dunning_level_views.dunning_level_list, name="dunning_levels"),
    path("dunning-levels/new/", dunning_level_views.dunning_level_edit, name="dunning_level_add"),
    path("dunning-levels/<int:level_pk>/", dunning_level_views.dunning_level_edit, name="dunning_level_edit"),
    path("dunning-levels/preview/", dunning_level_views.dunning_level_preview, name="dunning_level_preview"),
]
