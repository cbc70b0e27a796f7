"""The collections desk: the AR worklist (/ar/worklist/) and the Collections panel's writes on the
customer page. Both are Accounts Receivable's and Finance Admins'. The worklist is not about one
customer, so a sales rep is refused with 403; on the panel's URLs a rep is refused with 403 on
their own customer and 404 on one out of reach (its existence does not leak)."""

from datetime import timedelta

from django.utils import timezone

from tests.url_rules import AR_AND_ADMIN, Rule

SALES_REFUSED = {"sales_owner": 403, "sales_other": 403}
OUT_OF_REACH = {"sales_owner": 403, "sales_other": 404}


def _next_week() -> str:
    return (timezone.localdate() + timedelta(days=7)).isoformat()


def _post(data, denied) -> Rule:
    return Rule(AR_AND_ADMIN, method="post", ok_statuses=(302,), data=data, denied_statuses=denied)


RULES = {
    "worklist:index": Rule(AR_AND_ADMIN, denied_statuses=SALES_REFUSED),
    "worklist:log_call": _post({"outcome": "reached", "text": "Matrix check"}, SALES_REFUSED),
    "worklist:record_promise": _post(lambda objects: {"promised_on": _next_week()}, SALES_REFUSED),
    "worklist:open_dispute": _post({"reason": "Matrix check"}, SALES_REFUSED),
    "worklist:assign_collector": _post({"collector": ""}, SALES_REFUSED),
    "collections:record_promise": _post(
        lambda objects: {"invoices": [objects["collections_promise_invoice"].pk], "promised_on": _next_week()},
        OUT_OF_REACH,
    ),
    "collections:cancel_promise": _post({"reason": "Matrix check"}, OUT_OF_REACH),
    "collections:open_dispute": _post(
        lambda objects: {"invoice": objects["collections_dispute_invoice"].pk, "reason": "Matrix check"},
        OUT_OF_REACH,
    ),
    "collections:resolve_dispute": _post({"resolution": "Matrix check"}, OUT_OF_REACH),
    "collections:assign_collector": _post({"collector": ""}, OUT_OF_REACH),
}


def make_objects(customer, actor) -> dict:
    """One open invoice per write, so that each succeeds whatever order the walk takes them in:
    an overdue invoice for the worklist's actions, one to promise and one to dispute from the
    panel, a disputed one to resolve and an open promise to cancel."""
    from decimal import Decimal

    from billing import collections
    from tests.billing.conftest import issue

    invoices = {
        name: issue(actor, customer, "30.00") for name in ("worklist", "promise", "dispute", "disputed", "cancel")
    }
    collections.open_dispute(actor=actor, invoice=invoices["disputed"], reason="Matrix dispute")
    promise = collections.record_promise(
        actor=actor,
        customer=customer,
        invoices=[invoices["cancel"]],
        amount=Decimal(30),
        promised_on=timezone.localdate() + timedelta(days=7),
    )
    return {
        "worklist_invoice": invoices["worklist"],
        "collections_promise_invoice": invoices["promise"],
        "collections_dispute_invoice": invoices["dispute"],
        "collections_disputed_invoice": invoices["disputed"],
        "collections_promise": promise,
    }


def url_kwargs(objects: dict) -> dict[str, str]:
    return {
        "overdue_invoice_pk": str(objects["worklist_invoice"].pk),
        "disputed_invoice_pk": str(objects["collections_disputed_invoice"].pk),
        "promise_pk": str(objects["collections_promise"].pk),
    }
