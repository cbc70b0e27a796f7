"""The aging in the REST API: the same figures as the aging page (billing.aging), as of any past
day, for those the page is for (AR, Finance Admins), a customer at a time or a page at a time."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.aging import AgingFilters, aging_page
from tests.api.billing_support import days_ago, error_fields, issued, payment, problem_type
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/aging/"


def test_the_aging_buckets_each_customers_open_invoices_by_days_past_due(api_as, ar_clerk, own_customer):
    issued(own_customer, "100.00", days=75)  # due 30 days after issue: 45 days past due
    issued(own_customer, "40.00", days=5)
    payment(own_customer, "15.00", days=1)

    response = api_as(ar_clerk).get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["currency"] == "USD" and body["as_of"] == timezone.localdate().isoformat()
    [row] = body["results"]
    assert row["customer"] == own_customer.pk and row["name"] == "Northwind Traders"
    assert row["buckets"] == {
        "current": "40.00",
        "days_1_30": "0.00",
        "days_31_60": "100.00",
        "days_61_90": "0.00",
        "over_90": "0.00",
    }
    assert (row["open_total"], row["unapplied"], row["total"]) == ("140.00", "15.00", "125.00")
    assert body["totals"]["customers"] == 1 and body["totals"]["total"] == "125.00"


def test_as_of_a_past_day_shows_what_was_owed_then(api_as, ar_clerk, own_customer):
    issued(own_customer, "100.00", days=10)
    payment(own_customer, "100.00", days=2, auto_apply=True)
    client = api_as(ar_clerk)

    before = client.get(URL + f"?as_of={days_ago(5).isoformat()}").json()
    today = client.get(URL).json()

    assert before["results"][0]["open_total"] == "100.00"
    assert today["results"] == []


def test_the_api_and_the_page_agree(api_as, ar_clerk, own_customer, others_customer):
    issued(own_customer, "100.00", days=75)
    issued(others_customer, "70.00", days=120)

    response = api_as(ar_clerk).get(URL + "?sort=name").json()
    page = aging_page(user=ar_clerk, filters=AgingFilters(as_of=timezone.localdate(), sort="name"))

    assert [row["customer"] for row in response["results"]] == [row.customer_id for row in page.rows]
    assert [Decimal(row["total"]) for row in response["results"]] == [row.total for row in page.rows]
    assert Decimal(response["totals"]["total"]) == page.totals.total


def test_the_customer_filter_gives_one_row_and_an_unknown_customer_is_404(
    api_as, ar_clerk, own_customer, others_customer
):
    issued(own_customer, "10.00")
    issued(others_customer, "20.00")
    client = api_as(ar_clerk)

    one = client.get(URL + f"?customer={others_customer.pk}").json()
    missing = client.get(URL + "?customer=999999")

    assert [row["customer"] for row in one["results"]] == [others_customer.pk]
    assert one["totals"]["total"] == "20.00"
    assert missing.status_code == 404


def test_owner_and_currency_filters_narrow_the_report(api_as, ar_clerk, sales_rep, own_customer, others_customer):
    issued(own_customer, "10.00")
    issued(others_customer, "20.00")
    client = api_as(ar_clerk)

    by_owner = client.get(URL + f"?owner={sales_rep.pk}").json()["results"]
    by_currency = client.get(URL + "?currency=eur").json()["results"]

    assert [row["customer"] for row in by_owner] == [own_customer.pk]
    assert by_currency == []


def test_pages_follow_each_other_through_the_cursor_and_cover_every_customer_once(api_as, ar_clerk, sales_rep):
    customers = [CustomerFactory(owner=sales_rep) for _ in range(5)]
    for n, customer in enumerate(customers, start=1):
        issued(customer, f"{n * 10}.00")
    client = api_as(ar_clerk)

    seen, url, pages = [], URL + "?page_size=2", 0
    while url:
        page = client.get(url).json()
        assert page["totals"]["customers"] == 5
        seen += [row["total"] for row in page["results"]]
        url, pages = page["next"], pages + 1

    assert seen == ["50.00", "40.00", "30.00", "20.00", "10.00"] and pages == 3
    back = client.get(client.get(URL + "?page_size=2").json()["next"]).json()["previous"]
    assert [row["total"] for row in client.get(back).json()["results"]] == ["50.00", "40.00"]


def test_a_future_day_a_bad_cursor_or_sort_is_refused(api_as, ar_clerk):
    client = api_as(ar_clerk)
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

    response = client.get(URL + f"?as_of={tomorrow}&cursor=nonsense&sort=best")

    assert response.status_code == 422
    assert problem_type(response) == "validation"
    assert {"as_of", "sort"} <= error_fields(response)
    assert client.get(URL + "?cursor=nonsense").status_code == 404


def test_reps_have_no_aging_as_they_have_no_aging_page(api_as, sales_rep, own_customer):
    issued(own_customer, "10.00")

    response = api_as(sales_rep).get(URL + f"?customer={own_customer.pk}")

    assert response.status_code == 403


def test_the_aging_costs_the_same_queries_for_many_customers(
    api_as, ar_clerk, sales_rep, own_customer, django_assert_max_num_queries
):
    client = api_as(ar_clerk)
    issued(own_customer, "10.00")
    client.get(URL)
    with django_assert_max_num_queries(25) as few:
        client.get(URL)
    for _ in range(12):
        issued(CustomerFactory(owner=sales_rep), "10.00", days=50)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(URL)

    assert response.json()["totals"]["customers"] == 13
