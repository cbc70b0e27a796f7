"""Credit notes in the REST API: AR issues one (against an invoice, applied to what is open on it,
or on the customer's account), applies its credit and refunds what is left, through
billing.services."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import CreditNote
from tests.api.billing_support import (
    credit_note,
    credit_note_url,
    draft,
    error_fields,
    issued,
    problem_type,
)
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _issue(client, customer, *, invoice=None, amount="30.00", **extra):
    body = {
        "customer": customer.pk,
        "reason": "Returned goods",
        "lines": [{"description": "Returned goods", "unit_price": amount}],
        **extra,
    }
    if invoice is not None:
        body["invoice"] = invoice.pk
    return client.post(credit_note_url(), body, format="json")


def test_a_credit_note_against_an_invoice_is_applied_to_what_is_open_on_it(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "100.00")

    response = _issue(api_as(ar_clerk), own_customer, invoice=invoice, amount="30.00")

    assert response.status_code == 201
    body = response.json()
    assert body["number"].startswith("CN-") and body["invoice"] == invoice.pk
    assert (body["gross_total"], body["unapplied_amount"]) == ("30.00", "0.00")
    assert [(row["invoice"], row["amount"]) for row in body["allocations"]] == [(invoice.pk, "30.00")]
    invoice.refresh_from_db()
    assert invoice.open_amount == Decimal("70.00")


def test_a_standalone_credit_note_is_credit_on_the_account(api_as, ar_clerk, own_customer):
    response = _issue(api_as(ar_clerk), own_customer, amount="12.50")

    assert response.json()["unapplied_amount"] == "12.50" and response.json()["allocations"] == []
    own_customer.refresh_from_db()
    assert own_customer.ar_unapplied == Decimal("12.50")


def test_a_credit_beyond_the_invoices_total_is_refused(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "100.00")

    response = _issue(api_as(ar_clerk), own_customer, invoice=invoice, amount="100.01")

    assert response.status_code == 422 and problem_type(response) == "exceeds-balance"
    assert not CreditNote.objects.exists()


def test_a_draft_or_another_customers_invoice_cannot_be_credited(api_as, ar_clerk, own_customer):
    client = api_as(ar_clerk)
    a_draft = draft(own_customer, "10.00")
    elsewhere = issued(CustomerFactory(owner=own_customer.owner))

    on_draft = _issue(client, own_customer, invoice=a_draft)
    on_other = _issue(client, own_customer, invoice=elsewhere)

    assert on_draft.status_code == on_other.status_code == 422
    assert error_fields(on_draft) == error_fields(on_other) == {"invoice"}


def test_a_credit_note_needs_lines_a_reason_and_no_future_date(api_as, ar_clerk, own_customer):
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

    response = api_as(ar_clerk).post(
        credit_note_url(),
        {"customer": own_customer.pk, "reason": "", "issue_date": tomorrow, "lines": []},
        format="json",
    )

    assert response.status_code == 422
    assert error_fields(response) == {"reason", "issue_date", "lines"}


def test_ar_applies_a_credit_note_and_refunds_the_rest(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "100.00")
    credit = credit_note(own_customer, "50.00")
    client = api_as(ar_clerk)

    applied = client.post(
        credit_note_url(credit, "allocations"), {"invoice": invoice.pk, "amount": "20.00"}, format="json"
    )
    refunded = client.post(credit_note_url(credit, "refund"), {"amount": "30.00", "method": "cheque"}, format="json")

    assert applied.status_code == 201 and applied.json()["amount"] == "20.00"
    assert refunded.status_code == 201 and refunded.json()["credit_note"] == credit.pk
    detail = client.get(credit_note_url(credit)).json()
    assert detail["unapplied_amount"] == "0.00" and len(detail["refunds"]) == 1


def test_a_credit_note_issue_retried_with_its_key_issues_one(api_as, ar_clerk, own_customer):
    client = api_as(ar_clerk)
    body = {
        "customer": own_customer.pk,
        "reason": "Goodwill",
        "lines": [{"description": "Goodwill", "unit_price": "5"}],
    }

    first = client.post(credit_note_url(), body, format="json", HTTP_IDEMPOTENCY_KEY="cn-1")
    retry = client.post(credit_note_url(), body, format="json", HTTP_IDEMPOTENCY_KEY="cn-1")

    assert first.status_code == retry.status_code == 201 and retry.json() == first.json()
    assert CreditNote.objects.count() == 1


def test_filters_narrow_credit_notes_by_invoice_and_credit_left(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer, "100.00")
    against = credit_note(own_customer, "10.00", invoice=invoice)
    standalone = credit_note(own_customer, "10.00")
    client = api_as(ar_clerk)

    by_invoice = client.get(credit_note_url() + f"?invoice={invoice.pk}").json()["results"]
    with_credit = client.get(credit_note_url() + "?unapplied=true").json()["results"]

    assert [row["id"] for row in by_invoice] == [against.pk]
    assert [row["id"] for row in with_credit] == [standalone.pk]


def test_the_list_query_count_does_not_grow_with_credit_notes(
    api_as, ar_clerk, own_customer, django_assert_max_num_queries
):
    client = api_as(ar_clerk)
    credit_note(own_customer, "1.00")
    client.get(credit_note_url())
    with django_assert_max_num_queries(12) as few:
        client.get(credit_note_url())
    for _ in range(8):
        customer = CustomerFactory(owner=own_customer.owner)
        credit_note(customer, "20.00", invoice=issued(customer, "50.00"))
        credit_note(customer, "5.00")

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(credit_note_url())

    assert len(response.json()["results"]) == 17
