"""The billing API's permission matrix: role × endpoint × own/other customer.

The rules are the pages' (billing/views.py, invoice_views.py, collections_views.py, aging_views.py):
reps read their own customers' documents and prepare drafts for them; money, issuing and voiding
are Accounts Receivable's and the Finance Admin's; disputes and promises are the collections
desk's; the aging is AR's and the Finance Admin's. A document of a customer out of reach answers
404 by every route — list, detail, filter, search and the writes nested under it — and never 403;
one in reach without the right answers 403.

Every case runs against documents of `own_customer` (owned by the `sales_owner` rep, so out of
the `sales_other` rep's reach); each role's request is rolled back before the next role's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from billing import collections
from tests.api.billing_support import (
    credit_note,
    credit_note_url,
    draft,
    invoice_url,
    issued,
    payment,
    payment_url,
    promise,
    promise_url,
    system,
)
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "sales_owner", "sales_other", "ar", "finance_admin")


@dataclass(frozen=True)
class Case:
    method: str
    path: object  # (documents) -> str
    statuses: dict[str, int]  # by role; anonymous is always 401
    body: object = field(default_factory=lambda: lambda docs: {})


def everyone(status: int) -> dict[str, int]:
    return {"sales_owner": status, "sales_other": status, "ar": status, "finance_admin": status}


def readers(status: int = 200) -> dict[str, int]:
    """Those who see the customer read; the other rep is told it does not exist."""
    return {"sales_owner": status, "sales_other": 404, "ar": status, "finance_admin": status}


def ar_and_admin(status: int, *, own: int = 403, other: int = 404) -> dict[str, int]:
    """AR and Finance Admins; a rep is refused: 403 on their own customer's document (no right),
    404 on another's (out of reach), or 403 for both where no document names the customer."""
    return {"sales_owner": own, "sales_other": other, "ar": status, "finance_admin": status}


def _next_week() -> str:
    return (timezone.localdate() + timedelta(days=7)).isoformat()


CASES = {
    # Invoices
    "invoice list": Case("get", lambda d: invoice_url(), everyone(200)),
    "invoice list ?customer=": Case("get", lambda d: invoice_url() + f"?customer={d['customer'].pk}", readers()),
    "invoice detail": Case("get", lambda d: invoice_url(d["open"]), readers()),
    # A customer out of reach in a body is "does not exist" (422), as any unknown id.
    "invoice create": Case(
        "post",
        lambda d: invoice_url(),
        {"sales_owner": 201, "sales_other": 422, "ar": 201, "finance_admin": 201},
        lambda d: {"customer": d["customer"].pk, "lines": [{"description": "X", "unit_price": "5"}]},
    ),
    "draft patch": Case("patch", lambda d: invoice_url(d["draft"]), readers(), lambda d: {"memo": "Changed"}),
    "draft put": Case(
        "put",
        lambda d: invoice_url(d["draft"]),
        readers(),
        lambda d: {"lines": [{"description": "Y", "unit_price": "6"}]},
    ),
    "draft delete": Case("delete", lambda d: invoice_url(d["draft"]), readers(204)),
    "invoice issue": Case("post", lambda d: invoice_url(d["draft"], "issue"), ar_and_admin(200)),
    "invoice void": Case("post", lambda d: invoice_url(d["open"], "void"), ar_and_admin(200)),
    "invoice dispute": Case(
        "post", lambda d: invoice_url(d["open"], "dispute"), ar_and_admin(200), lambda d: {"reason": "Wrong"}
    ),
    "invoice resolve dispute": Case(
        "post",
        lambda d: invoice_url(d["disputed"], "resolve-dispute"),
        ar_and_admin(200),
        lambda d: {"resolution": "Credited"},
    ),
    # Payments
    "payment list": Case("get", lambda d: payment_url(), everyone(200)),
    "payment list ?customer=": Case("get", lambda d: payment_url() + f"?customer={d['customer'].pk}", readers()),
    "payment detail": Case("get", lambda d: payment_url(d["payment"]), readers()),
    "payment record": Case(
        "post",
        lambda d: payment_url(),
        ar_and_admin(201, own=403, other=403),
        lambda d: {
            "customer": d["customer"].pk,
            "amount": "10.00",
            "received_on": timezone.localdate().isoformat(),
            "method": "cash",
        },
    ),
    "payment allocate": Case(
        "post",
        lambda d: payment_url(d["payment"], "allocations"),
        ar_and_admin(201),
        lambda d: {"invoice": d["open"].pk, "amount": "1.00"},
    ),
    "payment auto-allocate": Case("post", lambda d: payment_url(d["payment"], "auto-allocate"), ar_and_admin(200)),
    "payment refund": Case(
        "post",
        lambda d: payment_url(d["payment"], "refund"),
        ar_and_admin(201),
        lambda d: {"amount": "1.00", "method": "cash"},
    ),
    # Credit notes
    "credit note list": Case("get", lambda d: credit_note_url(), everyone(200)),
    "credit note list ?customer=": Case(
        "get", lambda d: credit_note_url() + f"?customer={d['customer'].pk}", readers()
    ),
    "credit note detail": Case("get", lambda d: credit_note_url(d["credit_note"]), readers()),
    "credit note issue": Case(
        "post",
        lambda d: credit_note_url(),
        ar_and_admin(201, own=403, other=403),
        lambda d: {
            "customer": d["customer"].pk,
            "reason": "Goodwill",
            "lines": [{"description": "Goodwill", "unit_price": "2"}],
        },
    ),
    "credit note allocate": Case(
        "post",
        lambda d: credit_note_url(d["credit_note"], "allocations"),
        ar_and_admin(201),
        lambda d: {"invoice": d["open"].pk, "amount": "1.00"},
    ),
    "credit note refund": Case(
        "post",
        lambda d: credit_note_url(d["credit_note"], "refund"),
        ar_and_admin(201),
        lambda d: {"amount": "1.00", "method": "cheque"},
    ),
    # Promises to pay
    "promise list": Case("get", lambda d: promise_url(), everyone(200)),
    "promise list ?customer=": Case("get", lambda d: promise_url() + f"?customer={d['customer'].pk}", readers()),
    "promise detail": Case("get", lambda d: promise_url(d["promise"]), readers()),
    "promise record": Case(
        "post",
        lambda d: promise_url(),
        ar_and_admin(201, own=403, other=403),
        lambda d: {"customer": d["customer"].pk, "invoices": [d["open"].pk], "promised_on": _next_week()},
    ),
    "promise cancel": Case(
        "post", lambda d: promise_url(d["promise"], "cancel"), ar_and_admin(200), lambda d: {"reason": "Mistake"}
    ),
    # The aging (no document: a rep is refused the report itself)
    "aging": Case("get", lambda d: "/api/v1/aging/", ar_and_admin(200, own=403, other=403)),
    "aging ?customer=": Case(
        "get", lambda d: f"/api/v1/aging/?customer={d['customer'].pk}", ar_and_admin(200, own=403, other=403)
    ),
}


