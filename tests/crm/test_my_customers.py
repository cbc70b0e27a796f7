"""The customer list ("My customers"): search, filters, sorting and the billing columns that billing
contributes through crm.listing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from billing.models import PromiseToPay
from crm import access, listing, selectors, services, views
from crm.models import Customer
from crm.roles import Role
from tests.billing.conftest import issue
from tests.factories import ActivityFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def days_ago(days: int):
    return timezone.localdate() - timedelta(days=days)


def overdue_invoice(actor, customer, amount):
    """An invoice issued 60 days ago on 30 days' terms: 30 days overdue."""
    return issue(actor, customer, amount, on=days_ago(60))


def current_invoice(actor, customer, amount):
    return issue(actor, customer, amount, on=days_ago(1))


def with_limit(customer, limit):
    return services.update_customer(actor=customer.owner, customer=customer, credit_limit=Decimal(limit))


def promise(customer, *, status="open", amount="50.00", made_on=None, promised_on=None, settled_on=None):
    made_on = made_on or days_ago(20)
    return PromiseToPay.objects.create(
        customer=customer,
        amount=Decimal(amount),
        currency=customer.currency,
        made_on=made_on,
        promised_on=promised_on or made_on + timedelta(days=7),
        status=status,
        settled_on=settled_on,
    )


def listed(client, **params) -> list[Customer]:
    response = client.get(reverse("crm:customer_list"), params)
    assert response.status_code == 200
    return [row.customer for row in response.context["rows"]]


@pytest.fixture
def rep_client(client, sales_rep):
    client.force_login(sales_rep)
    return client


# --- Columns ----------------------------------------------------------------------------------


def test_each_row_shows_the_balance_overdue_and_credit_use(rep_client, ar_clerk, own_customer):
    with_limit(own_customer, "1000.00")
    overdue_invoice(ar_clerk, own_customer, "600.00")
    current_invoice(ar_clerk, own_customer, "200.00")
    response = rep_client.get(reverse("crm:customer_list"))
    balances = response.context["rows"][0].customer.balances
    assert (balances.balance, balances.overdue, balances.credit_used) == (
        Decimal("800.00"),
        Decimal("600.00"),
        Decimal("80.00"),
    )
    assert "800.00" in response.text
    assert 'aria-valuetext="80% of the credit limit"' in response.text


def test_credit_use_of_whole_number_amounts_is_not_truncated_to_zero(rep_client, ar_clerk, own_customer):
    """SQLite divides two whole-number decimals as integers (500 / 1000 = 0); the page must not."""
    with_limit(own_customer, "1000")
    current_invoice(ar_clerk, own_customer, "500")
    response = rep_client.get(reverse("crm:customer_list"))
    assert response.context["rows"][0].customer.balances.credit_used == Decimal("50.00")
    assert 'aria-valuenow="50"' in response.text


@pytest.mark.parametrize(
    ("balance", "colour"), [("700.00", "bg-success"), ("750.00", "bg-warning"), ("1000.00", "bg-danger")]
)
def test_the_credit_use_bar_turns_amber_at_75_percent_and_red_at_the_limit(
    rep_client, ar_clerk, own_customer, balance, colour
):
    with_limit(own_customer, "1000.00")
    current_invoice(ar_clerk, own_customer, balance)
    response = rep_client.get(reverse("crm:customer_list"))
    assert f'class="progress-bar {colour}"' in response.text


def test_a_balance_over_the_limit_fills_the_bar_and_shows_the_real_percentage(rep_client, ar_clerk, own_customer):
    with_limit(own_customer, "1000.00")
    current_invoice(ar_clerk, own_customer, "1500.00")
    response = rep_client.get(reverse("crm:customer_list"))
    assert 'style="width: 100%"' in response.text
    assert "150%" in response.text


def test_a_customer_without_a_credit_limit_shows_no_bar(rep_client, ar_clerk, own_customer):
    current_invoice(ar_clerk, own_customer, "100.00")
    response = rep_client.get(reverse("crm:customer_list"))
    assert "no limit" in response.text
    assert 'class="progress"' not in response.text


