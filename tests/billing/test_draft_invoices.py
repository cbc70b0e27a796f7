"""Draft invoices from the customer page: a rep prepares and edits one for their own customer,
AR issues it; the services behind it refuse anything but a draft."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import Invoice, InvoiceLine
from config import audit
from tests.billing.conftest import issue
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def lines_data(*lines, total=None, **invoice):
    """POST data for the invoice form: the invoice's fields and one formset row per line."""
    data = {
        "lines-TOTAL_FORMS": str(total if total is not None else len(lines)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "100",
        "due_date": "",
        "memo": "",
        **invoice,
    }
    for index, line in enumerate(lines):
        for name, value in {"quantity": "1", **line}.items():
            data[f"lines-{index}-{name}"] = value
    return data


def new_url(customer):
    return reverse("invoices:new", args=[customer.pk])


def detail_url(invoice):
    return reverse("invoices:detail", args=[invoice.customer_id, invoice.pk])


def edit_url(invoice):
    return reverse("invoices:edit", args=[invoice.customer_id, invoice.pk])


def draft(actor, customer, *prices):
    return services.create_invoice(
        actor=actor,
        customer=customer,
        lines=[services.LineInput(description=f"Item {n}", unit_price=Decimal(p)) for n, p in enumerate(prices, 1)],
    )


@pytest.fixture
def rep_client(client, sales_rep):
    client.force_login(sales_rep)
    return client


# --- Creating a draft -------------------------------------------------------------------------


def test_the_new_invoice_page_starts_with_one_empty_line(rep_client, own_customer):
    response = rep_client.get(new_url(own_customer))
    assert response.status_code == 200
    assert len(response.context["formset"].forms) == 1
    assert 'name="lines-0-description"' in response.text
    assert 'id="id_lines-TOTAL_FORMS"' in response.text


def test_a_rep_creates_a_draft_invoice_for_their_own_customer(rep_client, sales_rep, own_customer):
    due = timezone.localdate() + timedelta(days=14)
    response = rep_client.post(
        new_url(own_customer),
        lines_data(
            {"description": "Consulting", "quantity": "3", "unit_price": "120.00"},
            {"description": "Travel", "unit_price": "45.50"},
            due_date=due.isoformat(),
            memo="PO 7781",
        ),
    )
    invoice = Invoice.objects.get()
    assert response.status_code == 302
    assert response.url == detail_url(invoice)
    assert (invoice.status, invoice.customer, invoice.created_by) == ("draft", own_customer, sales_rep)
    assert (invoice.gross_total, invoice.due_date, invoice.memo) == (Decimal("405.50"), due, "PO 7781")
    assert list(invoice.lines.values_list("description", flat=True)) == ["Consulting", "Travel"]
    assert invoice.history.latest().history_user == sales_rep


def test_a_line_with_a_product_takes_the_products_name_price_and_tax(rep_client, own_customer, widget):
    rep_client.post(new_url(own_customer), lines_data({"product": str(widget.pk), "quantity": "2"}))
    line = InvoiceLine.objects.get()
    assert (line.description, line.unit_price, line.tax_rate) == ("Widget", Decimal("10.0000"), widget.tax_rate)
    assert line.invoice.gross_total == Decimal("24.00")  # 2 × 10.00 + 20% VAT


def test_a_chosen_tax_rate_and_price_override_the_products(rep_client, own_customer, widget, vat):
    zero = vat.__class__.objects.create(name="Zero", rate=Decimal("0"), liability_account=vat.liability_account)
    rep_client.post(
        new_url(own_customer),
        lines_data({"product": str(widget.pk), "unit_price": "8.00", "tax_rate": str(zero.pk)}),
    )
    line = InvoiceLine.objects.get()
    assert (line.unit_price, line.tax_rate, line.gross) == (Decimal("8.0000"), zero, Decimal("8.00"))


def test_empty_rows_are_ignored(rep_client, own_customer):
    rep_client.post(
        new_url(own_customer),
        lines_data({}, {"description": "Support", "unit_price": "99.00"}, {}),
    )
    assert list(InvoiceLine.objects.values_list("description", flat=True)) == ["Support"]


def test_a_line_without_a_price_or_product_is_refused_next_to_the_field_and_nothing_is_written(
    rep_client, own_customer
):
    response = rep_client.post(new_url(own_customer), lines_data({"description": "Mystery"}))
    assert response.status_code == 422
    assert "Enter a unit price, or pick a product." in response.text
    assert 'name="lines-0-unit_price"' in response.text and "is-invalid" in response.text
    assert not Invoice.objects.exists()


def test_an_invoice_without_any_line_is_refused(rep_client, own_customer):
    response = rep_client.post(new_url(own_customer), lines_data({}))
    assert response.status_code == 422
    assert "Add at least one line" in response.text
    assert not Invoice.objects.exists()


def test_a_due_date_in_the_past_is_refused(rep_client, own_customer):
    yesterday = timezone.localdate() - timedelta(days=1)
    response = rep_client.post(
        new_url(own_customer), lines_data({"description": "X", "unit_price": "1"}, due_date=yesterday.isoformat())
    )
    assert "The due date cannot be in the past." in response.text
    assert not Invoice.objects.exists()


def test_a_rep_cannot_create_a_draft_for_another_reps_customer(rep_client, others_customer):
    response = rep_client.post(new_url(others_customer), lines_data({"description": "X", "unit_price": "1"}))
    assert response.status_code == 404
    assert not Invoice.objects.exists()


def test_someone_without_the_invoice_right_is_refused_with_403(client, own_customer):
    viewer = UserFactory()
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_customer", "view_all_customers"], content_type__app_label="crm")
    )
    client.force_login(viewer)
    assert client.get(new_url(own_customer)).status_code == 403


