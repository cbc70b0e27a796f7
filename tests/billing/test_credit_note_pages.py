"""Credit notes from the Billing panel: issuing one (standalone or against an invoice), applying
its credit to an open invoice, refunding it, and seeing them listed."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.forms import new_idempotency_key
from billing.models import CreditNote, CreditNoteAllocation, Refund
from ledger.services import lock_period
from tests.billing.conftest import books, issue

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def url(name: str, customer, *args) -> str:
    return reverse(f"billing:{name}", args=[customer.pk, *args])


def credit_note_data(*lines, **fields):
    """The posted form: `lines` as (description, quantity, unit price, tax rate pk or "")."""
    data = {
        "form_token": new_idempotency_key("credit-note"),
        "reason": "Damaged goods returned",
        "issue_date": timezone.localdate().isoformat(),
        "invoice": "",
        "lines-TOTAL_FORMS": "3",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "20",
    }
    for index, (description, quantity, unit_price, tax_rate) in enumerate(lines):
        data[f"lines-{index}-description"] = description
        data[f"lines-{index}-quantity"] = quantity
        data[f"lines-{index}-unit_price"] = unit_price
        data[f"lines-{index}-tax_rate"] = tax_rate
    # The rows left as shown: quantity 1, nothing else.
    for index in range(len(lines), 3):
        data[f"lines-{index}-quantity"] = "1"
    data.update(fields)
    return data


@pytest.fixture
def open_invoice(ar_clerk, own_customer):
    return issue(ar_clerk, own_customer, "100.00", on=days_ago(30))


@pytest.fixture
def standalone_credit(ar_clerk, own_customer):
    return services.issue_credit_note(
        actor=ar_clerk,
        customer=own_customer,
        reason="Goodwill",
        lines=[services.LineInput(description="Goodwill", unit_price=Decimal("40.00"))],
        issue_date=days_ago(5),
    )


# --- Issuing ------------------------------------------------------------------------------------


def test_a_standalone_credit_note_with_lines_and_tax_is_issued_in_place(client, ar_clerk, own_customer, vat):
    client.force_login(ar_clerk)
    data = credit_note_data(("Returned widgets", "2", "10.00", str(vat.pk)), ("Freight", "1", "5.00", ""))
    response = client.post(url("issue_credit_note", own_customer), data, headers=HTMX)
    assert response.status_code == 200
    credit_note = CreditNote.objects.get()
    assert (credit_note.net_total, credit_note.tax_total, credit_note.gross_total, credit_note.unapplied_amount) == (
        Decimal("25.00"),
        Decimal("4.00"),
        Decimal("29.00"),
        Decimal("29.00"),
    )
    assert (credit_note.reason, credit_note.invoice, credit_note.created_by) == (
        "Damaged goods returned",
        None,
        ar_clerk,
    )
    assert [line.description for line in credit_note.lines.all()] == ["Returned widgets", "Freight"]
    assert response.context["notice"].startswith(
        f"Issued credit note {credit_note.number} for 29.00 USD on the customer's account."
    )
    assert "Balance now -29.00 USD." in response.text
    listed = response.text.split('aria-label="Credit notes"')[1]
    assert credit_note.number in listed and "29.00" in listed


def test_a_credit_note_against_an_open_invoice_is_applied_to_it(client, ar_clerk, own_customer, open_invoice):
    client.force_login(ar_clerk)
    data = credit_note_data(("Price adjustment", "1", "30.00", ""), invoice=str(open_invoice.pk))
    response = client.post(url("issue_credit_note", own_customer), data)
    assert response.status_code == 302
    credit_note = CreditNote.objects.get()
    open_invoice.refresh_from_db()
    assert (credit_note.invoice, credit_note.unapplied_amount) == (open_invoice, Decimal("0.00"))
    assert (open_invoice.status, open_invoice.open_amount) == ("partially_paid", Decimal("70.00"))
    page = client.get(reverse("crm:customer_detail", args=[own_customer.pk]))
    assert f"Applied 30.00 USD to {open_invoice.number}" in page.text


def test_a_credit_note_without_lines_is_refused_and_nothing_is_written(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    response = client.post(url("issue_credit_note", own_customer), credit_note_data())
    assert response.status_code == 422
    assert "Enter at least one line" in response.text
    assert not CreditNote.objects.exists()


def test_a_credit_note_needs_a_reason_said_next_to_the_field(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    data = credit_note_data(("Refund", "1", "5.00", ""), reason="")
    response = client.post(url("issue_credit_note", own_customer), data, headers=HTMX)
    assert response.context["credit_note_form"].errors["reason"] == ["This field is required."]
    assert not CreditNote.objects.exists()


def test_a_half_filled_line_is_refused_next_to_its_field(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    data = credit_note_data(("", "1", "5.00", ""))
    response = client.post(url("issue_credit_note", own_customer), data, headers=HTMX)
    assert response.context["credit_note_formset"].forms[0].errors["description"] == ["This field is required."]
    assert not CreditNote.objects.exists()


def test_a_credit_note_against_another_customers_invoice_is_refused(client, ar_clerk, own_customer, others_customer):
    foreign = issue(ar_clerk, others_customer, "50.00", on=days_ago(3))
    client.force_login(ar_clerk)
    data = credit_note_data(("Refund", "1", "5.00", ""), invoice=str(foreign.pk))
    response = client.post(url("issue_credit_note", own_customer), data)
    assert response.status_code == 422
    assert "That invoice cannot be credited" in response.text
    assert not CreditNote.objects.exists()


def test_crediting_more_than_the_invoice_is_refused_and_changes_nothing(client, ar_clerk, own_customer, open_invoice):
    client.force_login(ar_clerk)
    before = books()
    data = credit_note_data(("Too much", "1", "100.01", ""), invoice=str(open_invoice.pk))
    response = client.post(url("issue_credit_note", own_customer), data, headers=HTMX)
    assert response.status_code == 200
    assert "is more than is left to credit on invoice" in response.text
    assert books() == before


def test_a_credit_note_in_a_locked_period_shows_the_reason_next_to_the_date(
    client, ar_clerk, finance_admin, own_customer
):
    lock_period(actor=finance_admin, locked_through=days_ago(1))
    client.force_login(ar_clerk)
    before = books()
    data = credit_note_data(("Refund", "1", "5.00", ""), issue_date=days_ago(2).isoformat())
    response = client.post(url("issue_credit_note", own_customer), data, headers=HTMX)
    assert "The books are locked through" in " ".join(response.context["credit_note_form"].errors["issue_date"])
    assert books() == before


def test_a_resent_credit_note_form_issues_one_credit_note(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    data = credit_note_data(("Refund", "1", "5.00", ""))
    first = client.post(url("issue_credit_note", own_customer), data, headers=HTMX)
    second = client.post(url("issue_credit_note", own_customer), data, headers=HTMX)
    credit_note = CreditNote.objects.get()
    assert f"Issued credit note {credit_note.number}" in first.text
    assert f"Credit note {credit_note.number} was issued from this form already" in second.text


def test_another_line_adds_a_row_and_saves_nothing(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    data = {**credit_note_data(("Refund", "1", "5.00", "")), "add_line": "1"}
    response = client.post(url("issue_credit_note", own_customer), data, headers=HTMX)
    assert response.status_code == 200
    formset = response.context["credit_note_formset"]
    assert formset.total_form_count() == 4
    assert 'name="lines-3-description"' in response.text
    assert formset.forms[3]["quantity"].value() == "1"
    assert 'value="Refund"' in response.text
    assert "This field is required." not in response.text
    assert not CreditNote.objects.exists()


def test_the_panel_lists_credit_notes_with_allocations_and_refunds(
    client, ar_clerk, own_customer, open_invoice, standalone_credit
):
    services.allocate_credit_note(
        actor=ar_clerk, credit_note=standalone_credit, invoice=open_invoice, amount=Decimal("15.00")
    )
    services.refund_credit(
        actor=ar_clerk, credit_note=standalone_credit, amount=Decimal("5.00"), refunded_on=days_ago(1), method="cash"
    )
    client.force_login(ar_clerk)
    response = client.get(url("panel", own_customer), headers=HTMX)
    ((row, allocate_form, refund_form),) = response.context["credit_note_rows"]
    assert row.credit_note == standalone_credit
    assert [refund.amount for refund in row.refunds] == [Decimal("5.00")]
    assert allocate_form.initial == {"invoice": open_invoice.pk, "amount": Decimal("20.00")}
    assert refund_form.initial["amount"] == Decimal("20.00")
    listed = response.text.split('aria-label="Credit notes"')[1]
    for shown in (standalone_credit.number, "Goodwill", "40.00 USD", open_invoice.number, "15.00", "Refunded 5.00"):
        assert shown in listed


def test_an_empty_credit_note_list_says_what_to_do(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    response = client.get(url("panel", own_customer), headers=HTMX)
    assert "No credit notes. Issue one above" in response.text


# --- Applying and refunding a credit note -------------------------------------------------------


def test_a_credit_notes_credit_is_applied_to_an_open_invoice(
    client, ar_clerk, own_customer, open_invoice, standalone_credit
):
    client.force_login(ar_clerk)
    response = client.post(
        url("allocate_credit_note", own_customer, standalone_credit.pk),
        {"invoice": open_invoice.pk, "amount": "25"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert f"Applied 25.00 USD of credit note {standalone_credit.number} to {open_invoice.number}." in response.text
    open_invoice.refresh_from_db()
    standalone_credit.refresh_from_db()
    assert (open_invoice.open_amount, standalone_credit.unapplied_amount) == (Decimal("75.00"), Decimal("15.00"))


def test_applying_more_than_the_credit_is_refused_and_changes_nothing(
    client, ar_clerk, own_customer, open_invoice, standalone_credit
):
    client.force_login(ar_clerk)
    before = books()
    response = client.post(
        url("allocate_credit_note", own_customer, standalone_credit.pk),
        {"invoice": open_invoice.pk, "amount": "40.01"},
        headers=HTMX,
    )
    assert "is more than the 40.00 unapplied on" in response.text
    assert books() == before


def test_a_credit_notes_credit_is_refunded(client, ar_clerk, own_customer, standalone_credit):
    client.force_login(ar_clerk)
    data = {
        "amount": "40.00",
        "refunded_on": timezone.localdate().isoformat(),
        "method": "bank_transfer",
        "reference": "",
        "idempotency_key": new_idempotency_key("refund"),
    }
    response = client.post(url("refund_credit_note", own_customer, standalone_credit.pk), data)
    assert response.status_code == 302
    refund = Refund.objects.get()
    assert (refund.credit_note, refund.amount) == (standalone_credit, Decimal("40.00"))
    standalone_credit.refresh_from_db()
    assert standalone_credit.unapplied_amount == Decimal("0.00")


def test_a_credit_note_of_another_customer_answers_404(
    client, ar_clerk, others_customer, open_invoice, standalone_credit
):
    client.force_login(ar_clerk)
    response = client.post(
        url("allocate_credit_note", others_customer, standalone_credit.pk), {"invoice": open_invoice.pk}
    )
    assert response.status_code == 404
    assert not CreditNoteAllocation.objects.exists()


# --- A rep may not credit -----------------------------------------------------------------------


def test_a_rep_may_not_issue_apply_or_refund_credit_notes(
    client, sales_rep, ar_clerk, own_customer, others_customer, open_invoice, standalone_credit
):
    theirs = services.issue_credit_note(
        actor=ar_clerk,
        customer=others_customer,
        reason="Goodwill",
        lines=[services.LineInput(description="Goodwill", unit_price=Decimal("10.00"))],
    )
    refund = {"amount": "1", "refunded_on": timezone.localdate().isoformat(), "method": "cash", "idempotency_key": "k"}
    client.force_login(sales_rep)
    before = books()
    attempts = [
        (url("issue_credit_note", own_customer), credit_note_data(("Refund", "1", "5.00", "")), 403),
        (url("issue_credit_note", others_customer), credit_note_data(("Refund", "1", "5.00", "")), 404),
        (url("allocate_credit_note", own_customer, standalone_credit.pk), {"invoice": open_invoice.pk}, 403),
        (url("allocate_credit_note", others_customer, theirs.pk), {"invoice": open_invoice.pk}, 404),
        (url("refund_credit_note", own_customer, standalone_credit.pk), refund, 403),
        (url("refund_credit_note", others_customer, theirs.pk), refund, 404),
    ]
    assert [client.post(target, data).status_code for target, data, _ in attempts] == [
        status for _, _, status in attempts
    ]
    assert books() == before