def test_the_next_promised_payment_is_the_earliest_open_promise(rep_client, own_customer):
    promise(own_customer, amount="300.00", made_on=days_ago(2), promised_on=days_ago(-20))
    promise(own_customer, amount="120.00", made_on=days_ago(2), promised_on=days_ago(-5))
    promise(own_customer, status="kept", amount="999.00", made_on=days_ago(30), settled_on=days_ago(20))
    response = rep_client.get(reverse("crm:customer_list"))
    customer = response.context["rows"][0].customer
    assert (customer.next_promise_on, customer.next_promise_amount) == (days_ago(-5), Decimal("120.00"))
    assert f"{days_ago(-5):%Y-%m-%d} · 120.00" in response.text


def test_someone_without_invoice_rights_sees_the_list_without_billing_columns(client, own_customer):
    viewer = UserFactory()
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_customer", "view_all_customers"], content_type__app_label="crm")
    )
    client.force_login(viewer)
    response = client.get(reverse("crm:customer_list"), {"show": "overdue", "sort": "-balance"})
    assert response.status_code == 200
    assert response.context["columns"] == ()
    assert "Over credit limit" not in response.text
    assert [row.customer for row in response.context["rows"]] == [own_customer]


# --- Filters ----------------------------------------------------------------------------------


def test_the_overdue_filter_keeps_customers_with_overdue_invoices(rep_client, sales_rep, ar_clerk):
    late, on_time = CustomerFactory.create_batch(2, owner=sales_rep)
    overdue_invoice(ar_clerk, late, "100.00")
    current_invoice(ar_clerk, on_time, "100.00")
    assert listed(rep_client, show="overdue") == [late]


def test_the_over_limit_filter_keeps_customers_whose_balance_exceeds_their_limit(rep_client, sales_rep, ar_clerk):
    over, under, unlimited = CustomerFactory.create_batch(3, owner=sales_rep)
    with_limit(over, "100.00")
    with_limit(under, "1000.00")
    for customer in (over, under, unlimited):
        current_invoice(ar_clerk, customer, "150.00")
    assert listed(rep_client, show="over_limit") == [over]


def test_the_on_hold_filter_keeps_customers_on_hold(rep_client, sales_rep, own_customer, finance_admin):
    held = CustomerFactory(owner=sales_rep)
    services.update_customer(actor=finance_admin, customer=held, status=Customer.Status.ON_HOLD)
    assert listed(rep_client, show="on_hold") == [held]


def test_ticked_filters_all_apply(rep_client, sales_rep, ar_clerk, finance_admin):
    held_and_late, held, late = CustomerFactory.create_batch(3, owner=sales_rep)
    for customer in (held_and_late, held):
        services.update_customer(actor=finance_admin, customer=customer, status=Customer.Status.ON_HOLD)
    for customer in (held_and_late, late):
        overdue_invoice(ar_clerk, customer, "10.00")
    assert listed(rep_client, show=["on_hold", "overdue"]) == [held_and_late]


def test_the_broken_promise_filter_keeps_a_promise_broken_in_the_last_90_days(rep_client, sales_rep):
    broke_lately, broke_long_ago, kept = CustomerFactory.create_batch(3, owner=sales_rep)
    promise(broke_lately, status="broken", made_on=days_ago(40), settled_on=days_ago(30))
    promise(broke_long_ago, status="broken", made_on=days_ago(120), settled_on=days_ago(91))
    promise(kept, status="kept", made_on=days_ago(40), settled_on=days_ago(30))
    assert listed(rep_client, show="broken_promise") == [broke_lately]


def test_a_new_open_promise_made_since_clears_the_broken_promise(rep_client, sales_rep):
    customer = CustomerFactory(owner=sales_rep)
    promise(customer, status="broken", made_on=days_ago(40), promised_on=days_ago(31), settled_on=days_ago(30))
    promise(customer, status="open", made_on=days_ago(10), promised_on=days_ago(-10))
    assert listed(rep_client, show="broken_promise") == []


