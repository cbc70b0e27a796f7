"""Who may use the sync pages (/sync/): the one place views, the navigation link and the customer
page's sync badge ask.

The pages show records of every customer (a conflict's two versions, a quarantined payload), so
they are for people who see every customer (crm.access): Accounts Receivable watch the
connections' health and runs and work the conflicts and the quarantine; Finance Admins (who
administer Concord, crm.access.may_administer) also connect packages and change schedules,
directions, field policies and mappings. A sales rep is refused with 403 — the pages name no
customer a rep could be kept from knowing of by the refusal — and sees only the badge on their
customer's page.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from crm import access as crm_access


def may_see_sync(user) -> bool:
    """Connections and their health, runs, conflicts and quarantine (read)."""
    return crm_access.sees_all_customers(user)


def may_work_sync(user) -> bool:
    """Resolve conflicts, retry or ignore quarantined records."""
    return may_see_sync(user)


def may_manage_sync(user) -> bool:
    """Connect, pause, resume, run now; schedules, directions, field policies, mapping versions."""
    return may_see_sync(user) and crm_access.may_administer(user)


def may_link_from_badge(user) -> bool:
    """The customer page's sync badge links to the sync pages only for those who may open them."""
    return may_see_sync(user)


def _gate(check, refusal: str):
    def decorator(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return login_required(checked)

    return decorator


sync_viewer_required = _gate(may_see_sync, "The sync pages are for Accounts Receivable and Finance Admins.")
sync_worker_required = _gate(
    may_work_sync, "Conflicts and quarantine are worked by Accounts Receivable and Finance Admins."
)
sync_admin_required = _gate(may_manage_sync, "Only a Finance Admin may change a connection or its mappings.")
