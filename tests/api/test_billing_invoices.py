"""Invoices in the REST API: drafts are created, changed (If-Match honoured) and discarded by those
who may prepare them; AR issues, voids and records disputes, through the same services as the
pages, and the services' refusals come back as problem documents."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, NumberSequence
from ledger.models import JournalEntry
from tests.api.billing_support import (
    days_ago,
    draft,
    error_fields,
    invoice_url,
    issued,
    payment,
    problem_type,
)
from tests.api.billing_support import widget as product
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

TWO_LINES = [
    {"description": "Consulting", "unit_price": "100.00", "quantity": "2"},
    {"description": "Travel", "unit_price": "35.50"},
]


def test_a_rep_creates_a_draft_for_their_customer_priced_by_the_service(api_as, sales_rep, own_customer):
    response = api_as(sales_rep).post(
        invoice_url(), {"customer": own_customer.pk, "memo": "PO 7", "lines": TWO_LINES}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft" and body["number"] is None
    assert (body["currency"], body["gross_total"], body["memo"]) == ("USD", "235.50", "PO 7")
    assert [line["gross"] for line in body["lines"]] == ["200.00", "35.50"]
    invoice = Invoice.objects.get(pk=body["id"])
    assert invoice.created_by == sales_rep and invoice.history.latest().history_user == sales_rep
    assert response["Location"] == invoice_url(invoice) and response["ETag"]


def test_a_line_with_a_product_takes_the_products_price_and_tax(api_as, sales_rep, own_customer):
    widget = product()
    response = api_as(sales_rep).post(
        invoice_url(), {"customer": own_customer.pk, "lines": [{"product": widget.pk, "quantity": "3"}]}, format="json"
    )

    line = response.json()["lines"][0]
    assert (line["description"], line["unit_price"], line["net"], line["tax"]) == ("Widget", "10.0000", "30.00", "6.00")


def test_a_line_without_a_price_or_product_is_refused_with_its_field_and_nothing_is_written(
    api_as, sales_rep, own_customer
):
    response = api_as(sales_rep).post(
        invoice_url(), {"customer": own_customer.pk, "lines": [{"description": "Free?"}]}, format="json"
    )

    assert response.status_code == 422
    assert error_fields(response) == {"lines.0.unit_price"}
    assert not Invoice.objects.exists()


def test_an_invoice_without_lines_or_with_a_past_due_date_is_refused(api_as, sales_rep, own_customer):
    client = api_as(sales_rep)
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()

    response = client.post(
        invoice_url(), {"customer": own_customer.pk, "due_date": yesterday, "lines": []}, format="json"
    )

    assert response.status_code == 422
    assert error_fields(response) == {"lines", "due_date"}


def test_a_draft_for_a_customer_out_of_reach_is_refused_as_if_it_did_not_exist(api_as, sales_rep, others_customer):
    response = api_as(sales_rep).post(
        invoice_url(), {"customer": others_customer.pk, "lines": TWO_LINES}, format="json"
    )

    assert response.status_code == 422
    assert error_fields(response) == {"customer"}
    assert "does not exist" in response.json()["errors"][0]["detail"]
    assert not Invoice.objects.exists()


def test_the_list_holds_only_the_reps_customers_invoices_with_their_lines(
    api_as, sales_rep, own_customer, others_customer
):
    mine = draft(own_customer, "10.00", "5.00")
    draft(others_customer, "99.00")

    response = api_as(sales_rep).get(invoice_url())

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [mine.pk]
    assert len(response.json()["results"][0]["lines"]) == 2


def test_filters_narrow_by_status_currency_dates_and_amounts(api_as, ar_clerk, own_customer):
    open_one = issued(own_customer, "100.00", days=40)
    big = issued(own_customer, "900.00", days=2)
    a_draft = draft(own_customer, "5.00")
    client = api_as(ar_clerk)

    def ids(query):
        response = client.get(invoice_url() + "?" + query)
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("status=draft") == {a_draft.pk}
    assert ids("status=issued&status=draft") == {open_one.pk, big.pk, a_draft.pk}
    assert ids("currency=usd&gross_total_min=500") == {big.pk}
    assert ids(f"issued_to={days_ago(10).isoformat()}") == {open_one.pk}
    assert ids(f"customer={own_customer.pk}&open_amount_max=100") == {open_one.pk, a_draft.pk}
    assert ids(f"search={big.number}") == {big.pk}
    assert ids("disputed=false&status=issued") == {open_one.pk, big.pk}
    assert client.get(invoice_url() + "?disputed=maybe").status_code == 422


def test_ordering_and_cursor_pages_walk_every_invoice_once(api_as, ar_clerk, own_customer):
    invoices = [draft(own_customer, f"{n}.00") for n in range(1, 6)]
    client = api_as(ar_clerk)

    seen, url = [], invoice_url() + "?ordering=-gross_total&page_size=2"
    while url:
        page = client.get(url).json()
        seen += [row["gross_total"] for row in page["results"]]
        url = page["next"]

    assert seen == ["5.00", "4.00", "3.00", "2.00", "1.00"]
    assert len(invoices) == 5


def test_a_draft_is_patched_with_its_etag_and_a_stale_etag_is_refused_with_412(api_as, sales_rep, own_customer):
    invoice = draft(own_customer, "10.00")
    client = api_as(sales_rep)
    etag = client.get(invoice_url(invoice))["ETag"]

    changed = client.patch(invoice_url(invoice), {"memo": "PO 9"}, format="json", HTTP_IF_MATCH=etag)
    stale = client.patch(invoice_url(invoice), {"memo": "Lost update"}, format="json", HTTP_IF_MATCH=etag)

    assert changed.status_code == 200 and changed.json()["memo"] == "PO 9"
    assert changed.json()["gross_total"] == "10.00"  # the lines were left out, so they stay
    assert changed["ETag"] != etag
    assert stale.status_code == 412 and problem_type(stale) == "precondition-failed"
    invoice.refresh_from_db()
    assert invoice.memo == "PO 9"


def test_a_put_replaces_the_drafts_lines_and_repriced_totals(api_as, sales_rep, own_customer):
    invoice = draft(own_customer, "10.00", "20.00")

    response = api_as(sales_rep).put(
        invoice_url(invoice), {"lines": [{"description": "Only line", "unit_price": "7.25"}]}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["gross_total"] == "7.25"
    assert list(InvoiceLine.objects.filter(invoice=invoice).values_list("description", flat=True)) == ["Only line"]


def test_an_issued_invoice_cannot_be_changed_or_discarded(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer)
    client = api_as(ar_clerk)

    patched = client.patch(invoice_url(invoice), {"memo": "Too late"}, format="json")
    deleted = client.delete(invoice_url(invoice))

    assert patched.status_code == deleted.status_code == 409
    assert problem_type(patched) == "invalid-state"
    assert "credit note" in patched.json()["detail"]
    assert Invoice.objects.get(pk=invoice.pk).memo == ""


def test_a_rep_discards_their_draft(api_as, sales_rep, own_customer):
    invoice = draft(own_customer, "10.00")

    response = api_as(sales_rep).delete(invoice_url(invoice))

    assert response.status_code == 204
    assert not Invoice.objects.filter(pk=invoice.pk).exists()


def test_ar_issues_a_draft_which_is_numbered_dated_and_posted(api_as, ar_clerk, own_customer):
    invoice = draft(own_customer, "120.00")
    entries = JournalEntry.objects.count()

    response = api_as(ar_clerk).post(invoice_url(invoice, "issue"), {}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "issued" and body["number"].startswith("INV-")
    assert body["issue_date"] == timezone.localdate().isoformat()
    assert body["open_amount"] == "120.00"
    assert body["due_date"] == (timezone.localdate() + timedelta(days=own_customer.payment_terms_days)).isoformat()
    assert JournalEntry.objects.count() == entries + 1


def test_an_issue_date_in_the_future_is_refused(api_as, ar_clerk, own_customer):
    invoice = draft(own_customer, "10.00")
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

    response = api_as(ar_clerk).post(invoice_url(invoice, "issue"), {"issue_date": tomorrow}, format="json")

    assert response.status_code == 422 and error_fields(response) == {"issue_date"}
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"


def test_issuing_twice_is_refused_as_the_document_is_not_a_draft(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer)

    response = api_as(ar_clerk).post(invoice_url(invoice, "issue"), {}, format="json")

    assert response.status_code == 409 and problem_type(response) == "invalid-state"


def test_an_issue_retried_with_its_idempotency_key_replays_the_first_answer_and_draws_one_number(
    api_as, ar_clerk, own_customer
):
    invoice = draft(own_customer, "10.00")
    client = api_as(ar_clerk)

    first = client.post(invoice_url(invoice, "issue"), {}, format="json", HTTP_IDEMPOTENCY_KEY="issue-1")
    retry = client.post(invoice_url(invoice, "issue"), {}, format="json", HTTP_IDEMPOTENCY_KEY="issue-1")

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json() and retry["Idempotent-Replayed"] == "true"
    assert NumberSequence.objects.get(series="INV").next_number == 2


def test_ar_voids_an_invoice_nothing_was_applied_to(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer)

    response = api_as(ar_clerk).post(invoice_url(invoice, "void"), {}, format="json")

    assert response.status_code == 200
    assert (response.json()["status"], response.json()["open_amount"]) == ("void", "0.00")
    own_customer.refresh_from_db()
    assert own_customer.ar_open == Decimal("0.00")


def test_an_invoice_with_a_payment_applied_cannot_be_voided(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer)
    payment(own_customer, "10.00", auto_apply=True)

    response = api_as(ar_clerk).post(invoice_url(invoice, "void"), {}, format="json")

    assert response.status_code == 409 and problem_type(response) == "invalid-state"
    assert Invoice.objects.get(pk=invoice.pk).status == "partially_paid"


def test_ar_records_a_dispute_and_resolves_it(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer)
    client = api_as(ar_clerk)

    disputed = client.post(invoice_url(invoice, "dispute"), {"reason": "Damaged goods"}, format="json")
    again = client.post(invoice_url(invoice, "dispute"), {"reason": "Twice"}, format="json")
    resolved = client.post(invoice_url(invoice, "resolve-dispute"), {"resolution": "Replaced"}, format="json")

    assert disputed.status_code == 200
    assert (disputed.json()["disputed"], disputed.json()["dispute_reason"]) == (True, "Damaged goods")
    assert again.status_code == 422 and error_fields(again) == {"invoice"}
    assert resolved.status_code == 200 and resolved.json()["disputed"] is False


def test_a_dispute_needs_a_reason(api_as, ar_clerk, own_customer):
    invoice = issued(own_customer)

    response = api_as(ar_clerk).post(invoice_url(invoice, "dispute"), {"reason": ""}, format="json")

    assert response.status_code == 422 and error_fields(response) == {"reason"}


def test_a_period_lock_refuses_back_dated_issue_with_409(api_as, ar_clerk, finance_admin, own_customer):
    from ledger import services as ledger_services

    ledger_services.lock_period(actor=finance_admin, locked_through=days_ago(5), reason="Closed")
    invoice = draft(own_customer, "10.00")

    response = api_as(ar_clerk).post(
        invoice_url(invoice, "issue"), {"issue_date": days_ago(10).isoformat()}, format="json"
    )

    assert response.status_code == 409 and problem_type(response) == "period-locked"
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"


def test_the_list_query_count_does_not_grow_with_invoices_or_lines(
    api_as, ar_clerk, own_customer, django_assert_max_num_queries
):
    client = api_as(ar_clerk)
    draft(own_customer, "1.00")
    client.get(invoice_url())  # warm: the token's last use, permission caches
    with django_assert_max_num_queries(12) as few:
        client.get(invoice_url())
    for n in range(15):
        customer = CustomerFactory(owner=own_customer.owner)
        draft(customer, *[f"{n + line}.00" for line in range(1, 4)])
        issued(customer, "50.00")

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(invoice_url())

    assert len(response.json()["results"]) == 31


def test_a_product_no_longer_in_use_is_refused_on_a_new_line_but_kept_on_a_draft_that_has_it(
    api_as, sales_rep, own_customer
):
    from billing import services
    from tests.api.billing_support import system

    widget = product()
    invoice = services.create_invoice(
        actor=system(), customer=own_customer, lines=[services.LineInput(product=widget, quantity=Decimal(1))]
    )
    widget.is_active = False
    widget.save()
    client = api_as(sales_rep)
    line = [{"product": widget.pk, "quantity": "2"}]

    new = client.post(invoice_url(), {"customer": own_customer.pk, "lines": line}, format="json")
    kept = client.patch(invoice_url(invoice), {"lines": line}, format="json")

    assert new.status_code == 422 and error_fields(new) == {"lines.0.product"}
    assert kept.status_code == 200 and kept.json()["lines"][0]["quantity"] == "2.000"
