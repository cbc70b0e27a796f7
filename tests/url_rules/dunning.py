"""The dunning page: Accounts Receivable and Finance Admins; a sales rep is refused with 403 (the
page is not about one customer, so nothing leaks by saying no)."""

from django.utils import timezone

from tests.url_rules import AR_AND_ADMIN, Rule

SALES_REFUSED = {"sales_owner": 403, "sales_other": 403}

RULES = {
    "dunning:page": Rule(AR_AND_ADMIN, denied_statuses=SALES_REFUSED),
    "dunning:letter_preview": Rule(AR_AND_ADMIN, denied_statuses=SALES_REFUSED),
    "dunning:send": Rule(AR_AND_ADMIN, method="post", ok_statuses=(302,), denied_statuses=SALES_REFUSED),
    "dunning:retry": Rule(AR_AND_ADMIN, method="post", ok_statuses=(302,), denied_statuses=SALES_REFUSED),
}


def make_objects(customer, actor) -> dict:
    """A failed letter to retry: an overdue invoice of a customer without any contact."""
    from billing import dunning
    from billing.models import DunningLetter
    from crm.models import Customer
    from tests.billing.conftest import issue
    from tests.factories import CustomerFactory

    silent = CustomerFactory(owner=customer.owner, display_name="No Address Ltd")
    issue(actor, silent, "75.00")
    dunning.run(as_of=timezone.localdate(), actor=actor, customers=Customer.objects.filter(pk=silent.pk))
    return {"dunning_letter": DunningLetter.objects.get(customer=silent, status=DunningLetter.Status.FAILED)}


def url_kwargs(objects: dict) -> dict[str, str]:
    return {"letter_pk": str(objects["dunning_letter"].pk)}