# --- Adding and removing line rows ----------------------------------------------------------------


def test_add_a_line_with_htmx_returns_the_next_row_and_updates_the_row_count(rep_client, own_customer):
    response = rep_client.get(
        reverse("invoices:line_row", args=[own_customer.pk]), {"lines-TOTAL_FORMS": "2"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert 'name="lines-2-description"' in response.text
    assert 'id="id_lines-TOTAL_FORMS" value="3" hx-swap-oob="true"' in response.text
    assert "<html" not in response.text


def test_add_a_line_without_javascript_shows_one_more_row_and_saves_nothing(rep_client, own_customer):
    data = lines_data({"description": "Consulting", "unit_price": "10"}, add_line="1")
    response = rep_client.post(new_url(own_customer), data)
    assert response.status_code == 200
    assert len(response.context["formset"].forms) == 2
    assert 'value="Consulting"' in response.text
    assert not Invoice.objects.exists()


def test_a_row_ticked_remove_is_left_out(rep_client, own_customer):
    rep_client.post(
        new_url(own_customer),
        lines_data(
            {"description": "Keep", "unit_price": "10"},
            {"description": "Drop", "unit_price": "20", "DELETE": "on"},
        ),
    )
    assert list(InvoiceLine.objects.values_list("description", flat=True)) == ["Keep"]


# --- Editing a draft ------------------------------------------------------------------------------


def test_the_edit_page_shows_the_drafts_lines(rep_client, sales_rep, own_customer):
    invoice = draft(sales_rep, own_customer, "10.00", "2.50")
    response = rep_client.get(edit_url(invoice))
    assert response.status_code == 200
    assert 'value="Item 1"' in response.text and 'value="Item 2"' in response.text
    assert 'name="lines-1-unit_price" value="2.5"' in response.text


def test_editing_a_draft_replaces_its_lines_and_totals(rep_client, sales_rep, own_customer):
    invoice = draft(sales_rep, own_customer, "10.00", "20.00")
    response = rep_client.post(
        edit_url(invoice),
        lines_data({"description": "Item 1", "quantity": "2", "unit_price": "10.00"}, memo="Revised"),
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert (invoice.gross_total, invoice.memo, invoice.status) == (Decimal("20.00"), "Revised", "draft")
    assert list(invoice.lines.values_list("description", "quantity")) == [("Item 1", Decimal("2.000"))]


def test_lines_removed_from_a_draft_are_in_its_history_with_who_removed_them(rep_client, sales_rep, own_customer):
    invoice = draft(audit.system_actor("tests"), own_customer, "10.00", "20.00")
    rep_client.post(edit_url(invoice), lines_data({"description": "Only", "unit_price": "5"}))
    removed = InvoiceLine.history.filter(history_type="-")
    assert removed.count() == 2
    assert {record.history_user for record in removed} == {sales_rep}


def test_an_issued_invoice_cannot_be_edited(rep_client, ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00")
    response = rep_client.get(edit_url(invoice))
    assert response.status_code == 302
    assert response.url == detail_url(invoice)
    response = rep_client.post(edit_url(invoice), lines_data({"description": "Sneaky", "unit_price": "1"}))
    invoice.refresh_from_db()
    assert (invoice.gross_total, invoice.lines.get().description) == (Decimal("100.00"), "Consulting")


def test_update_draft_invoice_refuses_an_issued_invoice_and_changes_nothing(ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00")
    with pytest.raises(ValidationError, match="only a draft can be changed"):
        services.update_draft_invoice(
            actor=ar_clerk, invoice=invoice, lines=[services.LineInput(description="X", unit_price=Decimal(1))]
        )
    assert invoice.lines.get().description == "Consulting"


def test_update_draft_invoice_refuses_an_empty_invoice(sales_rep, own_customer):
    invoice = draft(sales_rep, own_customer, "10.00")
    with pytest.raises(ValidationError, match="at least one line"):
        services.update_draft_invoice(actor=sales_rep, invoice=invoice, lines=[])
    assert invoice.lines.count() == 1


# --- Discarding a draft ---------------------------------------------------------------------------


def test_a_rep_discards_a_draft(rep_client, sales_rep, own_customer):
    invoice = draft(sales_rep, own_customer, "10.00")
    response = rep_client.post(reverse("invoices:delete", args=[own_customer.pk, invoice.pk]))
    assert response.status_code == 302
    assert response.url == reverse("crm:customer_detail", args=[own_customer.pk])
    assert not Invoice.objects.exists() and not InvoiceLine.objects.exists()
    assert Invoice.history.filter(history_type="-").get().history_user == sales_rep


def test_delete_draft_invoice_refuses_an_issued_invoice(ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00")
    with pytest.raises(ValidationError, match="is issued"):
        services.delete_draft_invoice(actor=ar_clerk, invoice=invoice)
    assert Invoice.objects.filter(pk=invoice.pk).exists()


# --- The invoice page -----------------------------------------------------------------------------


def test_the_invoice_page_shows_lines_totals_status_and_what_was_applied(rep_client, ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00", on=timezone.localdate() - timedelta(days=10))
    services.record_payment(
        actor=ar_clerk,
        customer=own_customer,
        amount=Decimal("40"),
        received_on=timezone.localdate() - timedelta(days=2),
        method="bank_transfer",
        reference="BT-99",
    )
    services.issue_credit_note(
        actor=ar_clerk,
        customer=own_customer,
        invoice=invoice,
        reason="Late delivery",
        lines=[services.LineInput(description="Discount", unit_price=Decimal("10"))],
    )
    response = rep_client.get(detail_url(invoice))
    assert response.status_code == 200
    text = response.text
    assert invoice.number in text and "Partially paid" in text and "Consulting" in text
    assert 'id="invoice-total">100.00' in text
    assert 'id="invoice-open">50.00' in text
    assert "BT-99" in text and "Late delivery" in text
    assert "Issue invoice" not in text and "Edit draft" not in text


def test_a_draft_page_offers_a_rep_editing_but_not_issuing(rep_client, sales_rep, own_customer):
    invoice = draft(sales_rep, own_customer, "10.00")
    response = rep_client.get(detail_url(invoice))
    assert "Edit draft" in response.text and "Discard draft" in response.text
    assert "Issue invoice" not in response.text
    assert "Accounts Receivable issues it" in response.text


def test_an_invoice_of_another_customer_answers_404(rep_client, ar_clerk, own_customer, others_customer):
    theirs = issue(ar_clerk, others_customer, "100.00")
    response = rep_client.get(reverse("invoices:detail", args=[own_customer.pk, theirs.pk]))
    assert response.status_code == 404


# --- Issuing --------------------------------------------------------------------------------------


def test_ar_issues_a_draft_from_its_page(client, ar_clerk, sales_rep, own_customer):
    invoice = draft(sales_rep, own_customer, "100.00")
    client.force_login(ar_clerk)
    assert "Issue invoice" in client.get(detail_url(invoice)).text
    response = client.post(reverse("invoices:issue", args=[own_customer.pk, invoice.pk]), follow=True)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.issue_date) == ("issued", timezone.localdate())
    assert invoice.number
    assert f"Issued invoice {invoice.number}" in response.text


def test_a_rep_may_not_issue_a_draft(rep_client, sales_rep, own_customer):
    invoice = draft(sales_rep, own_customer, "100.00")
    response = rep_client.post(reverse("invoices:issue", args=[own_customer.pk, invoice.pk]))
    assert response.status_code == 403
    invoice.refresh_from_db()
    assert invoice.status == "draft"


def test_a_refused_issue_shows_the_reason_and_changes_nothing(client, ar_clerk, sales_rep):
    euro_customer = CustomerFactory(owner=sales_rep, currency="EUR")
    invoice = draft(ar_clerk, euro_customer, "100.00")
    client.force_login(ar_clerk)
    response = client.post(reverse("invoices:issue", args=[euro_customer.pk, invoice.pk]), follow=True)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.number) == ("draft", None)
    assert "The invoice was not issued" in response.text
    assert "EUR" in response.text


# --- Queries --------------------------------------------------------------------------------------


def _count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_invoice_page_query_count_does_not_grow_with_lines_and_allocations(
    rep_client, ar_clerk, own_customer, django_assert_max_num_queries
):
    def invoice_with(lines):
        invoice = services.create_invoice(
            actor=ar_clerk,
            customer=own_customer,
            lines=[services.LineInput(description=f"Line {n}", unit_price=Decimal(10)) for n in range(lines)],
        )
        invoice = services.issue_invoice(actor=ar_clerk, invoice=invoice, issue_date=timezone.localdate())
        for _ in range(lines):
            payment = services.record_payment(
                actor=ar_clerk,
                customer=own_customer,
                amount=Decimal(1),
                received_on=timezone.localdate(),
                method="card",
                auto_apply=False,
            )
            services.allocate_payment(actor=ar_clerk, payment=payment, invoice=invoice, amount=Decimal(1))
        return invoice

    few = _count_queries(rep_client, detail_url(invoice_with(2)))
    many = invoice_with(20)
    with django_assert_max_num_queries(few):
        rep_client.get(detail_url(many))


def test_the_edit_page_query_count_does_not_grow_with_lines(
    rep_client, sales_rep, own_customer, widget, django_assert_max_num_queries
):
    few = _count_queries(rep_client, edit_url(draft(sales_rep, own_customer, "1", "2")))
    many = draft(sales_rep, own_customer, *["3"] * 30)
    with django_assert_max_num_queries(few):
        response = rep_client.get(edit_url(many))
    assert len(response.context["formset"].forms) == 30