def test_a_kept_promise_made_since_clears_the_broken_promise(rep_client, sales_rep):
    customer = CustomerFactory(owner=sales_rep)
    promise(customer, status="broken", made_on=days_ago(60), promised_on=days_ago(50), settled_on=days_ago(49))
    promise(customer, status="kept", made_on=days_ago(30), promised_on=days_ago(20), settled_on=days_ago(19))
    assert listed(rep_client, show="broken_promise") == []


def test_an_open_promise_made_before_the_broken_one_fell_due_does_not_clear_it(rep_client, sales_rep):
    customer = CustomerFactory(owner=sales_rep)
    promise(customer, status="open", made_on=days_ago(45), promised_on=days_ago(-5))
    promise(customer, status="broken", made_on=days_ago(40), promised_on=days_ago(31), settled_on=days_ago(30))
    assert listed(rep_client, show="broken_promise") == [customer]


def test_a_broken_promise_is_flagged_on_the_row(rep_client, own_customer):
    promise(own_customer, status="broken", made_on=days_ago(40), settled_on=days_ago(30))
    response = rep_client.get(reverse("crm:customer_list"))
    assert "Broken promise</span>" in response.text


def test_filters_never_show_another_reps_customers(rep_client, ar_clerk, own_customer, others_customer):
    overdue_invoice(ar_clerk, own_customer, "10.00")
    overdue_invoice(ar_clerk, others_customer, "10.00")
    assert listed(rep_client, show="overdue") == [own_customer]


def test_a_search_with_no_match_says_how_to_see_everyone(rep_client, own_customer):
    response = rep_client.get(reverse("crm:customer_list"), {"q": "Nobody by that name", "show": "overdue"})
    assert "No customers match" in response.text
    assert "Clear the search and filters" in response.text


# --- Sorting ----------------------------------------------------------------------------------


@pytest.fixture
def three_balances(sales_rep, ar_clerk):
    """Balances 300 (none overdue), 100 (all overdue) and 200 (50 overdue)."""
    small, large, middle = (
        CustomerFactory(owner=sales_rep, display_name=name) for name in ("Alpha", "Bravo", "Charlie")
    )
    current_invoice(ar_clerk, large, "300.00")
    overdue_invoice(ar_clerk, small, "100.00")
    overdue_invoice(ar_clerk, middle, "50.00")
    current_invoice(ar_clerk, middle, "150.00")
    return small, large, middle


def test_sorting_by_balance_puts_the_largest_first(rep_client, three_balances):
    small, large, middle = three_balances
    assert listed(rep_client, sort="-balance") == [large, middle, small]
    assert listed(rep_client, sort="balance") == [small, middle, large]


def test_sorting_by_overdue_puts_the_most_overdue_first(rep_client, three_balances):
    small, large, middle = three_balances
    assert listed(rep_client, sort="-overdue") == [small, middle, large]


def test_sorting_by_credit_use_puts_the_closest_to_the_limit_first(rep_client, three_balances):
    small, large, middle = three_balances
    with_limit(small, "1000")  # 10%
    with_limit(large, "400")  # 75%
    with_limit(middle, "250")  # 80%
    assert listed(rep_client, sort="-credit_use") == [middle, large, small]


def test_sorting_by_last_activity_puts_the_most_recent_first_and_the_never_contacted_last(rep_client, sales_rep):
    quiet, busy, never = (CustomerFactory(owner=sales_rep, display_name=name) for name in ("Quiet", "Busy", "Never"))
    ActivityFactory(customer=quiet, occurred_at=timezone.now() - timedelta(days=30))
    ActivityFactory(customer=busy, occurred_at=timezone.now() - timedelta(days=1))
    assert listed(rep_client, sort="-last_activity") == [busy, quiet, never]
    assert listed(rep_client, sort="last_activity") == [never, quiet, busy]


def test_sorting_by_name_is_the_default(rep_client, sales_rep):
    charlie, alpha, bravo = (
        CustomerFactory(owner=sales_rep, display_name=name) for name in ("Charlie", "Alpha", "Bravo")
    )
    assert listed(rep_client) == [alpha, bravo, charlie]