@pytest.fixture
def documents(own_customer):
    """One document of each kind on the owner rep's customer, in the state its actions need."""
    customer = own_customer
    disputed = issued(customer, "30.00")
    collections.open_dispute(actor=system(), invoice=disputed, reason="Matrix")
    promised = issued(customer, "20.00")
    return {
        "customer": customer,
        "draft": draft(customer, "15.00"),
        "open": issued(customer, "100.00"),
        "disputed": disputed,
        "payment": payment(customer, "50.00"),
        "credit_note": credit_note(customer, "25.00"),
        "promise": promise(customer, promised),
    }


@pytest.fixture
def clients(sales_rep, other_rep, ar_clerk, finance_admin):
    from rest_framework.test import APIClient

    return {
        "anonymous": APIClient(),
        "sales_owner": token_client(sales_rep),
        "sales_other": token_client(other_rep),
        "ar": token_client(ar_clerk),
        "finance_admin": token_client(finance_admin),
    }


@pytest.mark.parametrize("name", list(CASES))
def test_each_role_gets_exactly_the_pages_answer(name, documents, clients):
    case = CASES[name]
    expected = {"anonymous": 401, **case.statuses}
    url, body = case.path(documents), case.body(documents)
    wrong = []
    for role in ROLES:
        with transaction.atomic():
            response = getattr(clients[role], case.method)(url, body, format="json")
            transaction.set_rollback(True)
        if response.status_code != expected[role]:
            wrong.append(f"{role}: {response.status_code}, not {expected[role]} ({response.content[:200]!r})")
    assert not wrong, f"{case.method.upper()} {url}\n" + "\n".join(wrong)


def test_a_rep_finds_nothing_of_another_reps_customer_by_any_route(api_as, other_rep, documents):
    """The other rep: lists, search and filters hold none of the customer's documents; details and
    the writes nested under them answer 404."""
    client = api_as(other_rep)
    invoice = documents["open"]
    for url in (invoice_url(), payment_url(), credit_note_url(), promise_url()):
        assert client.get(url).json()["results"] == [], url
    assert client.get(invoice_url() + f"?search={invoice.number}").json()["results"] == []
    assert client.get(invoice_url() + f"?number={invoice.number}").json()["results"] == []
    assert client.get(promise_url() + f"?invoice={invoice.pk}").json()["results"] == []
    assert client.get(credit_note_url() + f"?invoice={invoice.pk}").json()["results"] == []
    for url in (
        invoice_url(invoice),
        payment_url(documents["payment"]),
        credit_note_url(documents["credit_note"]),
        promise_url(documents["promise"]),
    ):
        assert client.get(url).status_code == 404, url


def test_an_out_of_reach_answer_is_the_same_as_for_a_document_that_does_not_exist(api_as, other_rep, documents):
    client = api_as(other_rep)
    real = client.post(invoice_url(documents["draft"], "issue"), {}, format="json")
    missing = client.post("/api/v1/invoices/999999/issue/", {}, format="json")

    assert real.status_code == missing.status_code == 404
    assert real.json()["detail"] == missing.json()["detail"]


def test_a_rep_sees_their_own_customers_documents_in_every_list(api_as, sales_rep, documents):
    client = api_as(sales_rep)
    invoices = {row["id"] for row in client.get(invoice_url()).json()["results"]}

    assert {documents["draft"].pk, documents["open"].pk} <= invoices
    assert [row["id"] for row in client.get(payment_url()).json()["results"]] == [documents["payment"].pk]
    assert [row["id"] for row in client.get(credit_note_url()).json()["results"]] == [documents["credit_note"].pk]
    assert [row["id"] for row in client.get(promise_url()).json()["results"]] == [documents["promise"].pk]
