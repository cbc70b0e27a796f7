"""The API permission matrix: role × endpoint × own/other customer, with tokens.

The same rules as the pages, from crm.access: a rep reaches the customers they own (and what
hangs off them) and nothing else, by any route; AR and Finance Admins reach every customer;
only a Finance Admin creates customers. A customer out of reach is 404 (or, where it is named
in a body, "does not exist"), never 403.
"""

import pytest

from crm.models import Activity, Contact
from tests.factories import ActivityFactory, ContactFactory

pytestmark = pytest.mark.django_db

ROLES = ("sales_owner", "sales_other", "ar", "finance_admin")


@pytest.fixture
def people(sales_rep, other_rep, ar_clerk, finance_admin):
    return {"sales_owner": sales_rep, "sales_other": other_rep, "ar": ar_clerk, "finance_admin": finance_admin}


@pytest.fixture
def records(own_customer):
    return {
        "customer": own_customer,
        "contact": ContactFactory(customer=own_customer, name="Ada", email="ada@example.com"),
        "activity": ActivityFactory(customer=own_customer),
    }


# (method, url template, body or None, {role: expected status}); the customer is sales_owner's.
# The rows run in order against the same data.
OWN, OTHER, AR, ADMIN = ROLES
MATRIX = [
    ("get", "/api/v1/customers/{customer}/", None, {OWN: 200, OTHER: 404, AR: 200, ADMIN: 200}),
    ("patch", "/api/v1/customers/{customer}/", {"status": "on_hold"}, {OWN: 200, OTHER: 404, AR: 200, ADMIN: 200}),
    (
        "put",
        "/api/v1/customers/{customer}/",
        {"display_name": "Northwind", "currency": "USD"},
        {OWN: 200, OTHER: 404, AR: 200, ADMIN: 200},
    ),
    (
        "post",
        "/api/v1/customers/",
        {"display_name": "New", "currency": "USD"},
        {OWN: 403, OTHER: 403, AR: 403, ADMIN: 201},
    ),
    ("get", "/api/v1/customers/{customer}/contacts/", None, {OWN: 200, OTHER: 404, AR: 200, ADMIN: 200}),
    ("get", "/api/v1/customers/{customer}/activities/", None, {OWN: 200, OTHER: 404, AR: 200, ADMIN: 200}),
    ("get", "/api/v1/contacts/{contact}/", None, {OWN: 200, OTHER: 404, AR: 200, ADMIN: 200}),
    ("patch", "/api/v1/contacts/{contact}/", {"phone": "+1 555 0100"}, {OWN: 200, OTHER: 404, AR: 200, ADMIN: 200}),
    (
        "post",
        "/api/v1/contacts/",
        {"customer": "{customer}", "name": "Bo"},
        {OWN: 201, OTHER: 422, AR: 201, ADMIN: 201},
    ),
    ("get", "/api/v1/activities/{activity}/", None, {OWN: 200, OTHER: 404, AR: 200, ADMIN: 200}),
    (
        "post",
        "/api/v1/activities/",
        {"customer": "{customer}", "kind": "note", "text": "Called"},
        {OWN: 201, OTHER: 422, AR: 201, ADMIN: 201},
    ),
    ("get", "/api/v1/products/", None, {OWN: 200, OTHER: 200, AR: 200, ADMIN: 200}),
    # Last, as they change what the rows above read:
    # Deleting a contact is a Finance Admin's; a rep without the customer is told it is not there.
    ("delete", "/api/v1/contacts/{contact}/", None, {OWN: 403, OTHER: 404, AR: 403, ADMIN: 204}),
    # Reassigning is a Finance Admin's (crm.reassign_customer), even for the customer's owner.
    ("patch", "/api/v1/customers/{customer}/", {"owner": "{other_rep}"}, {OWN: 403, OTHER: 404, AR: 403, ADMIN: 200}),
]


def _fill(value, ids):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
def test_each_endpoint_answers_each_role_as_the_pages_rules_say(api_as, people, records, role):
    ids = {name: record.pk for name, record in records.items()} | {"other_rep": people[OTHER].pk}
    client = api_as(people[role])
    wrong = []
    for method, url, body, expected in MATRIX:
        response = getattr(client, method)(_fill(url, ids), _fill(body, ids), format="json")
        if response.status_code != expected[role]:
            wrong.append(f"{method.upper()} {url} {body or ''}: {response.status_code}, expected {expected[role]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/customers/",
        "/api/v1/customers/?search=Northwind",
        "/api/v1/customers/?search={account_number}",
        "/api/v1/customers/?owner={owner}",
        "/api/v1/contacts/",
        "/api/v1/contacts/?customer={customer}",
        "/api/v1/contacts/?search=ada",
        "/api/v1/activities/",
        "/api/v1/activities/?customer={customer}",
    ],
)
def test_another_reps_lists_searches_and_filters_never_show_the_customer_or_its_records(
    api_as, other_rep, records, url
):
    customer = records["customer"]
    ids = {"account_number": customer.account_number, "owner": customer.owner_id, "customer": customer.pk}

    response = api_as(other_rep).get(url.format(**ids))

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_a_reps_lists_show_their_own_customers_records(api_as, sales_rep, records, others_customer):
    ContactFactory(customer=others_customer)
    ActivityFactory(customer=others_customer)
    client = api_as(sales_rep)

    assert [row["id"] for row in client.get("/api/v1/customers/").json()["results"]] == [records["customer"].pk]
    assert [row["id"] for row in client.get("/api/v1/contacts/").json()["results"]] == [records["contact"].pk]
    assert [row["id"] for row in client.get("/api/v1/activities/").json()["results"]] == [records["activity"].pk]


def test_ar_sees_every_customer(api_as, ar_clerk, own_customer, others_customer):
    ids = {row["id"] for row in api_as(ar_clerk).get("/api/v1/customers/").json()["results"]}

    assert ids == {own_customer.pk, others_customer.pk}


def test_a_rep_cannot_log_an_activity_or_add_a_contact_on_another_reps_customer(api_as, other_rep, records):
    client = api_as(other_rep)
    customer = records["customer"].pk

    note = client.post("/api/v1/activities/", {"customer": customer, "kind": "note", "text": "x"}, format="json")
    contact = client.post("/api/v1/contacts/", {"customer": customer, "name": "Mallory"}, format="json")

    assert note.status_code == contact.status_code == 422
    assert Activity.objects.filter(customer=customer).count() == 1
    assert not Contact.objects.filter(name="Mallory").exists()


def test_a_session_has_the_same_rules_as_a_token(client, other_rep, records):
    client.force_login(other_rep)

    assert client.get(f"/api/v1/customers/{records['customer'].pk}/").status_code == 404


def test_a_session_write_needs_the_csrf_token(sales_rep, records):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(sales_rep)
    url = f"/api/v1/customers/{records['customer'].pk}/"

    response = client.patch(url, '{"status": "on_hold"}', content_type="application/json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_the_customer_list_reads_in_a_fixed_number_of_queries(api_as, ar_clerk, django_assert_max_num_queries):
    from tests.factories import CustomerFactory

    client = api_as(ar_clerk)
    CustomerFactory.create_batch(3)
    with django_assert_max_num_queries(12) as few:
        client.get("/api/v1/customers/")
    CustomerFactory.create_batch(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/api/v1/customers/")
    assert len(response.json()["results"]) == 33
