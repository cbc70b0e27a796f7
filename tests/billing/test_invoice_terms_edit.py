"""Changing an issued invoice's due date and memo from the Billing panel (billing.views.
edit_invoice_terms): AR and Finance Admins, as for voiding; the form opens under the invoice's row,
a refusal changes nothing, and the history keeps who changed what."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.views import CHANGED_EVENT
from tests.billing.conftest import books, issue

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def terms_url(invoice) -> str:
    return reverse("billing:edit_invoice_terms", args=[invoice.customer_id, invoice.pk])


def panel_url(customer) -> str:
    return reverse("billing:panel", args=[customer.pk])


@pytest.fixture
def invoice(ar_clerk, own_customer):
    """120.00 issued 30 days ago, with a memo."""
    invoice = issue(ar_clerk, own_customer, "120.00", on=days_ago(30))
    return services.update_issued_invoice(actor=ar_clerk, invoice=invoice, memo="PO 4471")


def terms(due_date, memo="PO 4471") -> dict:
    return {"due_date": due_date.isoformat(), "memo": memo}


def saved(invoice) -> tuple:
    invoice.refresh_from_db()
    return invoice.due_date, invoice.memo


def test_the_form_opens_under_the_invoice_prefilled(client, ar_clerk, invoice):
    client.force_login(ar_clerk)
    response = client.get(terms_url(invoice), headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert response.context["invoice_action"].kind == "terms"
    assert f'value="{invoice.due_date.isoformat()}"' in response.text
    assert f'min="{invoice.issue_date.isoformat()}"' in response.text
    assert "PO 4471</textarea>" in response.text


def test_the_form_opens_on_a_page_of_its_own_without_javascript(client, ar_clerk, invoice):
    client.force_login(ar_clerk)
    response = client.get(terms_url(invoice))
    assert response.status_code == 200
    assert "<html" in response.text and f"Due date and memo of invoice {invoice.number}" in response.text


def test_ar_changes_the_due_date_and_memo_in_place(client, ar_clerk, invoice):
    new_due = invoice.due_date + timedelta(days=14)
    client.force_login(ar_clerk)
    before = books()
    response = client.post(terms_url(invoice), terms(new_due, "PO 4471, second delivery"), headers=HTMX)
    assert response.status_code == 200
    assert response["HX-Trigger"] == CHANGED_EVENT
    assert saved(invoice) == (new_due, "PO 4471, second delivery")
    assert f"Invoice {invoice.number}: now due {new_due:%Y-%m-%d} and memo changed." in response.text
    assert f'<td class="text-nowrap">{new_due:%Y-%m-%d}</td>' in response.text
    assert books() == before  # nothing posted, no balance moved


def test_without_javascript_a_change_redirects_to_the_customer_page(client, ar_clerk, own_customer, invoice):
    new_due = invoice.due_date + timedelta(days=7)
    client.force_login(ar_clerk)
    response = client.post(terms_url(invoice), terms(new_due))
    assert response.status_code == 302
    assert response["Location"] == reverse("crm:customer_detail", args=[own_customer.pk]) + "#billing-panel"
    assert saved(invoice)[0] == new_due


def test_a_finance_admin_changes_them_too(client, finance_admin, invoice):
    client.force_login(finance_admin)
    response = client.post(terms_url(invoice), terms(invoice.due_date, "Call before paying"), headers=HTMX)
    assert response.status_code == 200
    assert saved(invoice)[1] == "Call before paying"


def test_the_history_records_who_changed_the_invoice_and_what_it_said_before(client, finance_admin, invoice):
    was = invoice.due_date
    client.force_login(finance_admin)
    client.post(terms_url(invoice), terms(was + timedelta(days=10)))
    latest, previous = invoice.history.order_by("-history_id")[:2]
    assert (latest.history_user, latest.due_date) == (finance_admin, was + timedelta(days=10))
    assert previous.due_date == was


def test_a_due_date_before_the_issue_date_is_refused_with_the_reason_and_nothing_changes(client, ar_clerk, invoice):
    client.force_login(ar_clerk)
    before, history = saved(invoice), invoice.history.count()
    response = client.post(terms_url(invoice), terms(invoice.issue_date - timedelta(days=1), "Changed"), headers=HTMX)
    assert response.status_code == 200  # htmx swaps only a success; the errors must show
    form = response.context["invoice_action"].form
    assert form.errors["due_date"] == ["The due date cannot be before the issue date."]
    assert "The due date cannot be before the issue date." in response.text
    assert saved(invoice) == before
    assert invoice.history.count() == history


def test_without_javascript_a_refusal_shows_the_panel_on_its_own_page(client, ar_clerk, invoice):
    client.force_login(ar_clerk)
    before = saved(invoice)
    response = client.post(terms_url(invoice), terms(invoice.issue_date - timedelta(days=1)))
    assert response.status_code == 422
    assert "<html" in response.text and "The due date cannot be before the issue date." in response.text
    assert saved(invoice) == before


def test_a_void_invoice_is_refused_and_nothing_changes(client, ar_clerk, invoice):
    services.void_invoice(actor=ar_clerk, invoice=invoice, voided_on=timezone.localdate())
    client.force_login(ar_clerk)
    before, history = saved(invoice), invoice.history.count()
    response = client.post(terms_url(invoice), terms(invoice.due_date + timedelta(days=5), "Changed"))
    assert response.status_code == 422
    assert f"Invoice {invoice.number} is void; only an issued invoice is changed here." in response.text
    assert saved(invoice) == before
    assert invoice.history.count() == history


def test_a_missing_due_date_is_refused_next_to_the_field(client, ar_clerk, invoice):
    client.force_login(ar_clerk)
    before = saved(invoice)
    response = client.post(terms_url(invoice), {"due_date": "", "memo": "Changed"}, headers=HTMX)
    assert response.context["invoice_action"].form.errors["due_date"] == ["This field is required."]
    assert saved(invoice) == before


def test_saving_the_form_as_shown_records_nothing(client, ar_clerk, invoice):
    """A browser sends a textarea's line breaks as CRLF: a memo saved unchanged is not a change."""
    invoice = services.update_issued_invoice(actor=ar_clerk, invoice=invoice, memo="PO 4471\nDock 3")
    client.force_login(ar_clerk)
    history = invoice.history.count()
    response = client.post(terms_url(invoice), terms(invoice.due_date, "PO 4471\r\nDock 3"), headers=HTMX)
    assert f"Nothing changed on invoice {invoice.number}" in response.text
    assert saved(invoice)[1] == "PO 4471\nDock 3"
    assert invoice.history.count() == history


