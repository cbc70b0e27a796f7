"""The REST API's URLs (api/urls.py) and the profile page (api/profile_urls.py).

The matrix walks them with a session, as a browser would; tests/api/ checks the same rules with
tokens, for every method (the permission matrix). An anonymous caller gets 401 from the API.
Lists answer every signed-in role (a rep's list holds only their customers); a customer's record,
or a record of one, answers those who see the customer, and 404 to a rep who does not.
`sales_owner` owns the matrix's customer and its contact and activity.
"""

from tests.url_rules import CUSTOMER_READERS, EVERYONE, SIGNED_IN, Rule

OUT_OF_REACH = {"sales_other": 404, "anonymous": 401}
ANONYMOUS_401 = {"anonymous": 401}

RULES = {
    # Anyone may trade a username and password for a token (the rule posts the owner rep's).
    "api:auth-token": Rule(
        EVERYONE,
        method="post",
        ok_statuses=(201,),
        data={"username": "rep-own", "password": "a-long-test-password", "name": "Matrix"},
        public=True,
    ),
    "api:token-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    # A token is its owner's: others are told it does not exist. DELETE revokes it.
    "api:token-detail": Rule(
        frozenset({"sales_owner"}),
        method="delete",
        ok_statuses=(204,),
        denied_statuses={"sales_other": 404, "ar": 404, "finance_admin": 404, "anonymous": 401},
    ),
    "api:schema": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:docs": Rule(SIGNED_IN),
    "api:customer-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:customer-detail": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:customer-contacts": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:customer-activities": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:contact-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:contact-detail": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:activity-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:activity-detail": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:product-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:product-detail": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    # The profile page is everyone's own; a token is revoked only by its owner.
    "profile:index": Rule(SIGNED_IN),
    "profile:create_token": Rule(SIGNED_IN, method="post", ok_statuses=(201,), data={"name": "Matrix"}),
    "profile:revoke_token": Rule(
        frozenset({"sales_owner"}),
        method="post",
        ok_statuses=(302,),
        denied_statuses={"sales_other": 404, "ar": 404, "finance_admin": 404},
    ),
}


def make_objects(customer, actor) -> dict:
    from api import services
    from billing.models import Product
    from crm.models import Activity, Contact

    owner = customer.owner
    token, _key = services.create_token(actor=owner, user=owner, name="Matrix token")
    return {
        "api_token": token,
        "api_contact": Contact.objects.filter(customer=customer).order_by("pk").first(),
        "api_activity": Activity.objects.filter(customer=customer).order_by("pk").first(),
        "api_product": Product.objects.order_by("pk").first(),
    }


def url_kwargs(objects: dict) -> dict[str, str]:
    return {
        "token_pk": str(objects["api_token"].pk),
        "contact_pk": str(objects["api_contact"].pk),
        "activity_pk": str(objects["api_activity"].pk),
        "product_pk": str(objects["api_product"].pk),
    }
