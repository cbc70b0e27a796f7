"""The billing and ledger admins write only through services, and show what they may not change."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import CreditNote, Invoice, Payment, Refund, WriteOff
from crm.roles import Role
from ledger.models import Account, ExchangeRate, JournalEntry, PeriodLock
from ledger.services import lock_period
from tests.billing.conftest import ISSUED_ON, issue
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, finance_admin):
    client.force_login(finance_admin)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def line_data(prefix="lines", **line):
    data = {
        f"{prefix}-TOTAL_FORMS": "1",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "1",
        f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-description": "Consulting",
        f"{prefix}-0-quantity": "2",
        f"{prefix}-0-unit_price": "50",
        f"{prefix}-0-discount_type": "none",
        f"{prefix}-0-discount_value": "0",
    }
    data.update({f"{prefix}-0-{name}": value for name, value in line.items()})
    return data


# --- Invoices ---------------------------------------------------------------------------------


def test_an_invoice_added_in_the_admin_is_a_priced_draft_made_by_the_service(
    admin_client, finance_admin, own_customer, widget
):
    response = admin_client.post(
        reverse("admin:billing_invoice_add"),
        {
            "customer": own_customer.pk,
            "due_date": "",
            "memo": "PO 77",
            **line_data(product=widget.pk, unit_price="", description=""),
        },
    )
    assert response.status_code == 302
    invoice = Invoice.objects.get()
    line = invoice.lines.get()
    assert (invoice.status, invoice.currency, invoice.gross_total, invoice.created_by) == (
        "draft",
        "USD",
        Decimal("24.00"),  # 2 × 10.00 from the product, plus its 20% VAT
        finance_admin,
    )
    assert (line.description, line.unit_price, line.tax_rate) == ("Widget", Decimal("10.0000"), widget.tax_rate)
    assert invoice.history.latest().history_user == finance_admin


def test_a_line_the_service_would_refuse_is_refused_on_the_form(admin_client, own_customer):
    response = admin_client.post(
        reverse("admin:billing_invoice_add"),
        {"customer": own_customer.pk, **line_data(discount_type="amount", discount_value="500")},
    )
    assert response.status_code == 200
    assert "cannot exceed the line" in response.text
    assert not Invoice.objects.exists()


def test_an_invoice_needs_a_line(admin_client, own_customer):
    data = {"customer": own_customer.pk, **line_data()}
    data.update({"lines-TOTAL_FORMS": "0"})
    response = admin_client.post(reverse("admin:billing_invoice_add"), data)
    assert response.status_code == 200
    assert "Please submit at least 1 form." in response.text
    assert not Invoice.objects.exists()


def test_the_issue_action_numbers_and_posts_drafts(admin_client, own_customer, finance_admin):
    draft = services.create_invoice(
        actor=finance_admin,
        customer=own_customer,
        lines=[services.LineInput(description="Setup", unit_price=Decimal(100))],
    )
    response = admin_client.post(
        reverse("admin:billing_invoice_changelist"),
        {"action": "issue_drafts", "_selected_action": [draft.pk]},
        follow=True,
    )
    draft.refresh_from_db()
    assert (draft.status, draft.number) == ("issued", "INV-000001")
    assert draft.issue_entry is not None
    assert "Invoices issued: 1." in messages_of(response)


def test_an_action_the_service_refuses_says_why_and_changes_nothing(admin_client, own_customer, ar_clerk):
    invoice = issue(ar_clerk, own_customer, "100.00")
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal(100), received_on=ISSUED_ON, method="cash"
    )
    response = admin_client.post(
        reverse("admin:billing_invoice_changelist"),
        {"action": "void_invoices", "_selected_action": [invoice.pk]},
        follow=True,
    )
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert any("only an invoice with nothing applied can be voided" in message for message in messages_of(response))


def test_on_an_issued_invoice_only_the_dispute_flag_changes_and_through_the_service(
    admin_client, finance_admin, own_customer, ar_clerk
):
    invoice = issue(ar_clerk, own_customer, "100.00")
    url = reverse("admin:billing_invoice_change", args=[invoice.pk])
    form = admin_client.get(url).context["adminform"].form
    assert set(form.fields) == {"disputed", "dispute_reason"}
    response = admin_client.post(
        url,
        {
            "disputed": "on",
            "dispute_reason": "Wrong quantity",
            "gross_total": "1.00",
            "lines-TOTAL_FORMS": "0",
            "lines-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert (invoice.disputed, invoice.dispute_reason, invoice.gross_total) == (
        True,
        "Wrong quantity",
        Decimal("100.00"),
    )
    assert invoice.history.latest().history_user == finance_admin


def test_a_dispute_needs_a_reason(admin_client, own_customer, ar_clerk):
    invoice = issue(ar_clerk, own_customer, "100.00")
    response = admin_client.post(
        reverse("admin:billing_invoice_change", args=[invoice.pk]),
        {"disputed": "on", "dispute_reason": "", "lines-TOTAL_FORMS": "0", "lines-INITIAL_FORMS": "0"},
    )
    assert response.status_code == 200
    assert "Say what the customer disputes." in response.text
    invoice.refresh_from_db()
    assert not invoice.disputed


def test_invoices_cannot_be_deleted_in_the_admin(admin_client, own_customer, ar_clerk):
    invoice = issue(ar_clerk, own_customer, "100.00")
    response = admin_client.post(reverse("admin:billing_invoice_delete", args=[invoice.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Invoice.objects.filter(pk=invoice.pk).exists()


def test_history_cannot_be_reverted_around_the_services(admin_client, own_customer, ar_clerk):
    invoice = issue(ar_clerk, own_customer, "100.00")
    first = invoice.history.earliest()
    url = reverse("admin:billing_invoice_simple_history", args=[invoice.pk, first.history_id])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"disputed": "on", "dispute_reason": "x"}).status_code == 403
    invoice.refresh_from_db()
    assert (invoice.status, invoice.disputed) == ("issued", False)


# --- Payments, credit notes, refunds, write-offs ----------------------------------------------


def payment_form(client):
    return client.get(reverse("admin:billing_payment_add")).context["adminform"].form


def test_a_payment_recorded_in_the_admin_is_posted_and_applied_by_the_service(
    admin_client, finance_admin, own_customer, ar_clerk
):
    invoice = issue(ar_clerk, own_customer, "100.00")
    key = payment_form(admin_client).initial["idempotency_key"]
    data = {
        "customer": own_customer.pk,
        "amount": "60",
        "received_on": (ISSUED_ON + timedelta(days=1)).isoformat(),
        "method": "bank_transfer",
        "reference": "BT-9",
        "status": "cleared",
        "auto_apply": "on",
        "idempotency_key": key,
        "allocations-TOTAL_FORMS": "0",
        "allocations-INITIAL_FORMS": "0",
        "refunds-TOTAL_FORMS": "0",
        "refunds-INITIAL_FORMS": "0",
    }
    assert admin_client.post(reverse("admin:billing_payment_add"), data).status_code == 302
    resent = admin_client.post(reverse("admin:billing_payment_add"), data)
    assert resent.status_code == 200  # the key was used: refused on the form, not recorded twice
    payment = Payment.objects.get()
    invoice.refresh_from_db()
    assert (payment.entry_id is not None, payment.created_by, invoice.status) == (True, finance_admin, "partially_paid")


def test_a_payment_the_ledger_refuses_comes_back_as_a_message(admin_client, finance_admin, own_customer):
    lock_period(actor=finance_admin, locked_through=ISSUED_ON)
    data = {
        "customer": own_customer.pk,
        "amount": "60",
        "received_on": ISSUED_ON.isoformat(),
        "method": "cash",
        "status": "cleared",
        "idempotency_key": "admin-test-1",
        "allocations-TOTAL_FORMS": "0",
        "allocations-INITIAL_FORMS": "0",
        "refunds-TOTAL_FORMS": "0",
        "refunds-INITIAL_FORMS": "0",
    }
    response = admin_client.post(reverse("admin:billing_payment_add"), data, follow=True)
    assert any("Nothing was saved: The books are locked" in message for message in messages_of(response))
    assert not Payment.objects.exists()


def test_a_recorded_payment_cannot_be_changed_in_the_admin(admin_client, own_customer, ar_clerk):
    payment = services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal(10), received_on=ISSUED_ON, method="cash"
    )
    url = reverse("admin:billing_payment_change", args=[payment.pk])
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"amount": "99"}).status_code == 403
    payment.refresh_from_db()
    assert payment.amount == Decimal("10.00")


def test_a_credit_note_added_against_an_invoice_is_applied_by_the_service(admin_client, own_customer, ar_clerk):
    invoice = issue(ar_clerk, own_customer, "100.00")
    response = admin_client.post(
        reverse("admin:billing_creditnote_add"),
        {
            "customer": own_customer.pk,
            "invoice": invoice.pk,
            "reason": "Damaged goods",
            "issue_date": (ISSUED_ON + timedelta(days=2)).isoformat(),
            **line_data(description="Credit", quantity="1", unit_price="30"),
        },
    )
    assert response.status_code == 302
    note = CreditNote.objects.get()
    invoice.refresh_from_db()
    assert (note.number, note.unapplied_amount, invoice.open_amount) == ("CN-000001", Decimal("0.00"), Decimal("70.00"))


def test_a_refund_added_in_the_admin_comes_out_of_the_payments_credit(admin_client, own_customer, ar_clerk):
    payment = services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal(50), received_on=ISSUED_ON, method="cash"
    )
    response = admin_client.post(
        reverse("admin:billing_refund_add"),
        {
            "payment": payment.pk,
            "amount": "20",
            "refunded_on": (ISSUED_ON + timedelta(days=1)).isoformat(),
            "method": "cash",
            "idempotency_key": "admin-refund-1",
        },
    )
    assert response.status_code == 302
    payment.refresh_from_db()
    assert (Refund.objects.get().amount, payment.unapplied_amount) == (Decimal("20.00"), Decimal("30.00"))


def test_a_write_off_is_approved_by_another_finance_admin_through_the_service(
    admin_client, finance_admin, own_customer, ar_clerk
):
    invoice = issue(ar_clerk, own_customer, "100.00")
    write_off = services.request_write_off(actor=ar_clerk, invoice=invoice, reason="Insolvent")
    admin_client.post(
        reverse("admin:billing_writeoff_changelist"),
        {"action": "approve_write_offs", "_selected_action": [write_off.pk]},
    )
    write_off.refresh_from_db()
    invoice.refresh_from_db()
    assert (write_off.status, write_off.decided_by, invoice.status) == ("approved", finance_admin, "written_off")


def test_a_finance_admin_cannot_approve_their_own_write_off_request(
    admin_client, finance_admin, own_customer, ar_clerk
):
    invoice = issue(ar_clerk, own_customer, "100.00")
    admin_client.post(reverse("admin:billing_writeoff_add"), {"invoice": invoice.pk, "reason": "Gone"})
    write_off = WriteOff.objects.get()
    assert write_off.requested_by == finance_admin
    response = admin_client.post(
        reverse("admin:billing_writeoff_changelist"),
        {"action": "approve_write_offs", "_selected_action": [write_off.pk]},
        follow=True,
    )
    write_off.refresh_from_db()
    assert write_off.status == "requested"
    assert any("someone other than the person who asked" in message for message in messages_of(response))
    other = UserFactory(role=Role.FINANCE_ADMIN)
    admin_client.force_login(other)
    admin_client.post(
        reverse("admin:billing_writeoff_changelist"),
        {"action": "reject_write_offs", "_selected_action": [write_off.pk]},
    )
    write_off.refresh_from_db()
    assert (write_off.status, write_off.decided_by) == ("rejected", other)


# --- The ledger -------------------------------------------------------------------------------


def test_an_exchange_rate_is_entered_through_the_service(admin_client, finance_admin):
    response = admin_client.post(
        reverse("admin:ledger_exchangerate_add"),
        {"currency": "EUR", "rate_date": "2026-05-01", "rate": "1.0850", "source": ""},
    )
    assert response.status_code == 302
    rate = ExchangeRate.objects.get()
    assert (rate.rate, rate.source, rate.history.latest().history_user) == (
        Decimal("1.08500000"),
        "manual",
        finance_admin,
    )


def test_the_base_currency_has_no_rate_to_enter(admin_client):
    response = admin_client.post(
        reverse("admin:ledger_exchangerate_add"), {"currency": "USD", "rate_date": "2026-05-01", "rate": "1"}
    )
    assert "USD is the base currency" in response.text
    assert not ExchangeRate.objects.exists()


def test_a_lock_date_is_added_through_the_service_and_never_edited(admin_client, finance_admin):
    response = admin_client.post(
        reverse("admin:ledger_periodlock_add"), {"locked_through": "2026-03-31", "reason": "Q1 closed"}
    )
    assert response.status_code == 302
    lock = PeriodLock.objects.get()
    assert (lock.locked_through, lock.created_by) == (date(2026, 3, 31), finance_admin)
    change = reverse("admin:ledger_periodlock_change", args=[lock.pk])
    assert admin_client.post(change, {"locked_through": "2020-01-01"}).status_code == 403


def test_journal_entries_are_shown_with_their_lines_and_never_written(admin_client, own_customer, ar_clerk):
    invoice = issue(ar_clerk, own_customer, "100.00")
    entry = JournalEntry.objects.get(pk=invoice.issue_entry_id)
    response = admin_client.get(reverse("admin:ledger_journalentry_change", args=[entry.pk]))
    assert response.status_code == 200
    assert Account.objects.get(role="ar_control").code in response.text
    assert admin_client.get(reverse("admin:ledger_journalentry_add")).status_code == 403
    assert admin_client.post(reverse("admin:ledger_journalentry_change", args=[entry.pk]), {}).status_code == 403
    assert (
        admin_client.post(reverse("admin:ledger_journalentry_delete", args=[entry.pk]), {"post": "yes"}).status_code
        == 403
    )


def test_an_accounts_type_is_fixed_once_it_has_postings(admin_client, own_customer, ar_clerk):
    issue(ar_clerk, own_customer, "100.00")
    used = Account.objects.get(role="revenue")
    unused = Account.objects.get(role="bad_debt")

    def form_of(account):
        return admin_client.get(reverse("admin:ledger_account_change", args=[account.pk])).context["adminform"].form

    assert "type" not in form_of(used).fields
    assert "type" in form_of(unused).fields


def test_recurring_templates_are_edited_in_place_with_priced_lines(admin_client, own_customer, finance_admin):
    revenue = Account.objects.get(role="revenue")
    data = {
        "customer": own_customer.pk,
        "name": "Support plan",
        "interval": "month",
        "next_date": timezone.localdate().isoformat(),
        "is_active": "on",
        "memo": "",
        **line_data(revenue_account=revenue.pk, unit_price="-5"),
    }
    refused = admin_client.post(reverse("admin:billing_recurringinvoice_add"), data)
    assert "cannot be negative" in refused.text
    data["lines-0-unit_price"] = "99"
    assert admin_client.post(reverse("admin:billing_recurringinvoice_add"), data).status_code == 302
    assert services.generate_recurring_invoices(actor=finance_admin) == 1
    assert Invoice.objects.get().gross_total == Decimal("198.00")
