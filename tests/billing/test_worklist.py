"""The AR collections worklist: ranking, broken promises first, live promises last, disputed
invoices apart, filters, the in-place actions, access, and a query count that does not grow."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import collections, services
from billing.models import PromiseToPay
from config.audit import save_as
from crm import services as crm_services
from crm.models import Activity
from crm.roles import Role
from tests.billing.conftest import issue
from tests.factories import ActivityFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
WORKLIST = "/ar/worklist/"


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def overdue_by(actor, customer, amount: str, days: int):
    """An invoice `days` days overdue (30-day terms)."""
    return issue(actor, customer, amount, on=days_ago(days + 30))


def numbers(response) -> list[str]:
    return [row.invoice.number for row, _ in response.context["rows"]]


def test_the_worklist_lives_at_ar_worklist():
    assert reverse("worklist:index") == WORKLIST


def test_overdue_invoices_are_ranked_by_open_amount_times_days_overdue(client, ar_clerk):
    customer = CustomerFactory()
    small_old = overdue_by(ar_clerk, customer, "100.00", 60)  # 6 000
    large_new = overdue_by(ar_clerk, customer, "1000.00", 10)  # 10 000
    middle = overdue_by(ar_clerk, customer, "200.00", 40)  # 8 000
    issue(ar_clerk, customer, "5000.00", on=days_ago(5))  # not due yet
    client.force_login(ar_clerk)
    response = client.get(WORKLIST)
    assert response.status_code == 200
    assert numbers(response) == [large_new.number, middle.number, small_old.number]
    assert [row.days_overdue for row, _ in response.context["rows"]] == [10, 40, 60]
    assert response.context["rows"][0][0].score == Decimal("10000.00")


def test_a_partly_paid_invoice_ranks_by_what_is_still_open(client, ar_clerk):
    customer = CustomerFactory()
    partly_paid = overdue_by(ar_clerk, customer, "1000.00", 20)
    other = overdue_by(ar_clerk, CustomerFactory(), "500.00", 20)
    services.record_payment(
        actor=ar_clerk, customer=customer, amount=Decimal(700), received_on=days_ago(1), method="card"
    )
    client.force_login(ar_clerk)
    assert numbers(client.get(WORKLIST)) == [other.number, partly_paid.number]


def test_customers_who_broke_a_promise_come_first_with_a_badge(client, ar_clerk):
    big = overdue_by(ar_clerk, CustomerFactory(), "5000.00", 50)
    breaker = CustomerFactory(display_name="Promise Breakers Inc")
    small = overdue_by(ar_clerk, breaker, "10.00", 40)
    collections.record_promise(
        actor=ar_clerk,
        customer=breaker,
        invoices=[small],
        amount=Decimal(10),
        made_on=days_ago(20),
        promised_on=days_ago(10),
    )
    collections.settle_due_promises(as_of=timezone.localdate(), actor=ar_clerk)
    client.force_login(ar_clerk)
    response = client.get(WORKLIST)
    assert numbers(response) == [small.number, big.number]
    assert response.context["rows"][0][0].customer_broke_promise
    assert "Broke a promise" in response.text


def test_invoices_under_a_live_promise_go_to_a_group_of_their_own_at_the_end(client, ar_clerk):
    promised = overdue_by(ar_clerk, CustomerFactory(), "5000.00", 50)
    to_chase = overdue_by(ar_clerk, CustomerFactory(), "10.00", 5)
    promise = collections.record_promise(
        actor=ar_clerk,
        customer=promised.customer,
        invoices=[promised],
        amount=Decimal(5000),
        promised_on=timezone.localdate() + timedelta(days=3),
    )
    client.force_login(ar_clerk)
    response = client.get(WORKLIST)
    assert numbers(response) == [to_chase.number, promised.number]
    assert response.context["rows"][1][0].live_promise == promise
    assert "Under a live promise" in response.text
    assert f"5,000.00 USD by {promise.promised_on:%Y-%m-%d}" in response.text


def test_disputed_invoices_are_apart_in_their_own_tab(client, ar_clerk):
    customer = CustomerFactory()
    disputed = overdue_by(ar_clerk, customer, "900.00", 30)
    chased = overdue_by(ar_clerk, customer, "100.00", 30)
    collections.open_dispute(actor=ar_clerk, invoice=disputed, reason="Wrong goods")
    client.force_login(ar_clerk)
    chase = client.get(WORKLIST)
    assert numbers(chase) == [chased.number]
    assert chase.context["tab_counts"] == {"chase": 1, "disputed": 1}
    disputed_tab = client.get(WORKLIST, {"tab": "disputed"})
    assert numbers(disputed_tab) == [disputed.number]
    assert "Mark disputed" not in disputed_tab.text


def test_the_row_shows_collector_last_letter_and_last_contact(client, ar_clerk):
    from billing.models import DunningLetter, DunningLevel

    customer = CustomerFactory()
    invoice = overdue_by(ar_clerk, customer, "100.00", 30)
    crm_services.assign_collector(actor=ar_clerk, customer=customer, collector=ar_clerk)
    collections.log_call(actor=ar_clerk, customer=customer, outcome="call_back", text="Call on Monday")
    ActivityFactory(customer=customer, kind="note", text="A note is not a contact", actor=ar_clerk)
    for level in DunningLevel.objects.filter(level__lte=2):
        # Letters are the dunning run's to write; here they stand for two runs that happened.
        save_as(
            DunningLetter(
                invoice=invoice,
                customer=customer,
                level=level,
                status="sent",
                subject=level.name,
                body="…",
                open_amount=invoice.open_amount,
                currency="USD",
                days_overdue=level.days_overdue,
                sent_at=timezone.now() - timedelta(days=30 - level.days_overdue),
            ),
            actor=ar_clerk,
        )
    client.force_login(ar_clerk)
    response = client.get(WORKLIST)
    [(row, _)] = response.context["rows"]
    assert row.last_letter.level.level == 2
    assert (row.last_contact.kind, row.last_contact.outcome) == ("call", "call_back")
    assert row.customer.collector == ar_clerk
    assert "2. Firm reminder" in response.text and "Asked to call back" in response.text


def test_filters_by_collector_currency_and_minimum_amount(client, ar_clerk, eur_rates):
    mine = CustomerFactory()
    crm_services.assign_collector(actor=ar_clerk, customer=mine, collector=ar_clerk)
    my_invoice = overdue_by(ar_clerk, mine, "100.00", 20)
    unassigned = overdue_by(ar_clerk, CustomerFactory(), "300.00", 20)
    in_euros = overdue_by(ar_clerk, CustomerFactory(currency="EUR"), "1000.00", 20)
    client.force_login(ar_clerk)
    assert numbers(client.get(WORKLIST, {"collector": "me"})) == [my_invoice.number]
    assert numbers(client.get(WORKLIST, {"collector": "unassigned"})) == [in_euros.number, unassigned.number]
    assert numbers(client.get(WORKLIST, {"currency": "EUR"})) == [in_euros.number]
    # The minimum is in the base currency: the EUR invoice is open 1 200.00 USD at 1.20.
    assert numbers(client.get(WORKLIST, {"min_amount": "1150"})) == [in_euros.number]
    assert numbers(client.get(WORKLIST, {"min_amount": "200"})) == [in_euros.number, unassigned.number]
    ignored = client.get(WORKLIST, {"min_amount": "lots", "currency": "XXX"})
    assert len(numbers(ignored)) == 3


def test_filtering_with_htmx_swaps_only_the_results(client, ar_clerk):
    overdue_by(ar_clerk, CustomerFactory(), "100.00", 10)
    client.force_login(ar_clerk)
    response = client.get(WORKLIST, {"collector": "unassigned"}, headers={**HTMX, "HX-Target": "worklist-results"})
    assert response.text.lstrip().startswith('<div id="worklist-results">')
    assert len(response.context["rows"]) == 1


def test_the_worklist_pages_at_25(client, ar_clerk):
    customer = CustomerFactory()
    for days in range(1, 31):
        overdue_by(ar_clerk, customer, "10.00", days)
    client.force_login(ar_clerk)
    first, second = (client.get(WORKLIST, {"page": page}) for page in (1, 2))
    assert (len(first.context["rows"]), len(second.context["rows"])) == (25, 5)


@pytest.mark.parametrize("rows", [3, 25])
def test_the_worklist_query_count_does_not_grow_with_its_rows(client, ar_clerk, django_assert_max_num_queries, rows):
    from billing.models import DunningLetter, DunningLevel

    level = DunningLevel.objects.get(level=1)
    for number in range(rows):
        customer = CustomerFactory()
        crm_services.assign_collector(actor=ar_clerk, customer=customer, collector=ar_clerk)
        invoice = overdue_by(ar_clerk, customer, "100.00", 10 + number)
        collections.log_call(actor=ar_clerk, customer=customer, outcome="reached", invoice=invoice)
        if number % 2:
            collections.record_promise(
                actor=ar_clerk,
                customer=customer,
                invoices=[invoice],
                amount=Decimal(50),
                promised_on=timezone.localdate() + timedelta(days=5),
            )
        save_as(
            DunningLetter(
                invoice=invoice,
                customer=customer,
                level=level,
                status="sent",
                subject="Reminder",
                body="…",
                open_amount=invoice.open_amount,
                currency="USD",
                days_overdue=7,
                sent_at=timezone.now(),
            ),
            actor=ar_clerk,
        )
    client.force_login(ar_clerk)
    # Session, user, permissions (2), currencies, tab counts, page count, page, promises,
    # letters, contacts, collectors — whatever the number of rows.
    with django_assert_max_num_queries(14):
        response = client.get(WORKLIST)
    assert len(response.context["rows"]) == rows


# --- In-place actions --------------------------------------------------------------------------


@pytest.fixture
def row(ar_clerk):
    customer = CustomerFactory(display_name="Acme Widgets")
    return overdue_by(ar_clerk, customer, "400.00", 25)


def test_ar_logs_a_call_outcome_in_place(client, ar_clerk, row):
    client.force_login(ar_clerk)
    response = client.post(
        reverse("worklist:log_call", args=[row.pk]),
        {"outcome": "promised", "text": "Will pay Friday", "q": "collector=unassigned"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="worklist-results">')
    call = Activity.objects.get(kind="call")
    assert (call.customer, call.outcome, call.text, call.subject, call.actor) == (
        row.customer,
        "promised",
        "Will pay Friday",
        row.number,
        ar_clerk,
    )
    assert f"Logged a call to Acme Widgets about {row.number}: promised to pay." in response.text
    assert response.context["filters"].collector == "unassigned"
    [(shown, _)] = response.context["rows"]
    assert shown.last_contact == call


def test_ar_records_a_promise_in_place_and_the_row_moves_under_live_promises(client, ar_clerk, row):
    other = overdue_by(ar_clerk, CustomerFactory(), "10.00", 5)
    client.force_login(ar_clerk)
    promised_on = (timezone.localdate() + timedelta(days=4)).isoformat()
    response = client.post(
        reverse("worklist:record_promise", args=[row.pk]), {"promised_on": promised_on, "q": ""}, headers=HTMX
    )
    assert response.status_code == 200
    promise = PromiseToPay.objects.get()
    assert (promise.amount, str(promise.promised_on), list(promise.invoices.all())) == (
        Decimal("400.00"),
        promised_on,
        [row],
    )
    assert numbers(response) == [other.number, row.number]


def test_ar_marks_an_invoice_disputed_in_place(client, ar_clerk, row):
    client.force_login(ar_clerk)
    response = client.post(
        reverse("worklist:open_dispute", args=[row.pk]), {"reason": "Never delivered", "q": ""}, headers=HTMX
    )
    assert response.status_code == 200
    row.refresh_from_db()
    assert (row.disputed, row.dispute_reason) == (True, "Never delivered")
    assert response.context["tab_counts"] == {"chase": 0, "disputed": 1}
    assert "moved to the Disputed tab" in response.text


def test_ar_assigns_a_collector_in_place(client, ar_clerk, row):
    colleague = UserFactory(username="ar-colleague", role=Role.ACCOUNTS_RECEIVABLE)
    client.force_login(ar_clerk)
    response = client.post(
        reverse("worklist:assign_collector", args=[row.pk]), {"collector": colleague.pk, "q": ""}, headers=HTMX
    )
    assert response.status_code == 200
    row.customer.refresh_from_db()
    assert row.customer.collector == colleague
    assert f"{colleague.get_full_name()} now collects from Acme Widgets." in response.text
    unassigned = client.post(reverse("worklist:assign_collector", args=[row.pk]), {"collector": "", "q": ""})
    assert unassigned.status_code == 302
    row.customer.refresh_from_db()
    assert row.customer.collector is None


def test_a_refused_action_shows_its_errors_in_the_row_and_changes_nothing(client, ar_clerk, sales_rep, row):
    client.force_login(ar_clerk)
    response = client.post(
        reverse("worklist:record_promise", args=[row.pk]),
        {"amount": "999.00", "promised_on": (timezone.localdate() + timedelta(days=4)).isoformat(), "q": ""},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert "is more than the 400.00 USD open" in response.text
    assert f'class="collapse show" id="worklist-actions-{row.pk}"' in response.text
    assert not PromiseToPay.objects.exists()
    not_ar = client.post(
        reverse("worklist:assign_collector", args=[row.pk]), {"collector": sales_rep.pk, "q": ""}, headers=HTMX
    )
    assert "Choose someone in accounts receivable." in not_ar.text
    row.customer.refresh_from_db()
    assert row.customer.collector is None


def test_without_javascript_an_action_redirects_back_to_the_same_filters(client, ar_clerk, row):
    client.force_login(ar_clerk)
    response = client.post(
        reverse("worklist:log_call", args=[row.pk]),
        {"outcome": "no_answer", "q": "collector=unassigned&currency=USD&page=1&next=https://evil.example"},
    )
    assert response.status_code == 302
    assert response.url == f"{WORKLIST}?tab=chase&collector=unassigned&currency=USD&page=1"
    refused = client.post(reverse("worklist:log_call", args=[row.pk]), {"outcome": "shouted", "q": ""})
    assert refused.status_code == 422
    assert "Select a valid choice." in refused.text


# --- Access ------------------------------------------------------------------------------------


def test_a_sales_rep_gets_403_on_the_worklist_and_its_actions(client, sales_rep, own_customer):
    invoice = overdue_by(sales_rep, own_customer, "100.00", 10)
    client.force_login(sales_rep)
    assert client.get(WORKLIST).status_code == 403
    for name, data in [
        ("log_call", {"outcome": "reached"}),
        ("record_promise", {"promised_on": timezone.localdate().isoformat()}),
        ("open_dispute", {"reason": "Mine"}),
        ("assign_collector", {"collector": ""}),
    ]:
        assert client.post(reverse(f"worklist:{name}", args=[invoice.pk]), data).status_code == 403
    assert not Activity.objects.filter(kind="call").exists()


def test_a_finance_admin_works_the_worklist_too(client, finance_admin, ar_clerk):
    overdue_by(ar_clerk, CustomerFactory(), "100.00", 10)
    client.force_login(finance_admin)
    assert len(client.get(WORKLIST).context["rows"]) == 1


def test_an_empty_worklist_says_so(client, ar_clerk):
    client.force_login(ar_clerk)
    assert "Nothing is overdue" in client.get(WORKLIST).text
