"""Notifications (crm.notification_urls): everyone signed in has their own; opening someone
else's is 404. The matrix's notification is addressed to the owner rep."""

from tests.url_rules import SIGNED_IN, Rule

RULES = {
    "notifications:list": Rule(SIGNED_IN),
    "notifications:open": Rule(
        frozenset({"sales_owner"}),
        method="post",
        ok_statuses=(302,),
        denied_statuses={"sales_other": 404, "ar": 404, "finance_admin": 404},
    ),
    "notifications:mark_all_read": Rule(SIGNED_IN, method="post", ok_statuses=(302,)),
}


def make_objects(customer, actor) -> dict:
    from crm import services

    notification = services.notify(
        recipient=customer.owner, text="A promise was broken", url=customer.get_absolute_url(), customer=customer
    )
    return {"notification": notification}


def url_kwargs(objects: dict) -> dict[str, str]:
    return {"notification_pk": str(objects["notification"].pk)}
