"""The customer page as a 360° view: billing's account summary (balances, credit use, DSO, average
days late, drafts), the activity timeline with calls, e-mails, meetings and notes logged in
place, and the history — in Overview / Activity / History sections."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from billing import services, summary_panel
from billing.metrics import DSO_FORMULA
from config import audit
from crm import services as crm_services
from crm.models import Activity
from crm.panels import customer_panels
from tests.billing.conftest import issue
from tests.factories import ActivityFactory, ContactFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def page(client, customer, **kwargs):
    response = client.get(reverse("crm:customer_detail", args=[customer.pk]), **kwargs)
    assert response.status_code == 200
    return response


def summary_of(response):
    """The summary panel's part of the page."""
    text = response.text
    start = text.index('id="summary-panel"')
    return text[start : text.index("</dl>", start)]


def log(client, customer, **data):
    return client.post(reverse("crm:log_activity", args=[customer.pk]), data, headers=HTMX)


# --- The account summary ------------------------------------------------------------------------


def test_the_summary_panel_comes_before_the_billing_panel():
    names = [panel.name for panel in customer_panels()]
    assert names.index(summary_panel.PANEL_NAME) < names.index("Billing")


def test_the_summary_shows_balance_overdue_unapplied_credit_and_credit_use(client, sales_rep, ar_clerk, own_customer):
    crm_services.update_customer(actor=ar_clerk, customer=own_customer, credit_limit=Decimal("1000"))
    issue(ar_clerk, own_customer, "100.00", on=days_ago(60))
    issue(ar_clerk, own_customer, "80.00", on=days_ago(5))
    services.record_payment(
        actor=ar_clerk,
        customer=own_customer,
        amount=Decimal("30"),
        received_on=days_ago(1),
        method="card",
        auto_apply=False,
    )
    client.force_login(sales_rep)
    response = page(client, own_customer)
    balances = response.context["summary"].balances
    assert (balances.balance, balances.overdue, balances.unapplied_credit) == (
        Decimal("150.00"),
        Decimal("100.00"),
        Decimal("30.00"),
    )
    assert balances.credit_used == Decimal("15.00")
    assert 'id="billing-balance">150.00' in response.text
    assert 'aria-valuetext="15% of the credit limit"' in response.text


def test_dso_is_this_customers_alone_and_shows_its_formula(client, sales_rep, ar_clerk, own_customer, others_customer):
    issue(ar_clerk, own_customer, "100.00", on=days_ago(10))
    paid = issue(ar_clerk, own_customer, "300.00", on=days_ago(20))
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal("300"), received_on=days_ago(5), method="card"
    )
    issue(ar_clerk, others_customer, "5000.00", on=days_ago(10))
    client.force_login(sales_rep)
    response = page(client, own_customer)
    paid.refresh_from_db()
    assert paid.status == "paid"
    dso = response.context["summary"].dso
    # 100 open of 400 sold in the last 90 days, × 90 days.
    assert (dso.receivables, dso.credit_sales, dso.days) == (Decimal("100.00"), Decimal("400.00"), Decimal("22.5"))
    assert 'id="summary-dso">22.5' in response.text
    assert escape(DSO_FORMULA.format(days=90)) in response.text


def test_dso_without_sales_in_the_period_says_so(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = page(client, own_customer)
    assert "no sales in 90 days" in summary_of(response)


def test_average_days_late_weighs_paid_invoices_by_amount(client, sales_rep, ar_clerk, own_customer):
    # Due 30 days after issue: paid 10 days late (300.00) and on the due date (100.00) → 7.5 days.
    late = issue(ar_clerk, own_customer, "300.00", on=days_ago(60))
    on_time = issue(ar_clerk, own_customer, "100.00", on=days_ago(50))
    for invoice, paid_on in ((late, days_ago(20)), (on_time, days_ago(20))):
        payment = services.record_payment(
            actor=ar_clerk,
            customer=own_customer,
            amount=invoice.gross_total,
            received_on=paid_on,
            method="card",
            auto_apply=False,
        )
        services.allocate_payment(actor=ar_clerk, payment=payment, invoice=invoice, amount=invoice.gross_total)
    client.force_login(sales_rep)
    response = page(client, own_customer)
    assert response.context["summary"].average_days_late == Decimal("7.5")
    assert 'id="summary-days-late">7.5' in response.text


def test_a_customer_who_pays_early_shows_days_early(client, sales_rep, ar_clerk, own_customer):
    invoice = issue(ar_clerk, own_customer, "100.00", on=days_ago(40))
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=Decimal("100"), received_on=days_ago(35), method="card"
    )
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    client.force_login(sales_rep)
    response = page(client, own_customer)
    assert "25.0 <span" in summary_of(response)
    assert "days early" in summary_of(response)


