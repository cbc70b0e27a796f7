"""Promises to pay in the REST API: the collections desk records and cancels them through
billing.collections; reps read their own customers' promises."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import PromiseToPay
from tests.api.billing_support import error_fields, issued, promise, promise_url
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _next_week() -> str:
    return (timezone.localdate() + timedelta(days=7)).isoformat()


def test_ar_records_a_promise_for_everything_open_on_the_invoices(api_as, ar_clerk, own_customer):
    first, second = issued(own_customer, "40.00"), issued(own_customer, "60.00")

    response = api_as(ar_clerk).post(
        promise_url(),
        {"customer": own_customer.pk, "invoices": [first.pk, second.pk], "promised_on": _next_week(), "note": "Friday"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["amount"], body["currency"], body["status"]) == ("100.00", "USD", "open")
    assert body["invoices"] == sorted([first.pk, second.pk])
    assert PromiseToPay.objects.get().created_by == ar_clerk


def test_the_same_promise_sent_twice_is_recorded_once(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "40.00")
    client = api_as(ar_clerk)
    body = {"customer": own_customer.pk, "invoices": [invoice.pk], "amount": "40.00", "promised_on": _next_week()}

    first = client.post(promise_url(), body, format="json")
    second = client.post(promise_url(), body, format="json")

    assert first.json()["id"] == second.json()["id"]
    assert PromiseToPay.objects.count() == 1


def test_a_second_promise_on_an_invoice_under_an_open_one_is_refused(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "40.00")
    promise(own_customer, invoice)

    response = api_as(ar_clerk).post(
        promise_url(),
        {"customer": own_customer.pk, "invoices": [invoice.pk], "amount": "10.00", "promised_on": _next_week()},
        format="json",
    )

    assert response.status_code == 422 and error_fields(response) == {"invoices"}


def test_a_promise_beyond_what_is_open_or_too_far_ahead_is_refused(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "40.00")
    client = api_as(ar_clerk)
    far = (timezone.localdate() + timedelta(days=181)).isoformat()

    too_much = client.post(
        promise_url(),
        {"customer": own_customer.pk, "invoices": [invoice.pk], "amount": "41.00", "promised_on": _next_week()},
        format="json",
    )
    too_far = client.post(
        promise_url(), {"customer": own_customer.pk, "invoices": [invoice.pk], "promised_on": far}, format="json"
    )

    assert too_much.status_code == 422 and error_fields(too_much) == {"amount"}
    assert too_far.status_code == 422 and error_fields(too_far) == {"promised_on"}


def test_another_customers_invoice_cannot_be_promised(api_as, ar_clerk, own_customer, others_customer):
    elsewhere = issued(others_customer, "40.00")

    response = api_as(ar_clerk).post(
        promise_url(),
        {"customer": own_customer.pk, "invoices": [elsewhere.pk], "promised_on": _next_week()},
        format="json",
    )

    assert response.status_code == 422 and error_fields(response) == {"invoices"}


def test_ar_cancels_an_open_promise_with_a_reason(api_as, ar_clerk, own_customer):
    made = promise(own_customer, issued(own_customer, "40.00"))
    client = api_as(ar_clerk)

    without = client.post(promise_url(made, "cancel"), {"reason": ""}, format="json")
    cancelled = client.post(promise_url(made, "cancel"), {"reason": "Payment plan agreed"}, format="json")
    again = client.post(promise_url(made, "cancel"), {"reason": "Twice"}, format="json")

    assert without.status_code == 422 and error_fields(without) == {"reason"}
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert again.status_code == 422 and error_fields(again) == {"promise"}


def test_a_rep_reads_their_customers_promises(api_as, sales_rep, own_customer, others_customer):
    mine = promise(own_customer, issued(own_customer, "40.00"))
    promise(others_customer, issued(others_customer, "40.00"))

    response = api_as(sales_rep).get(promise_url())

    assert [row["id"] for row in response.json()["results"]] == [mine.pk]
    assert response.json()["results"][0]["amount"] == "40.00"


def test_filters_narrow_promises_by_status_and_invoice(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "40.00")
    kept_open = promise(own_customer, invoice)
    other = promise(own_customer, issued(own_customer, "10.00"))
    PromiseToPay.objects.filter(pk=other.pk).update(status="broken", settled_on=timezone.localdate())
    client = api_as(ar_clerk)

    by_status = client.get(promise_url() + "?status=open").json()["results"]
    by_invoice = client.get(promise_url() + f"?invoice={invoice.pk}").json()["results"]

    assert [row["id"] for row in by_status] == [kept_open.pk]
    assert [row["id"] for row in by_invoice] == [kept_open.pk]


def test_the_list_query_count_does_not_grow_with_promises(
    api_as, ar_clerk, own_customer, django_assert_max_num_queries
):
    client = api_as(ar_clerk)
    promise(own_customer, issued(own_customer, "5.00"))
    client.get(promise_url())
    with django_assert_max_num_queries(12) as few:
        client.get(promise_url())
    for _ in range(8):
        customer = CustomerFactory(owner=own_customer.owner)
        promise(customer, issued(customer, "20.00"))

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(promise_url())

    assert len(response.json()["results"]) == 9
    assert Decimal(response.json()["results"][0]["amount"]) == Decimal("20.00")
