"""Write-offs: AR asks from the Billing panel, a Finance Admin decides on the desk
(/ar/write-offs/). Also the two service rules behind them: only those with the right may ask,
and voiding an invoice closes a request still awaiting approval."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.errors import NotPermitted
from billing.models import Invoice, WriteOff
from config import audit
from crm.models import Activity, Notification
from crm.roles import Role
from ledger.models import JournalEntry
from ledger.services import lock_period
from tests.billing.conftest import books, issue
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
DESK = reverse("writeoffs:desk")


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def request_url(invoice) -> str:
    return reverse("billing:request_write_off", args=[invoice.customer_id, invoice.pk])


def decide_url(write_off) -> str:
    return reverse("writeoffs:decide", args=[write_off.pk])


def approve(on=None):
    return {"decision": "approve", "written_off_on": (on or timezone.localdate()).isoformat()}


@pytest.fixture
def bad_debt(ar_clerk, own_customer):
    """90.00 issued 120 days ago, with 10.00 paid on it: 80.00 open."""
    invoice = issue(ar_clerk, own_customer, "90.00", on=days_ago(120))
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal(10), received_on=days_ago(100), method="cash"
    )
    invoice.refresh_from_db()
    return invoice


@pytest.fixture
def requested(ar_clerk, bad_debt):
    return services.request_write_off(actor=ar_clerk, invoice=bad_debt, reason="Customer insolvent")


# --- The service rules --------------------------------------------------------------------------


def test_the_service_refuses_a_write_off_request_from_someone_without_the_right(sales_rep, bad_debt):
    before = books()
    with pytest.raises(NotPermitted, match="Only accounts receivable or a Finance Admin"):
        services.request_write_off(actor=sales_rep, invoice=bad_debt, reason="Looks bad")
    assert books() == before


def test_the_service_lets_an_unattended_actor_ask_for_a_write_off(bad_debt):
    write_off = services.request_write_off(actor=audit.system_actor("tests"), invoice=bad_debt, reason="Dissolved")
    assert write_off.status == WriteOff.Status.REQUESTED


def test_voiding_an_invoice_rejects_its_pending_write_off(ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "50.00", on=days_ago(20))
    write_off = services.request_write_off(actor=ar_clerk, invoice=invoice, reason="Never delivered")
    services.void_invoice(actor=ar_clerk, invoice=invoice, voided_on=days_ago(1))
    write_off.refresh_from_db()
    assert (write_off.status, write_off.decided_by, write_off.entry) == (WriteOff.Status.REJECTED, ar_clerk, None)
    assert write_off.decided_at is not None
    latest = write_off.history.latest()
    assert (latest.history_change_reason, latest.history_user) == (f"Invoice {invoice} was voided.", ar_clerk)


def test_a_refused_void_leaves_the_pending_write_off_alone(ar_clerk, finance_admin, own_customer):
    invoice = issue(ar_clerk, own_customer, "50.00", on=days_ago(20))
    write_off = services.request_write_off(actor=ar_clerk, invoice=invoice, reason="Never delivered")
    lock_period(actor=finance_admin, locked_through=days_ago(2))
    with pytest.raises(Exception, match="locked"):
        services.void_invoice(actor=ar_clerk, invoice=invoice, voided_on=days_ago(3))
    write_off.refresh_from_db()
    assert write_off.status == WriteOff.Status.REQUESTED


# --- Asking from the Billing panel --------------------------------------------------------------


def test_the_request_form_opens_under_the_invoice(client, ar_clerk, own_customer, bad_debt):
    client.force_login(ar_clerk)
    response = client.get(request_url(bad_debt), headers=HTMX)
    assert response.status_code == 200
    assert f"Request a write-off of invoice {bad_debt.number}" in response.text
    assert "80.00 USD is open on it" in response.text
    assert not WriteOff.objects.exists()


def test_ar_asks_for_a_write_off_in_place(client, ar_clerk, own_customer, bad_debt):
    client.force_login(ar_clerk)
    response = client.post(request_url(bad_debt), {"reason": "Customer insolvent"}, headers=HTMX)
    assert response.status_code == 200
    write_off = WriteOff.objects.get()
    assert (write_off.invoice, write_off.reason, write_off.requested_by, write_off.status) == (
        bad_debt,
        "Customer insolvent",
        ar_clerk,
        WriteOff.Status.REQUESTED,
    )
    assert f"Asked for invoice {bad_debt.number} (80.00 USD open) to be written off." in response.text
    pending = response.text.split('aria-label="Write-offs awaiting approval"')[1]
    assert bad_debt.number in pending and "Customer insolvent" in pending
    assert "Write-off requested" in response.text
    bad_debt.refresh_from_db()
    assert bad_debt.status == "partially_paid"


def test_a_write_off_request_needs_a_reason_next_to_the_field(client, ar_clerk, own_customer, bad_debt):
    client.force_login(ar_clerk)
    response = client.post(request_url(bad_debt), {"reason": ""})
    assert response.status_code == 422
    assert response.context["invoice_action"].form.errors["reason"] == ["This field is required."]
    assert not WriteOff.objects.exists()


def test_a_second_request_for_the_same_invoice_is_refused(client, ar_clerk, own_customer, requested):
    client.force_login(ar_clerk)
    before = books()
    response = client.post(request_url(requested.invoice), {"reason": "Again"}, headers=HTMX)
    assert "is already awaiting approval" in response.text
    assert books() == before


def test_a_paid_invoice_cannot_be_written_off(client, ar_clerk, own_customer):
    paid = issue(ar_clerk, own_customer, "20.00", on=days_ago(30))
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal(20), received_on=days_ago(10), method="cash"
    )
    client.force_login(ar_clerk)
    response = client.post(request_url(paid), {"reason": "Oops"})
    assert response.status_code == 422
    assert "nothing is open to write off" in response.text
    assert not WriteOff.objects.exists()


def test_a_rep_may_not_ask_for_a_write_off(client, sales_rep, ar_clerk, own_customer, others_customer, bad_debt):
    theirs = issue(ar_clerk, others_customer, "30.00", on=days_ago(60))
    client.force_login(sales_rep)
    assert client.get(request_url(bad_debt)).status_code == 403
    assert client.post(request_url(bad_debt), {"reason": "Gone"}).status_code == 403
    assert client.post(request_url(theirs), {"reason": "Gone"}).status_code == 404
    assert not WriteOff.objects.exists()


# --- The desk -----------------------------------------------------------------------------------


def test_ar_sees_pending_requests_on_the_desk_but_may_not_decide(client, ar_clerk, requested):
    client.force_login(ar_clerk)
    response = client.get(DESK)
    assert response.status_code == 200
    ((write_off, approve_form, reject_form),) = response.context["rows"]
    assert (write_off, approve_form, reject_form) == (requested, None, None)
    for shown in ("Northwind Traders", requested.invoice.number, "80.00 USD", "Customer insolvent", "You"):
        assert shown in response.text
    assert "Approve and post" not in response.text


def test_a_finance_admin_gets_a_decision_form_for_each_request(client, finance_admin, requested):
    client.force_login(finance_admin)
    response = client.get(DESK)
    ((_, approve_form, reject_form),) = response.context["rows"]
    assert approve_form.initial["written_off_on"] == timezone.localdate()
    assert reject_form is not None
    assert "Approve and post" in response.text and "Reject" in response.text


def test_the_desk_can_show_only_my_requests(client, ar_clerk, own_customer, requested):
    colleague = UserFactory(role=Role.ACCOUNTS_RECEIVABLE)
    other = issue(ar_clerk, own_customer, "25.00", on=days_ago(90))
    services.request_write_off(actor=colleague, invoice=other, reason="Theirs")
    client.force_login(ar_clerk)
    assert len(client.get(DESK).context["rows"]) == 2
    assert [row[0] for row in client.get(DESK, {"mine": "1"}).context["rows"]] == [requested]


def test_a_rep_has_no_desk(client, sales_rep, requested):
    client.force_login(sales_rep)
    assert client.get(DESK).status_code == 403


def test_an_empty_desk_says_where_requests_come_from(client, ar_clerk):
    client.force_login(ar_clerk)
    response = client.get(DESK)
    assert "No write-off is awaiting a decision" in response.text
    assert "No write-off has been decided yet." in response.text


def test_a_finance_admin_approves_and_the_open_balance_is_posted(client, ar_clerk, finance_admin, requested):
    client.force_login(finance_admin)
    entries = JournalEntry.objects.count()
    response = client.post(decide_url(requested), approve(days_ago(1)), headers=HTMX)
    assert response.status_code == 200
    requested.refresh_from_db()
    invoice = Invoice.objects.get(pk=requested.invoice_id)
    assert (requested.status, requested.amount, requested.written_off_on, requested.decided_by) == (
        WriteOff.Status.APPROVED,
        Decimal("80.00"),
        days_ago(1),
        finance_admin,
    )
    assert (invoice.status, invoice.open_amount) == ("written_off", Decimal("0.00"))
    assert JournalEntry.objects.count() == entries + 1
    assert f"Wrote off invoice {invoice.number} of Northwind Traders: 80.00 USD posted to bad debt" in response.text
    assert [decision.write_off for decision in response.context["decisions"]] == [requested]
    assert response.context["rows"] == []
    note = Notification.objects.get(recipient=ar_clerk)
    assert "was approved" in note.text
    assert Activity.objects.filter(customer=invoice.customer, subject=invoice.number, kind="note").exists()


def test_an_approval_in_a_locked_period_shows_the_refusal_next_to_the_date(client, finance_admin, requested):
    lock_period(actor=finance_admin, locked_through=days_ago(5))
    client.force_login(finance_admin)
    before = books()
    response = client.post(decide_url(requested), approve(days_ago(6)))
    assert response.status_code == 422
    ((_, approve_form, _),) = response.context["rows"]
    assert "The books are locked through" in " ".join(approve_form.errors["written_off_on"])
    assert books() == before
    assert not Notification.objects.exists()


def test_an_approval_dated_in_the_future_is_refused(client, finance_admin, requested):
    client.force_login(finance_admin)
    response = client.post(decide_url(requested), approve(timezone.localdate() + timedelta(days=1)), headers=HTMX)
    assert "A write-off date cannot be in the future." in response.text
    requested.refresh_from_db()
    assert requested.status == WriteOff.Status.REQUESTED


def test_a_finance_admin_cannot_approve_their_own_request(client, finance_admin, bad_debt):
    own_request = services.request_write_off(actor=finance_admin, invoice=bad_debt, reason="Insolvent")
    client.force_login(finance_admin)
    desk = client.get(DESK)
    assert desk.context["rows"] == [(own_request, None, None)]
    assert "another Finance Admin decides on it" in desk.text
    before = books()
    response = client.post(decide_url(own_request), approve())
    assert response.status_code == 422
    assert "approved by someone other than the person who asked" in response.text
    assert books() == before


def test_a_finance_admin_rejects_with_a_reason_that_the_desk_keeps(client, ar_clerk, finance_admin, requested):
    client.force_login(finance_admin)
    response = client.post(
        decide_url(requested), {"decision": "reject", "reason": "Payment plan agreed; keep chasing"}, headers=HTMX
    )
    assert response.status_code == 200
    requested.refresh_from_db()
    assert (requested.status, requested.decided_by, requested.entry) == (
        WriteOff.Status.REJECTED,
        finance_admin,
        None,
    )
    assert Invoice.objects.get(pk=requested.invoice_id).status == "partially_paid"
    (decision,) = response.context["decisions"]
    assert decision.rejection_reason == "Payment plan agreed; keep chasing"
    assert "Payment plan agreed; keep chasing" in client.get(DESK).text
    assert "Payment plan agreed" in Notification.objects.get(recipient=ar_clerk).text
    timeline = Activity.objects.get(subject=requested.invoice.number)
    assert "rejected" in timeline.text and "Customer insolvent" in timeline.text


def test_a_rejection_needs_a_reason(client, finance_admin, requested):
    client.force_login(finance_admin)
    response = client.post(decide_url(requested), {"decision": "reject", "reason": " "})
    assert response.status_code == 422
    ((_, _, reject_form),) = response.context["rows"]
    assert reject_form.errors["reason"] == ["This field is required."]
    requested.refresh_from_db()
    assert requested.status == WriteOff.Status.REQUESTED


def test_a_request_decided_meanwhile_says_so_above_the_desk(client, finance_admin, requested):
    second_admin = UserFactory(role=Role.FINANCE_ADMIN)
    services.reject_write_off(actor=second_admin, write_off=requested)
    client.force_login(finance_admin)
    before = books()
    response = client.post(decide_url(requested), approve(), headers=HTMX)
    assert "Nothing was changed: This write-off is rejected already." in response.text
    assert books() == before


def test_ar_may_not_decide(client, ar_clerk, requested):
    colleague = UserFactory(role=Role.ACCOUNTS_RECEIVABLE)
    client.force_login(colleague)
    before = books()
    assert client.post(decide_url(requested), approve()).status_code == 403
    assert client.post(decide_url(requested), {"decision": "reject", "reason": "No"}).status_code == 403
    assert books() == before


def test_a_write_off_of_a_customer_out_of_reach_answers_404(client, ar_clerk, own_customer):
    stranger = CustomerFactory(display_name="Far Away Ltd")
    invoice = issue(ar_clerk, stranger, "40.00", on=days_ago(90))
    write_off = services.request_write_off(actor=ar_clerk, invoice=invoice, reason="Gone")
    rep = UserFactory(role=Role.SALES)
    rep.user_permissions.add(Permission.objects.get(codename="approve_writeoff"))
    client.force_login(rep)
    response = client.post(decide_url(write_off), approve())
    assert response.status_code == 404
    assert "Far Away" not in response.text
    write_off.refresh_from_db()
    assert write_off.status == WriteOff.Status.REQUESTED


def test_a_decision_that_is_neither_is_a_bad_request(client, finance_admin, requested):
    client.force_login(finance_admin)
    assert client.post(decide_url(requested), {"decision": "maybe"}).status_code == 400


def test_deciding_is_post_only(client, finance_admin, requested):
    client.force_login(finance_admin)
    assert client.get(decide_url(requested)).status_code == 405


def test_the_desk_reads_in_a_fixed_number_of_queries(
    client, ar_clerk, finance_admin, sales_rep, django_assert_max_num_queries
):
    def add_requests(count):
        for _ in range(count):
            customer = CustomerFactory(owner=sales_rep)
            pending = issue(ar_clerk, customer, "30.00", on=days_ago(90))
            services.request_write_off(actor=ar_clerk, invoice=pending, reason="Insolvent")
            decided = issue(ar_clerk, customer, "20.00", on=days_ago(90))
            write_off = services.request_write_off(actor=ar_clerk, invoice=decided, reason="Insolvent")
            services.reject_write_off(actor=finance_admin, write_off=write_off)

    client.force_login(finance_admin)
    add_requests(2)
    with django_assert_max_num_queries(12) as few:
        client.get(DESK)
    add_requests(10)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(DESK)
    assert len(response.context["rows"]) == 12