def test_an_unknown_sort_key_sorts_by_name_and_keeps_the_search(rep_client, sales_rep):
    CustomerFactory(owner=sales_rep, display_name="Bravo Foods")
    alpha = CustomerFactory(owner=sales_rep, display_name="Alpha Foods")
    CustomerFactory(owner=sales_rep, display_name="Zulu Metals")
    assert listed(rep_client, q="Foods", sort="-not_a_column")[0] == alpha
    assert len(listed(rep_client, q="Foods", sort="-not_a_column")) == 2


def test_the_sorted_column_header_reverses_the_sort_when_clicked_again(rep_client, own_customer):
    response = rep_client.get(reverse("crm:customer_list"), {"sort": "-balance", "q": "North"})
    balance = next(header for header in response.context["headers"] if header.label == "Balance")
    assert balance.aria_sort == "descending"
    assert "sort=balance" in balance.href and "q=North" in balance.href
    overdue = next(header for header in response.context["headers"] if header.label == "Overdue")
    assert (overdue.aria_sort, "sort=-overdue" in overdue.href) == ("", True)


# --- The registry -----------------------------------------------------------------------------


def test_billing_contributes_its_columns_filters_and_orderings(sales_rep):
    options = listing.options_for(sales_rep)
    assert [column.key for column in options.columns] == ["balance", "overdue", "credit_use", "next_promise"]
    assert list(options.filters) == ["overdue", "over_limit", "broken_promise", "on_hold"]
    assert {"balance", "overdue", "credit_use", "last_activity", "name"} <= set(options.orderings)


# --- Queries ----------------------------------------------------------------------------------