def test_the_summary_lists_drafts_and_offers_a_new_one_to_a_rep(client, sales_rep, own_customer):
    draft = services.create_invoice(
        actor=sales_rep, customer=own_customer, lines=[services.LineInput(description="Setup", unit_price=Decimal(40))]
    )
    client.force_login(sales_rep)
    response = page(client, own_customer)
    assert reverse("invoices:detail", args=[own_customer.pk, draft.pk]) in response.text
    assert reverse("invoices:new", args=[own_customer.pk]) in response.text


def test_someone_without_invoice_rights_sees_no_summary(client, own_customer):
    viewer = UserFactory()
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_customer", "view_all_customers"], content_type__app_label="crm")
    )
    client.force_login(viewer)
    response = page(client, own_customer)
    assert 'id="summary-panel"' not in response.text


def test_the_summary_reads_in_eleven_queries_whatever_the_documents(ar_clerk, own_customer, django_assert_num_queries):
    for number in range(6):
        issue(ar_clerk, own_customer, "100.00", on=days_ago(60 - number))
        services.create_invoice(
            actor=ar_clerk,
            customer=own_customer,
            lines=[services.LineInput(description="Draft", unit_price=Decimal(1))],
        )
    # Balances, DSO (six probes for anything dated after today, then receivables and sales),
    # average days late and the drafts.
    with django_assert_num_queries(11):
        summary = summary_panel.customer_summary(customer=own_customer, today=timezone.localdate())
    assert (len(summary.drafts), summary.more_drafts) == (summary_panel.DRAFT_LIMIT, True)


# --- Layout -------------------------------------------------------------------------------------


