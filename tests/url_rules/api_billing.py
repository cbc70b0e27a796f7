"""The billing resources of the REST API (billing/api.py): invoices, payments, credit notes,
promises to pay and the aging.

The matrix walks them with a session, as a browser would, on the documents of the matrix's
customer (owned by `sales_owner`): `invoice_pk` is its open invoice, `payment_pk` its payment,
`credit_note_pk` the panel's credit note, `promise_pk` the collections promise (tests/url_rules/
payments.py, collections.py). Lists answer every signed-in role (a rep's list holds only their
customers' documents); a document answers those who see its customer and 404 to a rep who does
not.

The actions are POSTs of JSON; the matrix posts a form, which the API refuses with 415 once the
caller has passed every access check (signed in, the document in reach, the role's right) and
before anything is written. So 415 is "reached" here, and the refusals are the pages': a rep gets
403 on their own customer's document and 404 on another's (401 without credentials). What each
action does for each role is tests/api/test_billing_permissions.py's, with JSON.
"""

from tests.url_rules import AR_AND_ADMIN, CUSTOMER_READERS, SIGNED_IN, Rule

ANONYMOUS_401 = {"anonymous": 401}
OUT_OF_REACH = {"sales_other": 404, "anonymous": 401}
MONEY_REFUSED = {"sales_owner": 403, "sales_other": 404, "anonymous": 401}
FORM_REFUSED = (415,)


def _action(allowed=AR_AND_ADMIN, denied=MONEY_REFUSED) -> Rule:
    return Rule(allowed, method="post", ok_statuses=FORM_REFUSED, denied_statuses=denied)


RULES = {
    "api:invoice-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:invoice-detail": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:invoice-issue": _action(),
    "api:invoice-void": _action(),
    "api:invoice-dispute": _action(),
    "api:invoice-resolve-dispute": _action(),
    "api:payment-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:payment-detail": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:payment-allocations": _action(),
    "api:payment-auto-allocate": _action(),
    "api:payment-refund": _action(),
    "api:credit-note-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:credit-note-detail": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:credit-note-allocations": _action(),
    "api:credit-note-refund": _action(),
    "api:promise-list": Rule(SIGNED_IN, denied_statuses=ANONYMOUS_401),
    "api:promise-detail": Rule(CUSTOMER_READERS, denied_statuses=OUT_OF_REACH),
    "api:promise-cancel": _action(),
    # The aging page's rule: AR and Finance Admins; reps are refused the report itself.
    "api:aging-list": Rule(AR_AND_ADMIN, denied_statuses={"sales_owner": 403, "sales_other": 403, "anonymous": 401}),
}
