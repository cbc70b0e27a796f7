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

from billing import metrics, page_selectors, services, summary_panel
from billing.metrics import DSO_FORMULA
from config import audit
from crm import services as crm_services
from crm.models import Activity, Customer
from crm.panels import customer_panels
from ledger.money import ZERO
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


def test_the_summary_reads_in_two_queries_whatever_the_documents(ar_clerk, own_customer, django_assert_num_queries):
    for number in range(6):
        issue(ar_clerk, own_customer, "100.00", on=days_ago(60 - number))
        services.create_invoice(
            actor=ar_clerk,
            customer=own_customer,
            lines=[services.LineInput(description="Draft", unit_price=Decimal(1))],
        )
    # The drafts, then balances, DSO, average days late and the probes for anything dated after
    # today in one statement.
    with django_assert_num_queries(2):
        summary = summary_panel.customer_summary(customer=own_customer, today=timezone.localdate())
    assert (len(summary.drafts), summary.more_drafts) == (summary_panel.DRAFT_LIMIT, True)


def _a_varied_history(actor, customer, others_customer):
    """Open and overdue invoices, one paid late and one early, one voided inside the DSO period,
    one sold before the period, unapplied credit, and another customer's invoices."""
    issue(actor, customer, "100.00", on=days_ago(10))
    issue(actor, customer, "250.00", on=days_ago(75))  # overdue
    issue(actor, customer, "80.00", on=days_ago(200))  # sold before the period, still open
    late = issue(actor, customer, "300.00", on=days_ago(70))
    early = issue(actor, customer, "120.00", on=days_ago(60))
    voided = issue(actor, customer, "999.00", on=days_ago(20))
    services.void_invoice(actor=actor, invoice=voided, voided_on=days_ago(5))
    for invoice, paid_on in ((late, days_ago(25)), (early, days_ago(50))):
        payment = services.record_payment(
            actor=actor,
            customer=customer,
            amount=invoice.gross_total,
            received_on=paid_on,
            method="card",
            auto_apply=False,
        )
        services.allocate_payment(actor=actor, payment=payment, invoice=invoice, amount=invoice.gross_total)
    services.record_payment(
        actor=actor, customer=customer, amount=Decimal("40"), received_on=days_ago(1), method="card", auto_apply=False
    )
    issue(actor, others_customer, "5000.00", on=days_ago(10))


def test_the_summary_figures_are_billing_metrics_for_this_customer(ar_clerk, own_customer, others_customer):
    """One statement, the same figures as billing.metrics and the balances the billing panel reads."""
    _a_varied_history(ar_clerk, own_customer, others_customer)
    today = timezone.localdate()
    figures = page_selectors.customer_figures(customer=own_customer, today=today)
    assert figures.balances == page_selectors.customer_balances(customer=own_customer, today=today)
    assert figures.balances.overdue > 0 and figures.balances.unapplied_credit == Decimal("40.00")
    assert figures.dso == metrics.dso(as_of=today, customers=Customer.objects.filter(pk=own_customer.pk))
    assert figures.dso.receivables == Decimal("430.00") and figures.dso.days is not None
    assert figures.average_days_late == metrics.average_days_late(as_of=today, customer_id=own_customer.pk)
    assert figures.average_days_late is not None


def test_the_summary_of_a_past_day_rebuilds_dso_from_the_dated_events(ar_clerk, own_customer, others_customer):
    """As of a past day, the balances kept on the invoices are not that day's: DSO is rebuilt."""
    _a_varied_history(ar_clerk, own_customer, others_customer)
    past = days_ago(30)
    figures = page_selectors.customer_figures(customer=own_customer, today=past)
    assert figures.dso == metrics.dso(as_of=past, customers=Customer.objects.filter(pk=own_customer.pk))
    # The invoice paid 25 days ago was still open 30 days ago.
    assert figures.dso.receivables == Decimal("630.00")
    assert figures.average_days_late == metrics.average_days_late(as_of=past, customer_id=own_customer.pk)


def test_a_customer_without_documents_has_no_dso_and_no_days_late(own_customer):
    figures = page_selectors.customer_figures(customer=own_customer, today=timezone.localdate())
    assert (figures.balances.balance, figures.balances.overdue) == (Decimal("0.00"), Decimal("0.00"))
    assert (figures.dso.receivables, figures.dso.credit_sales, figures.dso.days) == (ZERO, ZERO, None)
    assert figures.average_days_late is None


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


# --- Bounded tables: the oldest-due open invoices on the page, every invoice a click away --------


def _open_invoices(actor, customer, count):
    """`count` open invoices, the first issued (and due) first."""
    return [issue(actor, customer, "10.00", on=days_ago(80 - number)) for number in range(count)]


def test_the_billing_table_shows_the_oldest_due_open_invoices_and_links_to_the_rest(
    client, sales_rep, ar_clerk, own_customer, monkeypatch
):
    monkeypatch.setattr(page_selectors, "OPEN_INVOICE_ROWS", 3)
    invoices = _open_invoices(ar_clerk, own_customer, 5)
    client.force_login(sales_rep)
    response = page(client, own_customer)
    shown = [row.invoice for row in response.context["invoice_groups"][0]]
    assert shown == invoices[:3]
    assert f'id="invoice-{invoices[3].pk}"' not in response.text
    assert f'href="{reverse("billing:invoices", args=[own_customer.pk])}?show=open"' in response.text


