"""Site-wide views: the role-aware home page and the health check."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connections
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from kombu import Connection

from crm.roles import START_PAGE, Role, roles_of

# When a person holds several roles, the most powerful one decides where they start.
ROLE_PRECEDENCE = (Role.FINANCE_ADMIN, Role.ACCOUNTS_RECEIVABLE, Role.SALES)


@login_required
def home(request):
    user_roles = roles_of(request.user)
    for role in ROLE_PRECEDENCE:
        if role in user_roles:
            return redirect(START_PAGE[role])
    if request.user.is_superuser:
        return redirect("admin:index")
    return render(request, "home_no_role.html")


def _database_state() -> dict:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # noqa: BLE001 - any failure means "down"; the class says which.
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True, "vendor": connections["default"].vendor}


def _broker_state() -> dict:
    url = settings.CELERY_BROKER_URL
    try:
        with Connection(
            url,
            connect_timeout=settings.HEALTHZ_BROKER_TIMEOUT,
            transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        ) as connection:
            connection.ensure_connection(max_retries=1, timeout=settings.HEALTHZ_BROKER_TIMEOUT)
            transport = connection.transport_cls
    except Exception as error:  # noqa: BLE001
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True, "transport": transport}


@never_cache
def healthz(request):
    """200 when the database and the broker both answer, 503 (with which one failed) otherwise."""
    checks = {"database": _database_state(), "broker": _broker_state()}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503)