def test_the_page_has_overview_activity_and_history_sections_linked_from_the_top(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = page(client, own_customer)
    for section in ("overview", "activity", "history"):
        assert f'<section id="{section}"' in response.text
        assert f'href="#{section}"' in response.text
    assert response.text.index('id="summary-panel"') < response.text.index('id="billing-panel"')


def test_the_history_section_shows_who_changed_what(client, finance_admin, sales_rep, own_customer):
    crm_services.update_customer(actor=finance_admin, customer=own_customer, credit_limit=Decimal("2500"))
    client.force_login(sales_rep)
    response = page(client, own_customer)
    entry = response.context["history"][0]
    assert entry.who == finance_admin
    assert ("credit limit", None, Decimal("2500.00")) in entry.changes


# --- Activity -----------------------------------------------------------------------------------


def test_the_activity_form_offers_only_the_kinds_people_log(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = page(client, own_customer)
    offered = [value for value, _ in response.context["activity_form"].fields["kind"].choices]
    assert offered == list(Activity.LOGGED_KINDS)
    assert 'value="letter"' not in response.text


def test_a_rep_logs_a_call_with_its_outcome_and_subject_in_place(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = log(
        client, own_customer, kind="call", outcome="promised", subject="INV-000042", text="Will pay on Friday."
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    activity = Activity.objects.get()
    assert (activity.kind, activity.outcome, activity.subject, activity.actor) == (
        "call",
        "promised",
        "INV-000042",
        sales_rep,
    )
    assert "Promised to pay" in response.text
    assert "INV-000042" in response.text


def test_a_meeting_is_logged_without_an_outcome(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    log(client, own_customer, kind="meeting", outcome="", subject="", text="Quarterly review.")
    assert Activity.objects.get().kind == "meeting"


def test_an_outcome_on_a_note_is_refused_next_to_the_field_and_nothing_is_written(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = log(client, own_customer, kind="note", outcome="voicemail", text="Left a message.")
    assert response.status_code == 200
    assert "Only a call has an outcome" in response.text
    assert 'id="activity-outcome" class="form-select form-select-sm is-invalid"' in response.text
    assert not Activity.objects.exists()


def test_a_letter_cannot_be_logged_by_hand(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    response = log(client, own_customer, kind="letter", text="Pretend letter.")
    assert "Select a valid choice" in response.text
    assert not Activity.objects.exists()


def test_letters_and_promises_written_by_concord_have_their_own_badges(client, sales_rep, own_customer):
    robot = audit.system_actor("task:billing.dunning")
    crm_services.log_activity(actor=robot, customer=own_customer, kind="letter", text="Reminder sent for INV-1.")
    crm_services.log_activity(actor=robot, customer=own_customer, kind="promise", text="Promise kept.")
    client.force_login(sales_rep)
    response = page(client, own_customer)
    assert 'title="Sent by Concord"><span aria-hidden="true">⚑</span> Letter</span>' in response.text
    assert 'title="Recorded by Concord"><span aria-hidden="true">¤</span> Promise to pay</span>' in response.text
    assert "Concord, automatically" in response.text


# --- Queries ------------------------------------------------------------------------------------


def _documents(actor, customer, count):
    for number in range(count):
        issue(actor, customer, "100.00", on=days_ago(90 - number))
        services.create_invoice(
            actor=actor, customer=customer, lines=[services.LineInput(description="Draft", unit_price=Decimal(5))]
        )
    for number in range(count):
        services.record_payment(
            actor=actor,
            customer=customer,
            amount=Decimal("50"),
            received_on=days_ago(2),
            method="card",
            auto_apply=number % 2 == 0,
        )


def test_the_customer_page_query_count_does_not_grow_with_documents_contacts_and_activity(
    client, sales_rep, ar_clerk, own_customer, django_assert_max_num_queries
):
    _documents(ar_clerk, own_customer, 2)
    ContactFactory(customer=own_customer)
    ActivityFactory(customer=own_customer)
    client.force_login(sales_rep)
    page(client, own_customer)  # warm caches that a first request fills (e.g. content types)
    with CaptureQueriesContext(connection) as few:
        page(client, own_customer)

    _documents(ar_clerk, own_customer, 20)
    ContactFactory.create_batch(6, customer=own_customer)
    ActivityFactory.create_batch(30, customer=own_customer, actor=UserFactory())
    with django_assert_max_num_queries(len(few)):
        page(client, own_customer)


def _disputes_and_settled_invoices(actor, customer, count):
    """Invoices disputed then resolved (history rows the Collections panel reads), and invoices paid
    in full (what average days late reads)."""
    from billing import collections

    for number in range(count):
        invoice = issue(actor, customer, "40.00", on=days_ago(60 - number))
        collections.open_dispute(actor=actor, invoice=invoice, reason=f"Wrong quantity {number}")
        collections.resolve_dispute(actor=actor, invoice=invoice, resolution="Checked with the buyer")
        paid = issue(actor, customer, "30.00", on=days_ago(50 - number))
        services.record_payment(
            actor=actor, customer=customer, amount=paid.gross_total, received_on=days_ago(5), method="card"
        )


def test_the_customer_page_query_count_for_ar_does_not_grow_with_invoices_payments_or_disputes(
    client, ar_clerk, own_customer
):
    """AR sees every panel with its forms: allocation forms under payments with credit left, the
    dispute history, the average days late over settled invoices."""
    _documents(ar_clerk, own_customer, 2)
    _disputes_and_settled_invoices(ar_clerk, own_customer, 1)
    client.force_login(ar_clerk)
    page(client, own_customer)
    with CaptureQueriesContext(connection) as few:
        page(client, own_customer)

    _documents(ar_clerk, own_customer, 15)
    _disputes_and_settled_invoices(ar_clerk, own_customer, 8)
    with CaptureQueriesContext(connection) as many:
        page(client, own_customer)
    assert len(many) == len(few)


def test_a_customer_loaded_without_any_history_row_still_opens(client, sales_rep, own_customer):
    """Bulk loads (seed_scale, imports) write no history; the History section is then empty."""
    own_customer.history.all().delete()
    client.force_login(sales_rep)
    assert page(client, own_customer).context["history"] == []


def test_the_account_summary_refreshes_itself_when_the_billing_panel_changes_money(client, ar_clerk, own_customer):
    from tests.billing.conftest import issue

    issue(ar_clerk, own_customer, "120.00")
    client.force_login(ar_clerk)
    page = client.get(reverse("crm:customer_detail", args=[own_customer.pk])).text
    assert 'hx-trigger="billing-changed from:body"' in page
    fragment = client.get(reverse("billing:summary_panel", args=[own_customer.pk]), headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert 'id="billing-balance"' in fragment.text and "120.00" in fragment.text
    assert "<html" not in fragment.text


def test_a_rep_cannot_fetch_the_summary_of_another_reps_customer(client, sales_rep, others_customer):
    client.force_login(sales_rep)
    assert client.get(reverse("billing:summary_panel", args=[others_customer.pk])).status_code == 404
