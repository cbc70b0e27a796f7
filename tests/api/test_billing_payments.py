"""Payments in the REST API: AR records money (applied to the oldest invoices unless told not
to), applies it by hand or automatically and refunds what is left, through billing.services;
an Idempotency-Key makes a retried POST record nothing twice."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Payment, PaymentAllocation, Refund
from tests.api.billing_support import days_ago, error_fields, issued, payment, payment_url, problem_type
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _record(client, customer, amount="150.00", key="pay-1", **extra):
    body = {
        "customer": customer.pk,
        "amount": amount,
        "received_on": days_ago(1).isoformat(),
        "method": "bank_transfer",
        "reference": "SEPA 1",
        **extra,
    }
    return client.post(payment_url(), body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_recorded_payment_is_applied_to_the_oldest_invoices_and_the_rest_is_credit(api_as, ar_clerk, own_customer):
    older = issued(own_customer, "100.00", days=40)
    newer = issued(own_customer, "80.00", days=10)

    response = _record(api_as(ar_clerk), own_customer, "150.00")

    assert response.status_code == 201
    body = response.json()
    assert (body["amount"], body["currency"], body["status"], body["unapplied_amount"]) == (
        "150.00",
        "USD",
        "cleared",
        "0.00",
    )
    assert [(row["invoice"], row["amount"]) for row in body["allocations"]] == [
        (older.pk, "100.00"),
        (newer.pk, "50.00"),
    ]
    assert response["Location"] == payment_url(Payment.objects.get())


def test_without_auto_apply_the_whole_payment_is_credit(api_as, ar_clerk, own_customer):
    issued(own_customer)

    response = _record(api_as(ar_clerk), own_customer, "60.00", auto_apply=False)

    assert response.json()["allocations"] == [] and response.json()["unapplied_amount"] == "60.00"


def test_a_payment_retried_with_its_key_replays_the_first_answer_and_records_one_payment(
    api_as, ar_clerk, own_customer
):
    client = api_as(ar_clerk)

    first = _record(client, own_customer)
    retry = _record(client, own_customer)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == 1
    own_customer.refresh_from_db()
    assert own_customer.ar_unapplied == Decimal("150.00")


def test_the_same_key_for_a_different_payment_is_refused_and_records_nothing(api_as, ar_clerk, own_customer):
    client = api_as(ar_clerk)
    _record(client, own_customer, "150.00")

    response = _record(client, own_customer, "151.00")

    assert response.status_code == 422 and problem_type(response) == "idempotency-key-reused"
    assert list(Payment.objects.values_list("amount", flat=True)) == [Decimal("150.00")]


def test_a_payment_received_in_the_future_or_in_another_currency_is_refused(api_as, ar_clerk, own_customer):
    client = api_as(ar_clerk)
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

    future = _record(client, own_customer, received_on=tomorrow, key="a")
    euros = _record(client, own_customer, currency="EUR", key="b")

    assert future.status_code == 422 and error_fields(future) == {"received_on"}
    assert euros.status_code == 422 and problem_type(euros) == "currency-mismatch"
    assert not Payment.objects.exists()


def test_ar_applies_a_payment_to_an_invoice_by_hand(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "100.00")
    credit = payment(own_customer, "60.00")

    response = api_as(ar_clerk).post(
        payment_url(credit, "allocations"), {"invoice": invoice.pk, "amount": "25.00"}, format="json"
    )

    assert response.status_code == 201
    assert (response.json()["invoice"], response.json()["amount"]) == (invoice.pk, "25.00")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.open_amount) == ("partially_paid", Decimal("75.00"))


def test_an_allocation_without_an_amount_applies_as_much_as_both_allow(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "100.00")
    credit = payment(own_customer, "60.00")

    response = api_as(ar_clerk).post(payment_url(credit, "allocations"), {"invoice": invoice.pk}, format="json")

    assert response.json()["amount"] == "60.00"


def test_applying_more_than_is_left_is_refused_and_changes_nothing(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "100.00")
    credit = payment(own_customer, "60.00")

    response = api_as(ar_clerk).post(
        payment_url(credit, "allocations"), {"invoice": invoice.pk, "amount": "70.00"}, format="json"
    )

    assert response.status_code == 422 and problem_type(response) == "exceeds-balance"
    assert not PaymentAllocation.objects.exists()


def test_another_customers_invoice_is_not_one_to_apply_to(api_as, ar_clerk, own_customer, others_customer):
    elsewhere = issued(others_customer)
    credit = payment(own_customer, "60.00")

    response = api_as(ar_clerk).post(payment_url(credit, "allocations"), {"invoice": elsewhere.pk}, format="json")

    assert response.status_code == 422 and error_fields(response) == {"invoice"}


def test_auto_allocate_applies_the_credit_oldest_first_skipping_disputed_invoices(api_as, ar_clerk, own_customer):
    from billing import collections
    from tests.api.billing_support import system

    disputed = issued(own_customer, "30.00", days=50)
    collections.open_dispute(actor=system(), invoice=disputed, reason="Wrong price")
    oldest = issued(own_customer, "40.00", days=30)
    credit = payment(own_customer, "100.00")

    response = api_as(ar_clerk).post(payment_url(credit, "auto-allocate"), format="json")

    assert response.status_code == 200
    assert [row["invoice"] for row in response.json()["allocations"]] == [oldest.pk]
    assert response.json()["unapplied_amount"] == "60.00"


def test_ar_refunds_what_is_left_of_a_payment(api_as, ar_clerk, own_customer):
    credit = payment(own_customer, "60.00")

    response = api_as(ar_clerk).post(
        payment_url(credit, "refund"), {"amount": "60.00", "method": "bank_transfer"}, format="json"
    )

    assert response.status_code == 201
    assert (response.json()["amount"], response.json()["refunded_on"]) == ("60.00", timezone.localdate().isoformat())
    credit.refresh_from_db()
    assert (credit.unapplied_amount, credit.status) == (Decimal("0.00"), "refunded")


def test_refunding_more_than_is_left_is_refused(api_as, ar_clerk, own_customer):
    credit = payment(own_customer, "60.00")

    response = api_as(ar_clerk).post(
        payment_url(credit, "refund"), {"amount": "61.00", "method": "cash"}, format="json"
    )

    assert response.status_code == 422 and problem_type(response) == "exceeds-balance"
    assert not Refund.objects.exists()


def test_a_refund_retried_with_its_key_pays_back_once(api_as, ar_clerk, own_customer):
    credit = payment(own_customer, "60.00")
    client = api_as(ar_clerk)
    body = {"amount": "20.00", "method": "cash"}

    first = client.post(payment_url(credit, "refund"), body, format="json", HTTP_IDEMPOTENCY_KEY="refund-1")
    retry = client.post(payment_url(credit, "refund"), body, format="json", HTTP_IDEMPOTENCY_KEY="refund-1")

    assert first.status_code == retry.status_code == 201 and retry.json() == first.json()
    assert Refund.objects.count() == 1


def test_filters_narrow_payments_by_customer_method_dates_amount_and_credit_left(api_as, ar_clerk, own_customer):
    other = CustomerFactory(owner=own_customer.owner)
    used = payment(own_customer, "10.00", days=30)
    issued(own_customer, "10.00", days=40)
    from billing import services
    from tests.api.billing_support import system

    services.auto_allocate(actor=system(), payment=used)
    left = payment(other, "500.00", days=2)
    client = api_as(ar_clerk)

    def ids(query):
        response = client.get(payment_url() + "?" + query)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(f"customer={other.pk}") == {left.pk}
    assert ids("unapplied=true") == {left.pk}
    assert ids("amount_min=100&method=bank_transfer") == {left.pk}
    assert ids(f"received_to={days_ago(10).isoformat()}") == {used.pk}


def test_the_list_query_count_does_not_grow_with_payments_allocations_and_refunds(
    api_as, ar_clerk, own_customer, django_assert_max_num_queries
):
    from billing import services
    from tests.api.billing_support import system

    client = api_as(ar_clerk)
    payment(own_customer, "5.00")
    client.get(payment_url())
    with django_assert_max_num_queries(12) as few:
        client.get(payment_url())
    for _ in range(10):
        customer = CustomerFactory(owner=own_customer.owner)
        issued(customer, "30.00")
        issued(customer, "30.00")
        credit = payment(customer, "80.00", auto_apply=True)
        services.refund_credit(
            actor=system(), payment=credit, amount=Decimal("5.00"), refunded_on=timezone.localdate(), method="cash"
        )

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(payment_url())

    assert len(response.json()["results"]) == 11
