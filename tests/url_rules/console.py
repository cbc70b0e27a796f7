"""The admin console (/console/, config.console_urls): Finance Admins only. Everyone else signed
in is refused with 403 (the console names no customer a person could be kept from knowing of)."""

from django.contrib.auth import get_user_model

from billing.models import DunningLevel
from crm import services
from crm.roles import Role
from tests.url_rules import FINANCE_ADMIN, Rule

REFUSED = {"sales_owner": 403, "sales_other": 403, "ar": 403}


def _admin_only(**options) -> Rule:
    return Rule(FINANCE_ADMIN, denied_statuses=REFUSED, **options)


RULES = {
    "console:home": _admin_only(),
    "console:users": _admin_only(),
    "console:user_detail": _admin_only(),
    "console:user_customer_search": _admin_only(data={"q": "a"}),
    "console:user_role": _admin_only(method="post", ok_statuses=(302,), data={"role": "Sales", "held": "1"}),
    "console:grant_customer": _admin_only(
        method="post", ok_statuses=(302,), data=lambda objects: {"customer": objects["console_customer"].pk}
    ),
    "console:grant_rep_customers": _admin_only(
        method="post", ok_statuses=(302,), data=lambda objects: {"rep": objects["console_customer"].owner_id}
    ),
    "console:revoke_customer": _admin_only(method="post", ok_statuses=(302,)),
    "console:audit": _admin_only(),
    "console:period_lock": _admin_only(),
    "console:dunning_levels": _admin_only(),
    "console:dunning_level_add": _admin_only(),
    "console:dunning_level_edit": _admin_only(),
    "console:dunning_level_preview": _admin_only(
        method="post", data={"number": "1", "days_overdue": "7", "subject": "{{ invoice.number }}", "body": "Hi"}
    ),
}


def make_objects(customer, actor) -> dict:
    """A sales rep who was granted the matrix's customer, for the console's user pages."""
    grantee = get_user_model().objects.create_user(username="console-grantee", password="a-long-test-password")
    services.assign_role(actor=actor, user=grantee, role=Role.SALES)
    services.grant_customer_access(actor=actor, user=grantee, customers=[customer], detail="URL matrix")
    return {"console_grantee": grantee, "console_customer": customer}


def url_kwargs(objects: dict) -> dict[str, str]:
    return {
        "user_pk": str(objects["console_grantee"].pk),
        "customer_pk": str(objects["console_customer"].pk),
        "level_pk": str(DunningLevel.objects.order_by("level").first().pk),
    }
