"""The admin console's users-and-roles pages: roles toggled in place, customers granted one by one
or as all of a rep's, grants revoked — each through crm.services, each recorded as an
AccessChange, each visible on the person's very next page."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import AccessChange
from crm.roles import Role, roles_of
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_client(client, finance_admin):
    client.force_login(finance_admin)
    return client


def signed_in(user) -> Client:
    other = Client()
    other.force_login(user)
    return other


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("console:home", {}),
        ("console:users", {}),
        ("console:user_detail", {"user_pk": None}),
        ("console:audit", {}),
        ("console:period_lock", {}),
        ("console:dunning_levels", {}),
    ],
)
def test_only_finance_admins_may_open_the_console(client, sales_rep, ar_clerk, finance_admin, name, kwargs):
    kwargs = dict.fromkeys(kwargs, sales_rep.pk)
    url = reverse(name, kwargs=kwargs)
    assert client.get(url).status_code == 302  # to the login page
    for person in (sales_rep, ar_clerk):
        client.force_login(person)
        assert client.get(url).status_code == 403
    client.force_login(finance_admin)
    assert client.get(url).status_code == 200


def test_a_non_admin_cannot_give_themselves_a_role(client, sales_rep):
    client.force_login(sales_rep)
    response = client.post(
        reverse("console:user_role", args=[sales_rep.pk]), {"role": Role.FINANCE_ADMIN.value, "held": "1"}
    )
    assert response.status_code == 403
    assert roles_of(sales_rep) == {Role.SALES}
    assert not AccessChange.objects.exists()


def test_giving_a_role_in_place_answers_the_toggles_and_records_the_change(admin_client, finance_admin, sales_rep):
    response = admin_client.post(
        reverse("console:user_role", args=[sales_rep.pk]),
        {"role": Role.ACCOUNTS_RECEIVABLE.value, "held": "1"},
        **HTMX,
    )
    assert response.status_code == 200
    assert response.templates[0].name == "console/_user_roles.html"
    assert 'aria-pressed="true"' in response.text
    assert "Sees every customer" in response.text
    assert roles_of(sales_rep) == {Role.SALES, Role.ACCOUNTS_RECEIVABLE}
    change = AccessChange.objects.get()
    assert (change.kind, change.user, change.role, change.changed_by) == (
        AccessChange.Kind.ROLE_ADDED,
        sales_rep,
        Role.ACCOUNTS_RECEIVABLE.value,
        finance_admin,
    )


def test_taking_a_role_away_without_htmx_returns_to_the_page_it_came_from(admin_client, sales_rep):
    response = admin_client.post(
        reverse("console:user_role", args=[sales_rep.pk]),
        {"role": Role.SALES.value, "held": "0", "next": reverse("console:users") + "?role=Sales"},
    )
    assert response.status_code == 302
    assert response.url == reverse("console:users") + "?role=Sales"
    assert roles_of(sales_rep) == set()
    assert AccessChange.objects.get().kind == AccessChange.Kind.ROLE_REMOVED


def test_a_role_taken_away_takes_the_pages_away_on_the_next_request(admin_client, sales_rep, own_customer):
    rep = signed_in(sales_rep)
    assert rep.get(reverse("crm:customer_list")).status_code == 200
    admin_client.post(reverse("console:user_role", args=[sales_rep.pk]), {"role": Role.SALES.value, "held": "0"})
    assert rep.get(reverse("crm:customer_list")).status_code == 403


def test_an_admin_cannot_take_away_their_own_admin_role(admin_client, finance_admin):
    response = admin_client.post(
        reverse("console:user_role", args=[finance_admin.pk]),
        {"role": Role.FINANCE_ADMIN.value, "held": "0"},
        **HTMX,
    )
    assert response.status_code == 200
    assert "You cannot remove your own Finance Admin role" in response.text
    assert Role.FINANCE_ADMIN in roles_of(finance_admin)
    assert not AccessChange.objects.exists()


def test_an_off_site_next_is_ignored(admin_client, sales_rep):
    response = admin_client.post(
        reverse("console:user_role", args=[sales_rep.pk]),
        {"role": Role.ACCOUNTS_RECEIVABLE.value, "held": "1", "next": "https://evil.example.com/"},
    )
    assert response.url == reverse("console:user_detail", args=[sales_rep.pk])


def test_granting_one_customer_shows_it_on_the_reps_next_page(admin_client, finance_admin, sales_rep, others_customer):
    rep = signed_in(sales_rep)
    assert rep.get(reverse("crm:customer_detail", args=[others_customer.pk])).status_code == 404
    assert others_customer.display_name not in rep.get(reverse("crm:customer_list")).text

    response = admin_client.post(
        reverse("console:grant_customer", args=[sales_rep.pk]), {"customer": others_customer.pk}, **HTMX
    )

    assert response.status_code == 200
    assert f"{sales_rep.username} can now see {others_customer.display_name}" in response.text
    assert others_customer.display_name in rep.get(reverse("crm:customer_list")).text
    assert rep.get(reverse("crm:customer_detail", args=[others_customer.pk])).status_code == 200
    change = AccessChange.objects.get()
    assert (change.kind, change.user, change.customer, change.changed_by) == (
        AccessChange.Kind.ACCESS_GRANTED,
        sales_rep,
        others_customer,
        finance_admin,
    )


def test_granting_every_customer_of_a_rep_shows_them_all_on_customers(admin_client, sales_rep, other_rep):
    theirs = CustomerFactory.create_batch(3, owner=other_rep)
    rep = signed_in(sales_rep)
    assert all(customer.display_name not in rep.get(reverse("crm:customer_list")).text for customer in theirs)

    response = admin_client.post(reverse("console:grant_rep_customers", args=[sales_rep.pk]), {"rep": other_rep.pk})

    assert response.status_code == 302
    listed = rep.get(reverse("crm:customer_list")).text
    assert all(customer.display_name in listed for customer in theirs)
    changes = AccessChange.objects.filter(kind=AccessChange.Kind.ACCESS_GRANTED, user=sales_rep)
    assert {change.customer_id for change in changes} == {customer.pk for customer in theirs}
    assert all(f"All customers of {other_rep.username}" in change.detail for change in changes)


def test_granting_a_rep_with_no_customers_is_refused_next_to_the_field(admin_client, sales_rep, other_rep):
    response = admin_client.post(
        reverse("console:grant_rep_customers", args=[sales_rep.pk]), {"rep": other_rep.pk}, **HTMX
    )
    assert response.status_code == 200
    assert "is-invalid" in response.text
    assert f"{other_rep.username} owns no customers" in response.text
    assert not AccessChange.objects.exists()


def test_revoking_a_grant_hides_the_customer_on_the_reps_next_page(admin_client, sales_rep, others_customer):
    admin_client.post(reverse("console:grant_customer", args=[sales_rep.pk]), {"customer": others_customer.pk})
    rep = signed_in(sales_rep)
    assert rep.get(reverse("crm:customer_detail", args=[others_customer.pk])).status_code == 200

    response = admin_client.post(reverse("console:revoke_customer", args=[sales_rep.pk, others_customer.pk]), **HTMX)

    assert response.status_code == 200
    assert f"{sales_rep.username} can no longer see {others_customer.display_name}" in response.text
    assert rep.get(reverse("crm:customer_detail", args=[others_customer.pk])).status_code == 404
    assert others_customer.display_name not in rep.get(reverse("crm:customer_list")).text
    assert list(AccessChange.objects.order_by("pk").values_list("kind", flat=True)) == [
        AccessChange.Kind.ACCESS_GRANTED,
        AccessChange.Kind.ACCESS_REVOKED,
    ]


def test_revoking_an_owners_own_customer_is_refused_and_changes_nothing(admin_client, sales_rep, own_customer):
    response = admin_client.post(reverse("console:revoke_customer", args=[sales_rep.pk, own_customer.pk]), **HTMX)

    assert response.status_code == 200
    assert "reassign the customer to take it away" in response.text
    assert signed_in(sales_rep).get(reverse("crm:customer_detail", args=[own_customer.pk])).status_code == 200
    assert not AccessChange.objects.exists()


def test_the_user_page_shows_owned_and_granted_customers_apart(admin_client, sales_rep, own_customer, others_customer):
    admin_client.post(reverse("console:grant_customer", args=[sales_rep.pk]), {"customer": others_customer.pk})
    response = admin_client.get(reverse("console:user_detail", args=[sales_rep.pk]))
    access = response.context["access"]
    assert access.owned == [own_customer]
    assert [grant.customer for grant in access.granted] == [others_customer]
    assert access.granted[0].change.detail == "Granted in the admin console"
    assert reverse("console:revoke_customer", args=[sales_rep.pk, others_customer.pk]) in response.text
    assert reverse("console:revoke_customer", args=[sales_rep.pk, own_customer.pk]) not in response.text


def test_customer_search_by_name_or_account_number_says_what_the_person_sees(
    admin_client, sales_rep, own_customer, others_customer
):
    url = reverse("console:user_customer_search", args=[sales_rep.pk])
    by_name = admin_client.get(url, {"q": "Northwind"}, **HTMX)
    assert "Owns it" in by_name.text
    by_number = admin_client.get(url, {"q": others_customer.account_number}, **HTMX)
    assert [result.customer for result in by_number.context["results"]] == [others_customer]
    assert reverse("console:grant_customer", args=[sales_rep.pk]) in by_number.text
    nothing = admin_client.get(url, {"q": "no such customer"}, **HTMX)
    assert "No customer matches" in nothing.text


def test_the_user_list_filters_by_search_role_and_status(admin_client, sales_rep, other_rep, ar_clerk, finance_admin):
    UserFactory(username="gone", role=Role.SALES, is_active=False)
    url = reverse("console:users")

    def listed(**params):
        return [row.user.username for row in admin_client.get(url, params).context["rows"]]

    assert listed(role=Role.SALES.value) == ["gone", "rep-other", "rep-own"]
    assert listed(role=Role.SALES.value, active="yes") == ["rep-other", "rep-own"]
    assert listed(active="no") == ["gone"]
    assert listed(q="ar-cl") == ["ar-clerk"]
    assert listed(role="none") == []
    assert "system.tests" not in listed()


def test_the_user_list_counts_owned_and_granted_customers(admin_client, sales_rep, other_rep, own_customer):
    CustomerFactory.create_batch(2, owner=other_rep)
    admin_client.post(reverse("console:grant_rep_customers", args=[sales_rep.pk]), {"rep": other_rep.pk})
    rows = {row.user.username: row for row in admin_client.get(reverse("console:users")).context["rows"]}
    assert (rows["rep-own"].owned_count, rows["rep-own"].granted_count) == (1, 2)
    assert (rows["rep-other"].owned_count, rows["rep-other"].granted_count) == (2, 0)


def test_the_user_list_reads_the_same_number_of_queries_for_many_people(
    admin_client, finance_admin, django_assert_max_num_queries
):
    url = reverse("console:users")
    UserFactory.create_batch(2, role=Role.SALES)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for _ in range(20):
        CustomerFactory(owner=UserFactory(role=Role.ACCOUNTS_RECEIVABLE))
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(url)
    assert len(response.context["rows"]) > 20
