"""Money pages of the Billing panel: recording a payment shows the new balance, applying a
payment's credit automatically, refunding unapplied credit, and issuing or voiding an invoice."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.forms import new_idempotency_key
from billing.models import Invoice, Payment, PaymentAllocation, Refund, WriteOff
from ledger.services import lock_period
from tests.billing.conftest import books, issue

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def url(name: str, customer, *args) -> str:
    return reverse(f"billing:{name}", args=[customer.pk, *args])


@pytest.fixture
def older_and_newer(ar_clerk, own_customer):
    """100.00 issued 60 days ago and 80.00 issued 10 days ago."""
    return issue(ar_clerk, own_customer, "100.00", on=days_ago(60)), issue(
        ar_clerk, own_customer, "80.00", on=days_ago(10)
    )


@pytest.fixture
def credit(ar_clerk, own_customer):
    """A cleared payment of 120.00 left as unapplied credit."""
    return services.record_payment(
        actor=ar_clerk,
        customer=own_customer,
        amount=Decimal("120"),
        received_on=days_ago(2),
        method="cheque",
        auto_apply=False,
    )


def payment_data(**overrides):
    data = {
        "amount": "150.00",
        "received_on": timezone.localdate().isoformat(),
        "method": "bank_transfer",
        "reference": "BT-9",
        "auto_apply": "on",
        "idempotency_key": new_idempotency_key(),
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


def refund_data(**overrides):
    data = {
        "amount": "20.00",
        "refunded_on": timezone.localdate().isoformat(),
        "method": "bank_transfer",
        "reference": "Back to the customer",
        "idempotency_key": new_idempotency_key("refund"),
    }
    data.update(overrides)
    return data


# --- Recording a payment ------------------------------------------------------------------------


def test_after_recording_a_payment_the_panel_shows_the_new_balance(client, ar_clerk, own_customer, older_and_newer):
    client.force_login(ar_clerk)
    response = client.post(url("record_payment", own_customer), payment_data(), headers=HTMX)
    assert response.status_code == 200
    assert response.context["billing"].balances.balance == Decimal("30.00")
    assert "Balance now 30.00 USD." in response.text
    # Other parts of the page showing the customer's figures may listen for it and refresh.
    assert response["HX-Trigger"] == "billing-changed"


def test_a_double_submitted_payment_form_records_one_payment_with_or_without_javascript(
    client, ar_clerk, own_customer, older_and_newer
):
    client.force_login(ar_clerk)
    data = payment_data(amount="60")
    first = client.post(url("record_payment", own_customer), data)
    second = client.post(url("record_payment", own_customer), data)
    third = client.post(url("record_payment", own_customer), data, headers=HTMX)
    assert (first.status_code, second.status_code, third.status_code) == (302, 302, 200)
    assert Payment.objects.count() == 1
    assert PaymentAllocation.objects.count() == 1
    older, _ = older_and_newer
    older.refresh_from_db()
    assert older.open_amount == Decimal("40.00")


# --- Auto-applying a payment's credit -----------------------------------------------------------


def test_auto_apply_uses_a_payments_credit_on_the_oldest_invoices_in_place(
    client, ar_clerk, own_customer, older_and_newer, credit
):
    older, newer = older_and_newer
    client.force_login(ar_clerk)
    response = client.post(url("auto_allocate", own_customer, credit.pk), headers=HTMX)
    assert response.status_code == 200
    assert f"Applied 100.00 USD to {older.number}, 20.00 USD to {newer.number}" in response.text
    older.refresh_from_db()
    newer.refresh_from_db()
    credit.refresh_from_db()
    assert (older.status, newer.open_amount, credit.unapplied_amount) == ("paid", Decimal("60.00"), Decimal("0.00"))
    assert "Balance now 60.00 USD." in response.text


def test_auto_apply_skips_a_disputed_invoice(client, ar_clerk, own_customer, older_and_newer, credit):
    older, newer = older_and_newer
    services.set_dispute(actor=ar_clerk, invoice=older, disputed=True, reason="Wrong quantity")
    client.force_login(ar_clerk)
    response = client.post(url("auto_allocate", own_customer, credit.pk))
    assert response.status_code == 302
    assert list(PaymentAllocation.objects.values_list("invoice_id", "amount")) == [(newer.pk, Decimal("80.00"))]


def test_auto_apply_with_nothing_open_says_so_and_writes_nothing(client, ar_clerk, own_customer, credit):
    client.force_login(ar_clerk)
    before = books()
    response = client.post(url("auto_allocate", own_customer, credit.pk), headers=HTMX)
    assert "Nothing was applied: no open USD invoice can take credit" in response.text
    assert books() == before


def test_the_panel_offers_auto_apply_for_a_payment_with_credit(client, ar_clerk, own_customer, older_and_newer, credit):
    client.force_login(ar_clerk)
    response = client.get(url("panel", own_customer), headers=HTMX)
    assert "Auto-apply unapplied credit" in response.text
    assert url("auto_allocate", own_customer, credit.pk) in response.text


# --- Refunds ------------------------------------------------------------------------------------


def test_unapplied_credit_of_a_payment_is_refunded_in_place(client, ar_clerk, own_customer, credit):
    client.force_login(ar_clerk)
    response = client.post(url("refund_payment", own_customer, credit.pk), refund_data(), headers=HTMX)
    assert response.status_code == 200
    refund = Refund.objects.get()
    credit.refresh_from_db()
    assert (refund.amount, refund.payment, refund.method, refund.created_by) == (
        Decimal("20.00"),
        credit,
        "bank_transfer",
        ar_clerk,
    )
    assert credit.unapplied_amount == Decimal("100.00")
    assert f"Refunded 20.00 USD (bank transfer) on {timezone.localdate():%Y-%m-%d}" in response.text
    assert "Refunded 20.00" in response.text.split('aria-label="Payments"')[1]
    assert response.context["billing"].balances.unapplied_credit == Decimal("100.00")


def test_the_refund_form_offers_all_the_unapplied_credit(client, ar_clerk, own_customer, credit):
    client.force_login(ar_clerk)
    ((row, _allocate, refund_form),) = client.get(url("panel", own_customer), headers=HTMX).context["payment_rows"]
    assert row.payment == credit
    assert refund_form.initial["amount"] == Decimal("120.00")
    assert refund_form.initial["idempotency_key"].startswith("refund-form:")


def test_a_refund_of_more_than_the_unapplied_credit_is_refused_and_changes_nothing(
    client, ar_clerk, own_customer, credit
):
    client.force_login(ar_clerk)
    before = books()
    response = client.post(url("refund_payment", own_customer, credit.pk), refund_data(amount="120.01"), headers=HTMX)
    assert response.status_code == 200
    assert "is more than the 120.00 of unapplied credit" in response.text
    assert books() == before


def test_a_resent_refund_form_pays_back_once(client, ar_clerk, own_customer, credit):
    client.force_login(ar_clerk)
    data = refund_data()
    responses = [client.post(url("refund_payment", own_customer, credit.pk), data) for _ in range(2)]
    assert [response.status_code for response in responses] == [302, 302]
    assert Refund.objects.count() == 1
    credit.refresh_from_db()
    assert credit.unapplied_amount == Decimal("100.00")


def test_a_refund_in_a_locked_period_shows_the_reason_next_to_the_date(
    client, ar_clerk, finance_admin, own_customer, credit
):
    lock_period(actor=finance_admin, locked_through=days_ago(1))
    client.force_login(ar_clerk)
    before = books()
    response = client.post(
        url("refund_payment", own_customer, credit.pk), refund_data(refunded_on=days_ago(1).isoformat())
    )
    assert response.status_code == 422
    ((_, _, form),) = response.context["payment_rows"]
    assert "The books are locked through" in " ".join(form.errors["refunded_on"])
    assert books() == before


def test_a_refund_dated_in_the_future_is_refused(client, ar_clerk, own_customer, credit):
    client.force_login(ar_clerk)
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    response = client.post(url("refund_payment", own_customer, credit.pk), refund_data(refunded_on=tomorrow))
    assert response.status_code == 422
    assert "A refund date cannot be in the future." in response.text
    assert not Refund.objects.exists()


def test_a_payment_of_another_customer_cannot_be_refunded_here(client, ar_clerk, others_customer, credit):
    client.force_login(ar_clerk)
    assert client.post(url("refund_payment", others_customer, credit.pk), refund_data()).status_code == 404
    assert not Refund.objects.exists()


def test_refunding_is_post_only(client, ar_clerk, own_customer, credit):
    client.force_login(ar_clerk)
    assert client.get(url("refund_payment", own_customer, credit.pk)).status_code == 405


# --- A rep may not move money -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("record_payment", payment_data()),
        ("refund_payment", refund_data()),
        ("auto_allocate", {}),
    ],
)
def test_a_rep_may_not_record_refund_or_apply_money(
    client, sales_rep, ar_clerk, own_customer, others_customer, older_and_newer, credit, name, data
):
    elsewhere = services.record_payment(
        actor=ar_clerk, customer=others_customer, amount=Decimal(10), received_on=days_ago(1), method="cash"
    )
    client.force_login(sales_rep)
    before = books()
    own_args = [] if name == "record_payment" else [credit.pk]
    other_args = [] if name == "record_payment" else [elsewhere.pk]
    assert client.post(url(name, own_customer, *own_args), data).status_code == 403
    assert client.post(url(name, others_customer, *other_args), data).status_code == 404
    assert books() == before


def test_a_rep_sees_no_money_buttons(client, sales_rep, ar_clerk, own_customer, older_and_newer, credit):
    services.create_invoice(
        actor=sales_rep, customer=own_customer, lines=[services.LineInput(description="Draft", unit_price=Decimal(5))]
    )
    client.force_login(sales_rep)
    text = client.get(url("panel", own_customer), headers=HTMX).text
    for label in (
        "Record a payment",
        "Issue a credit note",
        "Auto-apply",
        "Refund unapplied credit",
        "Write off…",
        "Void…",
    ):
        assert label not in text
    assert ">Issue</button>" not in text


# --- Issuing a draft from the panel -------------------------------------------------------------


@pytest.fixture
def draft(sales_rep, own_customer):
    return services.create_invoice(
        actor=sales_rep,
        customer=own_customer,
        lines=[services.LineInput(description="Onboarding", unit_price=Decimal("250.00"))],
    )


def test_ar_issues_a_draft_from_the_panel_in_place(client, ar_clerk, own_customer, draft):
    client.force_login(ar_clerk)
    response = client.post(url("issue_invoice", own_customer, draft.pk), headers=HTMX)
    assert response.status_code == 200
    draft.refresh_from_db()
    assert (draft.status, draft.issue_date, draft.open_amount) == ("issued", timezone.localdate(), Decimal("250.00"))
    assert f"Issued invoice {draft.number} for 250.00 USD" in response.text
    assert "Balance now 250.00 USD." in response.text


def test_issuing_an_invoice_twice_says_it_is_no_longer_a_draft(client, ar_clerk, own_customer, draft):
    client.force_login(ar_clerk)
    client.post(url("issue_invoice", own_customer, draft.pk))
    before = books()
    response = client.post(url("issue_invoice", own_customer, draft.pk))
    assert response.status_code == 422
    assert "The invoice was not issued" in response.text and "not a draft" in response.text
    assert books() == before


def test_a_rep_may_not_issue_from_the_panel(client, sales_rep, own_customer, draft):
    client.force_login(sales_rep)
    assert client.post(url("issue_invoice", own_customer, draft.pk)).status_code == 403
    draft.refresh_from_db()
    assert draft.status == "draft"


# --- Voiding an invoice -------------------------------------------------------------------------


def test_void_first_asks_for_confirmation_under_the_invoice(client, ar_clerk, own_customer, older_and_newer):
    _, newer = older_and_newer
    client.force_login(ar_clerk)
    response = client.get(url("void_invoice", own_customer, newer.pk), headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert f"Void invoice {newer.number}?" in response.text
    assert "this cannot be undone" in response.text
    newer.refresh_from_db()
    assert newer.status == "issued"


def test_void_confirmation_works_without_javascript(client, ar_clerk, own_customer, older_and_newer):
    _, newer = older_and_newer
    client.force_login(ar_clerk)
    response = client.get(url("void_invoice", own_customer, newer.pk))
    assert response.status_code == 200
    assert "<html" in response.text and f"Void invoice {newer.number}?" in response.text


def test_a_confirmed_void_reverses_the_invoice(client, ar_clerk, own_customer, older_and_newer):
    _, newer = older_and_newer
    client.force_login(ar_clerk)
    response = client.post(
        url("void_invoice", own_customer, newer.pk), {"voided_on": timezone.localdate().isoformat()}, headers=HTMX
    )
    assert response.status_code == 200
    newer.refresh_from_db()
    assert (newer.status, newer.open_amount, newer.voided_on) == ("void", Decimal("0.00"), timezone.localdate())
    assert f"Voided invoice {newer.number}" in response.text
    assert "Balance now 100.00 USD." in response.text


def test_an_invoice_with_a_payment_applied_cannot_be_voided(client, ar_clerk, own_customer, older_and_newer):
    older, _ = older_and_newer
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal(10), received_on=days_ago(1), method="cash"
    )
    client.force_login(ar_clerk)
    confirmation = client.get(url("void_invoice", own_customer, older.pk), headers=HTMX)
    assert f"Invoice {older.number} cannot be voided: payments or credits have been applied" in confirmation.text
    before = books()
    response = client.post(url("void_invoice", own_customer, older.pk), {"voided_on": timezone.localdate().isoformat()})
    assert response.status_code == 422
    assert "only an invoice with nothing applied can be voided" in response.text
    assert books() == before


def test_a_void_in_a_locked_period_shows_the_reason_next_to_the_date(
    client, ar_clerk, finance_admin, own_customer, older_and_newer
):
    _, newer = older_and_newer
    lock_period(actor=finance_admin, locked_through=days_ago(3))
    client.force_login(ar_clerk)
    before = books()
    response = client.post(
        url("void_invoice", own_customer, newer.pk), {"voided_on": days_ago(5).isoformat()}, headers=HTMX
    )
    assert response.status_code == 200
    form = response.context["invoice_action"].form
    assert "The books are locked through" in " ".join(form.errors["voided_on"])
    assert books() == before


def test_a_rep_may_not_void(client, sales_rep, ar_clerk, own_customer, others_customer, older_and_newer):
    _, newer = older_and_newer
    elsewhere = issue(ar_clerk, others_customer, "10.00", on=days_ago(3))
    client.force_login(sales_rep)
    before = books()
    today = {"voided_on": timezone.localdate().isoformat()}
    assert client.get(url("void_invoice", own_customer, newer.pk)).status_code == 403
    assert client.post(url("void_invoice", own_customer, newer.pk), today).status_code == 403
    assert client.post(url("void_invoice", others_customer, elsewhere.pk), today).status_code == 404
    assert books() == before


def test_voiding_from_the_panel_closes_a_pending_write_off(client, ar_clerk, own_customer, older_and_newer):
    _, newer = older_and_newer
    request = services.request_write_off(actor=ar_clerk, invoice=newer, reason="Gone bust")
    client.force_login(ar_clerk)
    confirmation = client.get(url("void_invoice", own_customer, newer.pk), headers=HTMX)
    assert "The write-off requested for it is closed as rejected." in confirmation.text
    client.post(url("void_invoice", own_customer, newer.pk), {"voided_on": timezone.localdate().isoformat()})
    request.refresh_from_db()
    assert request.status == WriteOff.Status.REJECTED
    assert Invoice.objects.get(pk=newer.pk).status == "void"
