import pytest
from django.http import QueryDict
from django.urls import reverse

from crm.models import Activity
from crm.roles import Role
from tests.factories import ActivityFactory, ContactFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_rep_opening_another_reps_customer_by_id_gets_404_without_its_name(client, sales_rep, others_customer):
    client.force_login(sales_rep)
    response = client.get(reverse("crm:customer_detail", args=[others_customer.pk]))
    assert response.status_code == 404
    assert others_customer.display_name not in response.text


def test_a_rep_searching_for_another_reps_customer_finds_nothing(client, sales_rep, own_customer, others_customer):
    client.force_login(sales_rep)
    response = client.get(reverse("crm:customer_list"), {"q": others_customer.display_name})
    assert response.status_code == 200
    assert list(response.context["page"].object_list) == []
    assert reverse("crm:customer_detail", args=[others_customer.pk]) not in response.text
    assert others_customer.account_number not in response.text


def test_a_rep_cannot_log_activity_on_another_reps_customer(client, sales_rep, others_customer):
    client.force_login(sales_rep)
    response = client.post(
        reverse("crm:log_activity", args=[others_customer.pk]), {"kind": "note", "text": "Sneaky note"}
    )
    assert response.status_code == 404
    assert not Activity.objects.exists()


def test_the_customer_list_shows_a_reps_own_customers(client, sales_rep, own_customer, others_customer):
    client.force_login(sales_rep)
    response = client.get(reverse("crm:customer_list"))
    assert own_customer.display_name in response.text
    assert others_customer.display_name not in response.text


def test_search_matches_account_number_exactly(client, ar_clerk, own_customer, others_customer):
    client.force_login(ar_clerk)
    response = client.get(reverse("crm:customer_list"), {"q": own_customer.account_number})
    assert [c.pk for c in response.context["page"].object_list] == [own_customer.pk]


def test_the_owner_filter_narrows_an_ar_clerks_list(client, ar_clerk, other_rep, own_customer, others_customer):
    client.force_login(ar_clerk)
    response = client.get(reverse("crm:customer_list"), {"owner": other_rep.pk})
    assert [c.pk for c in response.context["page"].object_list] == [others_customer.pk]


def test_the_customer_list_pages_at_25(client, ar_clerk):
    CustomerFactory.create_batch(30)
    client.force_login(ar_clerk)
    first = client.get(reverse("crm:customer_list"))
    second = client.get(reverse("crm:customer_list"), QueryDict(first.context["next_query"]))
    assert (len(first.context["page"].object_list), len(second.context["page"].object_list)) == (25, 5)
    assert second.context["next_query"] == ""
    assert 'rel="prev"' in second.text


@pytest.mark.parametrize("rows", [3, 25])
def test_the_customer_list_query_count_does_not_grow_with_its_rows(
    client, sales_rep, django_assert_max_num_queries, rows
):
    for customer in CustomerFactory.create_batch(rows, owner=sales_rep):
        ActivityFactory(customer=customer)
    client.force_login(sales_rep)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("crm:customer_list"))
    assert response.status_code == 200


def _customer_page_queries(client, customer) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("crm:customer_detail", args=[customer.pk]))
    assert response.status_code == 200
    return len(queries)


# Every panel reads in a fixed number of queries; the page as a whole stays under this.
# DSO probes for anything dated after today (billing.metrics.dso) account for six of them.
CUSTOMER_PAGE_MAX_QUERIES = 36


def test_the_customer_page_query_count_does_not_grow_with_contacts_activity_or_documents(
    client, sales_rep, own_customer
):
    from config import audit
    from tests.billing.conftest import issue

    clerk = audit.system_actor("tests")
    client.force_login(sales_rep)
    ContactFactory(customer=own_customer)
    ActivityFactory(customer=own_customer)
    issue(clerk, own_customer, "10.00")
    few = _customer_page_queries(client, own_customer)

    ContactFactory.create_batch(5, customer=own_customer)
    ActivityFactory.create_batch(20, customer=own_customer, actor=UserFactory(role=Role.SALES))
    for _ in range(5):
        issue(clerk, own_customer, "25.00")
    many = _customer_page_queries(client, own_customer)

    assert many == few
    assert many <= CUSTOMER_PAGE_MAX_QUERIES


def test_the_customer_page_shows_contacts_and_the_timeline(client, sales_rep, own_customer):
    contact = ContactFactory(customer=own_customer, is_primary=True)
    activity = ActivityFactory(customer=own_customer, text="Agreed to pay on Friday.")
    client.force_login(sales_rep)
    response = client.get(reverse("crm:customer_detail", args=[own_customer.pk]))
    assert contact.name in response.text
    assert activity.text in response.text


def test_a_rep_adds_a_note_in_place_with_htmx(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = client.post(
        reverse("crm:log_activity", args=[own_customer.pk]),
        {"kind": "note", "text": "Prefers calls in the morning."},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert "<html" not in response.text  # a fragment for htmx to swap, not a whole page
    assert "Prefers calls in the morning." in response.text
    activity = Activity.objects.get()
    assert (activity.customer, activity.actor, activity.kind) == (own_customer, sales_rep, "note")


def test_a_rep_adds_a_note_without_javascript_and_is_sent_back_to_the_customer(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = client.post(
        reverse("crm:log_activity", args=[own_customer.pk]), {"kind": "call", "text": "Called the buyer."}
    )
    assert response.status_code == 302
    assert response.url == reverse("crm:customer_detail", args=[own_customer.pk])
    assert Activity.objects.filter(customer=own_customer, text="Called the buyer.").exists()


def test_an_empty_note_is_refused_with_a_message_and_nothing_is_written(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = client.post(reverse("crm:log_activity", args=[own_customer.pk]), {"kind": "note", "text": ""})
    assert response.status_code == 422
    assert "This field is required." in response.text
    assert not Activity.objects.exists()


@pytest.mark.parametrize(
    ("role", "start_page"),
    [
        (Role.SALES, "/customers/"),
        (Role.ACCOUNTS_RECEIVABLE, "/ar/worklist/"),
        (Role.FINANCE_ADMIN, "/console/"),
    ],
)
def test_home_sends_each_role_to_its_start_page(client, role, start_page):
    client.force_login(UserFactory(role=role))
    response = client.get("/")
    assert response.status_code == 302
    assert response.url == start_page


def test_the_history_tab_shows_who_changed_what(client, finance_admin, sales_rep, own_customer):
    from crm import services

    services.update_customer(actor=finance_admin, customer=own_customer, payment_terms_days=45)
    client.force_login(sales_rep)
    response = client.get(reverse("crm:customer_detail", args=[own_customer.pk]))
    entry = response.context["history"][0]
    assert entry.who == finance_admin
    assert ("payment terms days", 30, 45) in entry.changes


def test_home_tells_a_user_without_a_role_to_ask_for_one(client):
    client.force_login(UserFactory())
    response = client.get("/")
    assert response.status_code == 200
    assert "has no role yet" in response.text