def _list_queries(client, **params) -> tuple[int, int]:
    """(queries, rows) of one GET of the customer list."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("crm:customer_list"), params)
    assert response.status_code == 200
    return len(queries), len(response.context["rows"])


@pytest.fixture
def sixty_customers(sales_rep, ar_clerk):
    customers = CustomerFactory.create_batch(60, owner=sales_rep)
    for customer in customers[:12]:
        with_limit(customer, "500.00")
        overdue_invoice(ar_clerk, customer, "100.00")
        promise(customer, status="broken", made_on=days_ago(40), settled_on=days_ago(30))
        promise(customer, made_on=days_ago(3))
        ActivityFactory(customer=customer)
    return customers


@pytest.mark.parametrize("user", ["sales_rep", "ar_clerk"])
@pytest.mark.parametrize("sort", ["name", "-balance", "-overdue", "next_promise"])
def test_the_number_of_queries_does_not_depend_on_the_page_size(
    client, request, monkeypatch, sixty_customers, user, sort
):
    client.force_login(request.getfixturevalue(user))
    counts = {}
    for size in (10, 50):
        monkeypatch.setattr(views, "CUSTOMERS_PER_PAGE", size)
        _list_queries(client, sort=sort)  # caches a first request fills
        first_page = _list_queries(client, sort=sort)
        deeper = _list_queries(client, sort=sort, after=listed(client, sort=sort)[-1].pk)
        counts[size] = (first_page[0], deeper[0])
        assert first_page[1] == size
    assert counts[10] == counts[50]


@pytest.mark.parametrize("rows", [3, 25])
def test_the_number_of_queries_does_not_grow_with_the_page_size(
    client, sales_rep, ar_clerk, django_assert_max_num_queries, rows
):
    for customer in CustomerFactory.create_batch(rows, owner=sales_rep):
        with_limit(customer, "500.00")
        overdue_invoice(ar_clerk, customer, "100.00")
        current_invoice(ar_clerk, customer, "300.00")
        promise(customer, status="broken", made_on=days_ago(40), settled_on=days_ago(30))
        promise(customer, made_on=days_ago(3))
        ActivityFactory(customer=customer)
    client.force_login(sales_rep)
    # Session, user, permissions, groups, owners, the page's one query with its balance and
    # promise subqueries, and the (capped) count — whatever the number of rows.
    with django_assert_max_num_queries(10):
        response = client.get(reverse("crm:customer_list"), {"sort": "-overdue", "show": "overdue"})
    assert len(response.context["rows"]) == rows


# --- Paging -----------------------------------------------------------------------------------


def _pages(client, **params) -> list[list[Customer]]:
    """Every page of the list, following its Next links."""
    pages = []
    while True:
        response = client.get(reverse("crm:customer_list"), params)
        assert response.status_code == 200
        pages.append([row.customer for row in response.context["rows"]])
        if not response.context["next_query"]:
            return pages
        params = QueryDict(response.context["next_query"])


@pytest.fixture
def tied_balances(sales_rep, ar_clerk):
    """Thirteen customers: four owing 100 (all overdue), four owing 100 (not yet due), two owing
    250, three owing nothing and never contacted; ties on balance and on overdue across pages."""
    customers = CustomerFactory.create_batch(13, owner=sales_rep, display_name="Same name")
    for customer in customers[:4]:
        overdue_invoice(ar_clerk, customer, "100.00")
    for customer in customers[4:8]:
        current_invoice(ar_clerk, customer, "100.00")
        with_limit(customer, "400")
    for customer in customers[8:10]:
        current_invoice(ar_clerk, customer, "250.00")
        ActivityFactory(customer=customer)
    promise(customers[0], made_on=days_ago(3))
    promise(customers[5], made_on=days_ago(3))
    return customers


ALL_SORTS = [
    f"{direction}{key}"
    for key in ("name", "balance", "overdue", "credit_use", "next_promise", "last_activity", "credit_limit")
    for direction in ("", "-")
]


@pytest.mark.parametrize("sort", ALL_SORTS)
def test_paging_shows_every_customer_exactly_once_in_the_sorted_order(rep_client, monkeypatch, tied_balances, sort):
    monkeypatch.setattr(views, "CUSTOMERS_PER_PAGE", 3)
    everyone = listed_all(rep_client, monkeypatch, sort=sort)
    pages = _pages(rep_client, sort=sort)
    assert [len(page) for page in pages] == [3, 3, 3, 3, 1]
    assert [customer for page in pages for customer in page] == everyone
    assert sorted(customer.pk for customer in everyone) == sorted(customer.pk for customer in tied_balances)


def listed_all(client, monkeypatch, **params) -> list[Customer]:
    """The whole list on one page: the order the pages must follow."""
    monkeypatch.setattr(views, "CUSTOMERS_PER_PAGE", 1000)
    rows = listed(client, **params)
    monkeypatch.setattr(views, "CUSTOMERS_PER_PAGE", 3)
    return rows


@pytest.mark.parametrize("sort", ["-balance", "overdue", "last_activity"])
def test_previous_goes_back_to_the_same_rows(rep_client, monkeypatch, tied_balances, sort):
    monkeypatch.setattr(views, "CUSTOMERS_PER_PAGE", 3)
    pages = _pages(rep_client, sort=sort)
    response = rep_client.get(reverse("crm:customer_list"), {"sort": sort, "after": pages[2][-1].pk})
    back = []
    while response.context["previous_query"]:
        response = rep_client.get(reverse("crm:customer_list"), QueryDict(response.context["previous_query"]))
        back.insert(0, [row.customer for row in response.context["rows"]])
    assert back == pages[:3]


def test_a_cursor_on_a_customer_out_of_reach_starts_from_the_first_page(
    rep_client, monkeypatch, tied_balances, others_customer
):
    monkeypatch.setattr(views, "CUSTOMERS_PER_PAGE", 3)
    first = listed(rep_client, sort="-balance")
    assert listed(rep_client, sort="-balance", after=others_customer.pk) == first


def test_the_count_stops_at_the_cap_and_says_so(rep_client, monkeypatch, tied_balances):
    monkeypatch.setattr(selectors, "COUNT_CAP", 10)
    response = rep_client.get(reverse("crm:customer_list"))
    assert "10+ customers" in response.text
    monkeypatch.setattr(selectors, "COUNT_CAP", 100)
    assert "13 customers" in rep_client.get(reverse("crm:customer_list")).text


# --- What the page counts and shows at scale --------------------------------------------------


def test_the_count_of_everyone_visible_includes_group_grants_and_counts_a_customer_once(
    client, other_rep, own_customer, others_customer
):
    team = Group.objects.create(name="Key accounts team")
    other_rep.groups.add(team)
    assign_perm("view_customer", team, own_customer)
    assign_perm("view_customer", other_rep, own_customer)  # the same customer, granted twice
    client.force_login(other_rep)
    response = client.get(reverse("crm:customer_list"))
    assert "2 customers" in response.text
    assert {row.customer for row in response.context["rows"]} == {own_customer, others_customer}


def test_the_count_of_everyone_visible_is_what_access_lets_the_user_see(
    sales_rep, other_rep, ar_clerk, own_customer, others_customer
):
    assign_perm("view_customer", other_rep, own_customer)
    inactive = UserFactory(username="gone", role=Role.SALES, is_active=False)
    for user in (sales_rep, other_rep, ar_clerk, inactive):
        assert access.count_visible_customers(user, limit=100) == access.visible_customers(user).count()
    assert access.count_visible_customers(ar_clerk, limit=1) == 1


def test_a_search_counts_only_the_customers_that_match(rep_client, sales_rep):
    CustomerFactory(owner=sales_rep, display_name="Alpha Mills")
    CustomerFactory(owner=sales_rep, display_name="Beta Works")
    response = rep_client.get(reverse("crm:customer_list"), {"q": "alpha"})
    assert "1 customer match" in response.text


def test_a_later_page_shows_the_same_count(rep_client, monkeypatch, tied_balances):
    monkeypatch.setattr(views, "CUSTOMERS_PER_PAGE", 3)
    first = listed(rep_client)
    response = rep_client.get(reverse("crm:customer_list"), {"after": first[-1].pk})
    assert "13 customers" in response.text


def test_each_row_links_to_the_customer_and_says_when_it_was_last_contacted(rep_client, own_customer):
    contacted = timezone.localtime(timezone.now() - timedelta(days=3, hours=1))
    ActivityFactory(customer=own_customer, occurred_at=contacted)
    response = rep_client.get(reverse("crm:customer_list"))
    assert f'<a href="{own_customer.get_absolute_url()}" class="fw-semibold">Northwind Traders</a>' in response.text
    assert f'<span title="{contacted:%Y-%m-%d %H:%M}">3\xa0days, 1\xa0hour ago</span>' in response.text


def test_a_customer_never_contacted_says_never(rep_client, own_customer):
    assert ">never<" in rep_client.get(reverse("crm:customer_list")).text


def test_the_owner_filter_offers_the_owners_of_the_customers_the_user_may_see(
    client, other_rep, own_customer, others_customer
):
    assign_perm("view_customer", other_rep, own_customer)
    client.force_login(other_rep)
    response = client.get(reverse("crm:customer_list"))
    owners = {value for value, _ in response.context["form"].fields["owner"].choices if value}
    assert owners == {own_customer.owner_id, other_rep.pk}
    assert listed(client, owner=own_customer.owner_id) == [own_customer]


def test_the_page_works_out_its_promise_columns_for_its_own_rows_only(rep_client, sales_rep, ar_clerk):
    """The rows are chosen by a subquery that sorts every match by the sort key alone (here the
    overdue amount); the promise columns are read in the outer query, for those rows."""
    for customer in CustomerFactory.create_batch(4, owner=sales_rep):
        overdue_invoice(ar_clerk, customer, "100.00")
    with CaptureQueriesContext(connection) as queries:
        assert len(listed(rep_client, sort="-overdue")) == 4
    page_query = next(query["sql"] for query in queries.captured_queries if "billing_promisetopay" in query["sql"])
    choosing_rows = page_query[page_query.index('"crm_customer"."id" IN (SELECT') :]
    assert "billing_invoice" in choosing_rows
    assert "billing_promisetopay" not in choosing_rows


def test_a_broken_promise_is_flagged_on_another_day_as_well(rep_client, own_customer, monkeypatch):
    """The promise expressions are built once a day and reused: the day is part of the key."""
    promise(own_customer, status="broken", made_on=days_ago(40), settled_on=days_ago(30))
    assert listed(rep_client, show="broken_promise") == [own_customer]
    later = timezone.localdate() + timedelta(days=120)
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: later)
    assert listed(rep_client, show="broken_promise") == []
