"""The rows of the customer list, whose repeated parts (status badge, contributed cells) the view
makes once rather than the template for every row, and the owner filter's choices."""

import pytest
from django.contrib.auth.models import Group
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from guardian.shortcuts import assign_perm, remove_perm

from crm import access, listing, selectors
from crm.models import Customer
from crm.roles import Role
from tests.factories import ActivityFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def rows_of(client, **params):
    response = client.get(reverse("crm:customer_list"), params)
    assert response.status_code == 200
    return response, response.context["rows"]


def test_each_row_shows_the_shared_status_badge_of_its_customer(client, sales_rep):
    for status in Customer.Status.values:
        CustomerFactory(owner=sales_rep, status=status, display_name=f"Customer {status}")
    client.force_login(sales_rep)
    response, rows = rows_of(client)
    assert sorted(row.customer.status for row in rows) == sorted(Customer.Status.values)
    for row in rows:
        badge = render_to_string("components/status_badge.html", {"status": row.customer.status})
        assert f"<td>{badge}</td>" in row.html
        assert row.html in response.text


def test_a_row_links_the_customer_and_shows_its_account_place_and_last_contact(client, sales_rep):
    contacted = CustomerFactory(
        owner=sales_rep, display_name="Fabrikam & Sons", billing_city="Lyon", billing_country="FR"
    )
    ActivityFactory(customer=contacted)
    CustomerFactory(owner=sales_rep, display_name="Tailspin", billing_city="")
    client.force_login(sales_rep)
    _, rows = rows_of(client)
    fabrikam, tailspin = rows
    assert f'<a href="{reverse("crm:customer_detail", args=[contacted.pk])}" class="fw-semibold">' in fabrikam.html
    assert "Fabrikam &amp; Sons</a>" in fabrikam.html
    assert f'<span class="font-monospace">{contacted.account_number}</span> · Lyon FR</div>' in fabrikam.html
    assert '<td class="text-nowrap"><span title="' in fabrikam.html and "never" not in fabrikam.html
    assert f"{tailspin.customer.account_number}</span></div>" in tailspin.html
    assert '<td class="text-nowrap"><span class="text-body-secondary">never</span></td>' in tailspin.html


def test_contributed_cells_are_right_aligned_when_numeric_and_escaped_unless_marked_safe(client, sales_rep):
    listing.register_customer_list_extension(
        listing.CustomerListExtension(
            name="test-cells",
            order=999,
            columns=(
                listing.ListColumn("plain", "Plain", render=lambda customer: f"<b>{customer.display_name}</b>"),
                listing.ListColumn(
                    "figure", "Figure", render=lambda customer: mark_safe("1,234.<i>50</i>"), numeric=True
                ),
            ),
        )
    )
    try:
        CustomerFactory(owner=sales_rep, display_name="Fabrikam")
        client.force_login(sales_rep)
        response, rows = rows_of(client)
    finally:
        listing.unregister_customer_list_extension("test-cells")
    assert "<td>&lt;b&gt;Fabrikam&lt;/b&gt;</td>" in rows[0].html
    assert '<td class="text-end text-nowrap">1,234.<i>50</i></td>' in rows[0].html
    assert "<b>Fabrikam</b>" not in response.text


def test_a_reps_own_list_shows_no_owner_and_does_not_read_one(client, sales_rep):
    CustomerFactory.create_batch(3, owner=sales_rep)
    client.force_login(sales_rep)
    response, rows = rows_of(client)
    assert not response.context["show_owner"]
    assert not any(Customer.owner.is_cached(row.customer) for row in rows)


def test_a_list_of_several_owners_reads_each_rows_owner_with_the_page(client, ar_clerk, own_customer, others_customer):
    client.force_login(ar_clerk)
    response, rows = rows_of(client)
    assert response.context["show_owner"]
    assert all(Customer.owner.is_cached(row.customer) for row in rows)
    for customer in (own_customer, others_customer):
        assert f"<td>{customer.owner.get_full_name()}</td>" in response.text


def test_a_customer_without_an_owner_shows_a_dash_where_others_show_theirs(
    client, ar_clerk, own_customer, others_customer
):
    CustomerFactory(owner=None, display_name="Unowned Ltd")
    client.force_login(ar_clerk)
    _, rows = rows_of(client)
    unowned = next(row for row in rows if row.customer.owner_id is None)
    assert "\n      <td>—</td>\n" in unowned.html


# --- The owner filter's choices -----------------------------------------------------------------


def owner_choices(user) -> set:
    return set(selectors.customer_owners(user=user))


def test_a_rep_who_sees_only_their_own_book_is_its_only_owner(sales_rep, own_customer, others_customer):
    assert owner_choices(sales_rep) == {sales_rep}


def test_a_customer_granted_to_a_rep_adds_its_owner_and_a_group_grant_too(
    sales_rep, other_rep, own_customer, others_customer
):
    assign_perm("view_customer", sales_rep, others_customer)
    assert owner_choices(sales_rep) == {sales_rep, other_rep}

    third_rep = UserFactory(role=Role.SALES)
    team = Group.objects.create(name="Key accounts team")
    sales_rep.groups.add(team)
    assign_perm("view_customer", team, CustomerFactory(owner=third_rep))
    assert owner_choices(sales_rep) == {sales_rep, other_rep, third_rep}


def test_a_rep_whose_own_customers_are_all_out_of_reach_is_not_an_owner_they_see(
    sales_rep, other_rep, own_customer, others_customer
):
    remove_perm("view_customer", sales_rep, own_customer)
    assign_perm("view_customer", sales_rep, others_customer)
    assert owner_choices(sales_rep) == {other_rep}


def test_a_granted_customer_without_an_owner_adds_no_choice(sales_rep, own_customer):
    assign_perm("view_customer", sales_rep, CustomerFactory(owner=None))
    assert owner_choices(sales_rep) == {sales_rep}


def test_the_owner_choices_are_the_owners_of_every_customer_the_user_sees(sales_rep, other_rep, ar_clerk):
    CustomerFactory.create_batch(2, owner=sales_rep)
    CustomerFactory(owner=other_rep)
    CustomerFactory(owner=None)
    for user in (sales_rep, other_rep, ar_clerk):
        expected = {customer.owner for customer in access.visible_customers(user).select_related("owner")} - {None}
        assert owner_choices(user) == expected