def test_without_more_open_invoices_than_rows_the_panel_offers_only_the_list_of_all(
    client, sales_rep, ar_clerk, own_customer
):
    _open_invoices(ar_clerk, own_customer, 2)
    client.force_login(sales_rep)
    response = page(client, own_customer)
    url = reverse("billing:invoices", args=[own_customer.pk])
    assert f'href="{url}?show=open"' not in response.text
    assert f'href="{url}?show=all"' in response.text


def test_the_invoice_list_pages_through_every_open_invoice_oldest_due_first(
    client, sales_rep, ar_clerk, own_customer, monkeypatch
):
    monkeypatch.setattr(page_selectors, "INVOICES_PER_PAGE", 2)
    invoices = _open_invoices(ar_clerk, own_customer, 5)
    services.record_payment(
        actor=ar_clerk, customer=own_customer, amount=invoices[0].gross_total, received_on=days_ago(1), method="card"
    )
    client.force_login(sales_rep)
    url = reverse("billing:invoices", args=[own_customer.pk])
    seen = []
    for number in (1, 2):
        response = client.get(url, {"show": "open", "page": number})
        assert response.status_code == 200
        seen += [row.invoice.pk for row in response.context["page"].object_list]
    assert seen == [invoice.pk for invoice in invoices[1:]]
    assert response.context["page"].paginator.count == 4
    everything = client.get(url, {"show": "all"}).context["page"]
    assert everything.paginator.count == 5
    assert [row.invoice.pk for row in everything.object_list] == [invoices[4].pk, invoices[3].pk]


def test_a_rep_cannot_list_the_invoices_of_another_reps_customer(client, sales_rep, others_customer):
    client.force_login(sales_rep)
    assert client.get(reverse("billing:invoices", args=[others_customer.pk])).status_code == 404


def test_ar_opens_a_void_under_an_open_invoice_below_the_table(client, ar_clerk, own_customer, monkeypatch):
    """The list's Void… link leads to the panel with the confirmation under that invoice's row."""
    monkeypatch.setattr(page_selectors, "OPEN_INVOICE_ROWS", 2)
    invoices = _open_invoices(ar_clerk, own_customer, 4)
    client.force_login(ar_clerk)
    listed = client.get(reverse("billing:invoices", args=[own_customer.pk]))
    void_url = reverse("billing:void_invoice", args=[own_customer.pk, invoices[3].pk])
    assert f'href="{void_url}"' in listed.text
    response = client.get(void_url)
    assert response.status_code == 200
    assert response.context["invoice_action"].invoice_pk == invoices[3].pk
    assert f'id="invoice-{invoices[3].pk}"' in response.text
    assert f'id="invoice-{invoices[2].pk}"' not in response.text


def test_a_rep_sees_the_disputed_invoices_without_the_open_ones_read_for_forms(
    client, sales_rep, ar_clerk, own_customer
):
    from billing import collections

    disputed, _ = _open_invoices(ar_clerk, own_customer, 2)
    collections.open_dispute(actor=ar_clerk, invoice=disputed, reason="Wrong quantity")
    client.force_login(sales_rep)
    data = page(client, own_customer).context["data"]
    assert data.disputed_invoices == [disputed]
    assert data.open_invoices == [disputed]  # open and disputed; the other open one is not read
    client.force_login(ar_clerk)
    assert len(page(client, own_customer).context["data"].open_invoices) == 2


# The customer page for the rep who owns the customer, with activity, contacts and every billing
# and collections panel filled: session, user and permissions (4), customer, contacts, activity
# and history (4), summary (2), billing panel (7), the navigation's groups and notifications
# (2), collections (4).
REP_PAGE_QUERIES = 23


@pytest.mark.parametrize("role", ["sales_rep", "ar_clerk"])
def test_the_customer_page_reads_no_more_with_more_invoices_than_its_tables_show(
    role, request, client, ar_clerk, own_customer, monkeypatch
):
    """Past the tables' rows and the forms' choices, more invoices cost the page no query."""
    from billing import collections_selectors

    monkeypatch.setattr(page_selectors, "OPEN_INVOICE_ROWS", 2)
    monkeypatch.setattr(page_selectors, "OPEN_INVOICE_LIMIT", 4)
    monkeypatch.setattr(collections_selectors, "OPEN_INVOICE_LIMIT", 4)
    _documents(ar_clerk, own_customer, 1)
    _disputes_and_settled_invoices(ar_clerk, own_customer, 1)
    ActivityFactory(customer=own_customer)
    client.force_login(request.getfixturevalue(role))
    page(client, own_customer)
    with CaptureQueriesContext(connection) as few:
        page(client, own_customer)

    _open_invoices(ar_clerk, own_customer, 8)
    _documents(ar_clerk, own_customer, 6)
    _disputes_and_settled_invoices(ar_clerk, own_customer, 3)
    with CaptureQueriesContext(connection) as many:
        response = page(client, own_customer)
    assert len(many) == len(few)
    assert response.context["billing"].more_open_invoices_than_shown
    if role == "sales_rep":
        assert len(many) <= REP_PAGE_QUERIES