def test_a_sales_rep_owning_the_customer_is_refused_as_for_voiding(client, sales_rep, own_customer, invoice):
    """Reps prepare drafts; an issued invoice's void, dispute, write-off and terms are AR's."""
    client.force_login(sales_rep)
    before = saved(invoice)
    assert client.get(terms_url(invoice)).status_code == 403
    assert client.post(terms_url(invoice), terms(invoice.due_date + timedelta(days=5), "Mine")).status_code == 403
    assert saved(invoice) == before


def test_a_rep_not_owning_the_customer_gets_404(client, other_rep, invoice):
    client.force_login(other_rep)
    before = saved(invoice)
    assert client.get(terms_url(invoice)).status_code == 404
    assert client.post(terms_url(invoice), terms(invoice.due_date + timedelta(days=5))).status_code == 404
    assert saved(invoice) == before


def test_another_customers_invoice_answers_404(client, ar_clerk, own_customer, others_customer):
    elsewhere = issue(ar_clerk, others_customer, "10.00", on=days_ago(3))
    client.force_login(ar_clerk)
    url = reverse("billing:edit_invoice_terms", args=[own_customer.pk, elsewhere.pk])
    assert client.post(url, terms(elsewhere.due_date + timedelta(days=5))).status_code == 404


def test_ar_sees_the_edit_link_on_issued_invoices_but_not_on_drafts_or_void_ones(
    client, ar_clerk, own_customer, invoice
):
    void = issue(ar_clerk, own_customer, "40.00", on=days_ago(20))
    services.void_invoice(actor=ar_clerk, invoice=void, voided_on=timezone.localdate())
    draft = services.create_invoice(
        actor=ar_clerk, customer=own_customer, lines=[services.LineInput(description="Draft", unit_price=Decimal(5))]
    )
    client.force_login(ar_clerk)
    text = client.get(panel_url(own_customer), headers=HTMX).text
    assert f'href="{terms_url(invoice)}"' in text
    assert f'href="{terms_url(void)}"' not in text
    assert f'href="{terms_url(draft)}"' not in text


def test_a_rep_sees_no_edit_link(client, sales_rep, own_customer, invoice):
    client.force_login(sales_rep)
    text = client.get(panel_url(own_customer), headers=HTMX).text
    assert f'id="invoice-{invoice.pk}"' in text
    assert terms_url(invoice) not in text
