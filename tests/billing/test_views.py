"""The billing panel on the customer page, and recording and allocating payments from it."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.forms import new_idempotency_key
from billing.models import Invoice, Payment, PaymentAllocation
from crm.panels import customer_panels
from crm.roles import Role
from ledger.services import lock_period
from tests.billing.conftest import issue
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


@pytest.fixture
def two_open_invoices(ar_clerk, own_customer):
    """100.00 issued 60 days ago (30 days overdue) and 80.00 issued 10 days ago (not yet due)."""
    return issue(ar_clerk, own_customer, "100.00", on=days_ago(60)), issue(
        ar_clerk, own_customer, "80.00", on=days_ago(10)
    )


def detail(client, customer, **kwargs):
    return client.get(reverse("crm:customer_detail", args=[customer.pk]), **kwargs)


def payment_data(**overrides):
    data = {
        "amount": "150.00",
        "received_on": timezone.localdate().isoformat(),
        "method": "bank_transfer",
        "reference": "BT-1",
        "auto_apply": "on",
        "idempotency_key": new_idempotency_key(),
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


def record_url(customer):
    return reverse("billing:record_payment", args=[customer.pk])


def allocate_url(payment):
    return reverse("billing:allocate_payment", args=[payment.customer_id, payment.pk])


# --- The panel -------------------------------------------------------------------------------


def test_billing_registers_its_panel_on_the_customer_page():
    assert "Billing" in [panel.name for panel in customer_panels()]


def test_the_panel_shows_balance_overdue_invoices_and_payments(client, ar_clerk, own_customer, two_open_invoices):
    older, newer = two_open_invoices
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal("30"), received_on=days_ago(1), method="card"
    )
    client.force_login(ar_clerk)
    response = detail(client, own_customer)
    billing = response.context["billing"]
    assert (billing.balances.balance, billing.balances.overdue, billing.balances.unapplied_credit) == (
        Decimal("150.00"),
        Decimal("70.00"),
        Decimal("0.00"),
    )
    assert [(row.invoice, row.days_overdue) for row in billing.invoices] == [(older, 30), (newer, None)]
    assert older.number in response.text and "Partially paid" in response.text
    assert 'aria-label="Payments"' in response.text
    assert "Record a payment" in response.text


def test_credit_used_is_the_balance_over_the_limit(client, ar_clerk, finance_admin, two_open_invoices, own_customer):
    from crm import services as crm_services

    crm_services.update_customer(actor=finance_admin, customer=own_customer, credit_limit=Decimal("200"))
    client.force_login(ar_clerk)
    balances = detail(client, own_customer).context["billing"].balances
    assert (balances.credit_used, balances.credit_bar_percent, balances.credit_level) == (
        Decimal("90.00"),
        90,
        "warning",
    )


def test_a_sales_rep_sees_the_panel_without_the_payment_forms(client, sales_rep, ar_clerk, own_customer):
    issue(ar_clerk, own_customer, "100.00", on=days_ago(5))
    services.record_payment(
        actor=ar_clerk,
        customer=own_customer,
        amount=Decimal("30"),
        received_on=days_ago(1),
        method="card",
        auto_apply=False,
    )
    client.force_login(sales_rep)
    response = detail(client, own_customer)
    assert 'id="billing-panel"' in response.text
    assert "Record a payment" not in response.text
    assert "Apply credit to invoice" not in response.text


def test_someone_without_invoice_rights_sees_no_billing_panel(client, own_customer):
    viewer = UserFactory()
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_customer", "view_all_customers"], content_type__app_label="crm")
    )
    client.force_login(viewer)
    response = detail(client, own_customer)
    assert response.status_code == 200
    assert 'id="billing-panel"' not in response.text


def add_documents(actor, customer, count: int) -> None:
    """`count` of each kind the panel lists: open invoices, payments (half applied, half left as
    credit with a refund out of it), credit notes (half applied), and write-off requests."""
    invoices = [issue(actor, customer, "100.00", on=days_ago(count - number + 40)) for number in range(count)]
    for number in range(count):
        payment = services.record_payment(
            actor=actor,
            customer=customer,
            amount=Decimal("50"),
            received_on=days_ago(1),
            method="card",
            auto_apply=number % 2 == 0,
        )
        if number % 2:
            services.refund_credit(
                actor=actor, payment=payment, amount=Decimal(1), refunded_on=days_ago(1), method="card"
            )
        services.issue_credit_note(
            actor=actor,
            customer=customer,
            reason="Goodwill",
            lines=[services.LineInput(description="Goodwill", unit_price=Decimal("5.00"))],
            invoice=invoices[-1 - number] if number % 2 else None,
        )
    for invoice in invoices[-(count // 2 or 1) :]:
        services.request_write_off(actor=actor, invoice=invoice, reason="Insolvent")


# The customer page for AR with every panel: the page's own queries (session, user, permissions,
# customer, contacts, activity, history, roles), the account summary, the Collections panel, and
# nine for the Billing panel: balances, invoices, pending write-offs, payments and their
# allocations, credit notes and their allocations, refunds, tax rates (for the credit-note form).
# Issue 5 added four to the Billing panel (credit notes, their allocations, pending write-offs and
# tax rates; the refunds of payments and credit notes are read in one), a constant number.
# Issue 6 added six: the DSO's probes for anything dated after today (then it reads the balances
# kept on the documents) and the open and recent invoices read as two bounded queries.
CUSTOMER_PAGE_QUERIES = 36


def test_the_customer_page_query_count_does_not_grow_with_documents(
    client, ar_clerk, own_customer, django_assert_max_num_queries
):
    client.force_login(ar_clerk)
    add_documents(ar_clerk, own_customer, 3)
    with django_assert_max_num_queries(CUSTOMER_PAGE_QUERIES) as few:
        detail(client, own_customer)
    add_documents(ar_clerk, own_customer, 27)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = detail(client, own_customer)
    assert response.status_code == 200
    billing = response.context["billing"]
    assert len(billing.open_invoices) > 15
    assert len(billing.credit_notes) >= 15 and len(billing.pending_write_offs) == 1 + 13
    assert len([form for _, form, _ in response.context["payment_rows"] if form is not None]) == 1 + 13


def test_the_billing_panel_reads_in_eight_queries(rf, ar_clerk, own_customer, django_assert_num_queries):
    """A fixed number whatever the customer's history: open invoices and the most recent ones are
    one bounded read (two on SQLite, which cannot limit the parts of a UNION), so a customer with
    thousands of invoices opens as fast as one with four."""
    from billing.views import panel_context

    add_documents(ar_clerk, own_customer, 4)
    request = rf.get("/")
    request.user = ar_clerk
    ar_clerk.has_perm("billing.view_invoice")  # the permission cache, read once per request anyway
    with django_assert_num_queries(8 if connection.features.supports_slicing_ordering_in_compound else 9):
        panel_context(request, own_customer)


# --- Recording a payment ---------------------------------------------------------------------


def test_a_payment_recorded_with_htmx_pays_the_oldest_invoice_first_and_swaps_the_panel(
    client, ar_clerk, own_customer, two_open_invoices
):
    older, newer = two_open_invoices
    client.force_login(ar_clerk)
    response = client.post(record_url(own_customer), payment_data(), headers=HTMX)
    assert response.status_code == 200
    assert "<html" not in response.text
    assert 'id="billing-panel"' in response.text
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, newer.status, newer.open_amount) == ("paid", "partially_paid", Decimal("30.00"))
    assert response.context["billing"].balances.balance == Decimal("30.00")
    assert f"Applied 100.00 USD to {older.number}, 50.00 USD to {newer.number}" in response.text
    payment = Payment.objects.get()
    assert (payment.reference, payment.created_by, payment.history.latest().history_user) == (
        "BT-1",
        ar_clerk,
        ar_clerk,
    )


def test_a_payment_recorded_without_javascript_redirects_to_the_customer(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    response = client.post(record_url(own_customer), payment_data(amount="25"))
    assert response.status_code == 302
    assert response.url == reverse("crm:customer_detail", args=[own_customer.pk]) + "#billing-panel"
    assert Payment.objects.get().unapplied_amount == Decimal("25.00")


def test_the_same_form_submitted_twice_records_one_payment(client, ar_clerk, own_customer, two_open_invoices):
    client.force_login(ar_clerk)
    data = payment_data()
    first = client.post(record_url(own_customer), data, headers=HTMX)
    second = client.post(record_url(own_customer), data, headers=HTMX)
    assert (first.status_code, second.status_code) == (200, 200)
    assert Payment.objects.count() == 1
    assert PaymentAllocation.objects.count() == 2


def test_each_shown_payment_form_carries_a_fresh_idempotency_key(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    keys = {detail(client, own_customer).context["payment_form"]["idempotency_key"].value() for _ in range(2)}
    assert len(keys) == 2


def test_reusing_a_used_form_for_a_different_payment_is_refused_with_a_fresh_key(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    data = payment_data(amount="25")
    client.post(record_url(own_customer), data, headers=HTMX)
    response = client.post(record_url(own_customer), {**data, "amount": "40"}, headers=HTMX)
    assert "already used to record a different payment" in response.text
    assert Payment.objects.count() == 1
    assert response.context["payment_form"]["idempotency_key"].value() != data["idempotency_key"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"amount": "0"}, "Ensure this value is greater than or equal to 0.01."),
        ({"amount": "abc"}, "Enter a number."),
        ({"received_on": None}, "This field is required."),
        ({"method": "barter"}, "Select a valid choice."),
    ],
)
def test_bad_payment_input_is_refused_with_a_message_and_nothing_is_written(
    client, ar_clerk, own_customer, overrides, message
):
    client.force_login(ar_clerk)
    response = client.post(record_url(own_customer), payment_data(**overrides))
    assert response.status_code == 422
    assert message in response.text
    assert not Payment.objects.exists()


def test_a_payment_dated_in_the_future_is_refused(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    response = client.post(record_url(own_customer), payment_data(received_on=tomorrow), headers=HTMX)
    assert "cannot have been received in the future" in response.text
    assert not Payment.objects.exists()


def test_a_payment_into_a_locked_period_shows_the_ledgers_reason_and_writes_nothing(
    client, ar_clerk, finance_admin, own_customer, two_open_invoices
):
    lock_period(actor=finance_admin, locked_through=days_ago(5))
    client.force_login(ar_clerk)
    response = client.post(record_url(own_customer), payment_data(received_on=days_ago(6).isoformat()), headers=HTMX)
    assert response.status_code == 200
    assert "The books are locked through" in response.text
    assert not Payment.objects.exists()
    assert set(Invoice.objects.values_list("status", flat=True)) == {"issued"}


def test_a_payment_in_a_currency_without_a_rate_shows_the_reason(client, ar_clerk):
    customer = CustomerFactory(currency="EUR")
    client.force_login(ar_clerk)
    response = client.post(record_url(customer), payment_data(), headers=HTMX)
    assert "No EUR exchange rate" in response.text
    assert not Payment.objects.exists()


def test_a_sales_rep_may_not_record_a_payment(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = client.post(record_url(own_customer), payment_data())
    assert response.status_code == 403
    assert not Payment.objects.exists()


def test_a_customer_out_of_reach_answers_404_even_with_the_payment_right(client, others_customer):
    rep = UserFactory(role=Role.SALES)
    rep.user_permissions.add(Permission.objects.get(codename="add_payment"))
    client.force_login(rep)
    response = client.post(record_url(others_customer), payment_data())
    assert response.status_code == 404
    assert others_customer.display_name not in response.text
    assert not Payment.objects.exists()


def test_recording_a_payment_is_post_only(client, ar_clerk, own_customer):
    client.force_login(ar_clerk)
    assert client.get(record_url(own_customer)).status_code == 405


# --- Allocating a payment by hand ------------------------------------------------------------


@pytest.fixture
def unapplied_payment(ar_clerk, own_customer):
    return services.record_payment(
        actor=ar_clerk,
        customer=own_customer,
        amount=Decimal("120"),
        received_on=days_ago(1),
        method="cheque",
        auto_apply=False,
    )


def test_the_allocation_form_suggests_the_oldest_invoice_and_what_fits(
    client, ar_clerk, own_customer, two_open_invoices, unapplied_payment
):
    client.force_login(ar_clerk)
    ((row, form, _refund_form),) = detail(client, own_customer).context["payment_rows"]
    assert row.allocatable == list(two_open_invoices)
    assert form.initial == {"invoice": two_open_invoices[0].pk, "amount": Decimal("100.00")}


def test_an_allocation_applies_credit_to_the_chosen_invoice_in_place(
    client, ar_clerk, own_customer, two_open_invoices, unapplied_payment
):
    _, newer = two_open_invoices
    client.force_login(ar_clerk)
    response = client.post(allocate_url(unapplied_payment), {"invoice": newer.pk, "amount": "50"}, headers=HTMX)
    assert response.status_code == 200
    assert f"Applied 50.00 USD of the payment received {days_ago(1):%Y-%m-%d} to {newer.number}." in response.text
    newer.refresh_from_db()
    unapplied_payment.refresh_from_db()
    assert (newer.status, newer.open_amount, unapplied_payment.unapplied_amount) == (
        "partially_paid",
        Decimal("30.00"),
        Decimal("70.00"),
    )


def test_an_allocation_without_an_amount_applies_as_much_as_fits(
    client, ar_clerk, own_customer, two_open_invoices, unapplied_payment
):
    older, _ = two_open_invoices
    client.force_login(ar_clerk)
    response = client.post(allocate_url(unapplied_payment), {"invoice": older.pk, "amount": ""})
    assert response.status_code == 302
    older.refresh_from_db()
    assert older.status == "paid"


def test_an_allocation_above_the_open_amount_is_refused_and_writes_nothing(
    client, ar_clerk, own_customer, two_open_invoices, unapplied_payment
):
    _, newer = two_open_invoices
    client.force_login(ar_clerk)
    response = client.post(allocate_url(unapplied_payment), {"invoice": newer.pk, "amount": "90"}, headers=HTMX)
    assert response.status_code == 200
    assert f"more than the 80.00 still open on invoice {newer.number}" in response.text
    assert not PaymentAllocation.objects.exists()
    # The refused form is shown again with what was typed.
    assert response.context["payment_rows"][0][1].data["amount"] == "90"


def test_an_allocation_to_another_customers_invoice_is_refused(
    client, ar_clerk, own_customer, others_customer, unapplied_payment
):
    foreign = issue(ar_clerk, others_customer, "50.00", on=days_ago(3))
    issue(ar_clerk, own_customer, "50.00", on=days_ago(3))
    client.force_login(ar_clerk)
    response = client.post(allocate_url(unapplied_payment), {"invoice": foreign.pk, "amount": "10"})
    assert response.status_code == 422
    assert "no longer open for this payment" in response.text
    assert not PaymentAllocation.objects.exists()


def test_a_payment_of_another_customer_answers_404(client, ar_clerk, others_customer, unapplied_payment):
    client.force_login(ar_clerk)
    url = reverse("billing:allocate_payment", args=[others_customer.pk, unapplied_payment.pk])
    assert client.post(url, {"amount": "10"}).status_code == 404


def test_a_sales_rep_may_not_allocate(client, sales_rep, own_customer, two_open_invoices, unapplied_payment):
    client.force_login(sales_rep)
    response = client.post(allocate_url(unapplied_payment), {"invoice": two_open_invoices[0].pk, "amount": "10"})
    assert response.status_code == 403
    assert not PaymentAllocation.objects.exists()


def test_open_invoices_come_oldest_due_first_then_the_newest_others(client, ar_clerk, own_customer):
    paid_long_ago = issue(ar_clerk, own_customer, "10.00", on=days_ago(90))
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal("10"), received_on=days_ago(80), method="card"
    )
    recent_open = issue(ar_clerk, own_customer, "20.00", on=days_ago(5))
    old_open = issue(ar_clerk, own_customer, "30.00", on=days_ago(50))
    void = services.void_invoice(
        actor=ar_clerk, invoice=issue(ar_clerk, own_customer, "40.00", on=days_ago(20)), voided_on=days_ago(19)
    )
    draft = services.create_invoice(
        actor=ar_clerk, customer=own_customer, lines=[services.LineInput(description="Draft", unit_price=Decimal(5))]
    )
    client.force_login(ar_clerk)
    rows = detail(client, own_customer).context["billing"].invoices
    assert [row.invoice.pk for row in rows] == [old_open.pk, recent_open.pk, draft.pk, void.pk, paid_long_ago.pk]
    assert [row.days_overdue for row in rows] == [20, None, None, None, None]


def test_an_allocation_refused_for_a_payment_with_no_credit_left_says_why(
    client, ar_clerk, own_customer, two_open_invoices, unapplied_payment
):
    older, newer = two_open_invoices
    services.allocate_payment(actor=ar_clerk, payment=unapplied_payment, invoice=older, amount=Decimal(100))
    services.allocate_payment(actor=ar_clerk, payment=unapplied_payment, invoice=newer, amount=Decimal(20))
    client.force_login(ar_clerk)
    response = client.post(allocate_url(unapplied_payment), {"invoice": newer.pk, "amount": "10"}, headers=HTMX)
    assert "Nothing was changed: 10.00 USD is more than the 0.00 unapplied" in response.text
    assert PaymentAllocation.objects.count() == 2
