import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404
from guardian.shortcuts import assign_perm

from crm import access, services
from crm.roles import Role
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_sales_rep_sees_only_the_customers_they_own(sales_rep, own_customer, others_customer):
    assert list(access.visible_customers(sales_rep)) == [own_customer]


def test_accounts_receivable_sees_every_customer(ar_clerk, own_customer, others_customer):
    assert set(access.visible_customers(ar_clerk)) == {own_customer, others_customer}


def test_finance_admin_sees_every_customer(finance_admin, own_customer, others_customer):
    assert set(access.visible_customers(finance_admin)) == {own_customer, others_customer}


def test_a_user_without_a_role_sees_no_customer(own_customer):
    assert not access.visible_customers(UserFactory()).exists()


def test_a_deactivated_rep_sees_nothing(sales_rep, own_customer):
    sales_rep.is_active = False
    sales_rep.save()
    assert not access.visible_customers(sales_rep).exists()
    assert not access.can_view_customer(sales_rep, own_customer)


def test_an_admin_grant_lets_another_user_see_the_customer(other_rep, own_customer):
    assign_perm("view_customer", other_rep, own_customer)
    assert own_customer in access.visible_customers(other_rep)
    assert access.can_view_customer(other_rep, own_customer)


def test_a_grant_to_a_group_reaches_its_members(other_rep, own_customer):
    team = Group.objects.create(name="Key accounts team")
    other_rep.groups.add(team)
    assign_perm("view_customer", team, own_customer)
    assert own_customer in access.visible_customers(other_rep)


def test_the_owner_may_change_their_customer_but_not_anothers(sales_rep, own_customer, others_customer):
    assert access.can_change_customer(sales_rep, own_customer)
    assert not access.can_change_customer(sales_rep, others_customer)


def test_reassigning_the_owner_moves_access(finance_admin, sales_rep, other_rep, own_customer):
    services.reassign_customer(actor=finance_admin, customer=own_customer, new_owner=other_rep)

    assert own_customer not in access.visible_customers(sales_rep)
    assert own_customer in access.visible_customers(other_rep)
    assert access.can_change_customer(other_rep, own_customer)


def test_reassigning_the_owner_keeps_grants_made_to_others(finance_admin, sales_rep, other_rep, own_customer):
    colleague = UserFactory(role=Role.SALES)
    assign_perm("view_customer", colleague, own_customer)

    services.reassign_customer(actor=finance_admin, customer=own_customer, new_owner=other_rep)

    assert own_customer in access.visible_customers(colleague)


def test_only_a_finance_admin_may_reassign_a_customer(sales_rep, other_rep, own_customer):
    with pytest.raises(PermissionDenied):
        services.reassign_customer(actor=sales_rep, customer=own_customer, new_owner=other_rep)
    own_customer.refresh_from_db()
    assert own_customer.owner == sales_rep


def test_a_customer_cannot_be_given_to_a_deactivated_user(finance_admin, own_customer):
    gone = UserFactory(is_active=False)
    with pytest.raises(Exception, match="not an active user"):
        services.reassign_customer(actor=finance_admin, customer=own_customer, new_owner=gone)


def test_get_visible_customer_or_404_hides_customers_out_of_reach(sales_rep, others_customer):
    with pytest.raises(Http404):
        access.get_visible_customer_or_404(sales_rep, others_customer.pk)


def test_the_visible_customers_query_does_not_grow_with_the_number_of_customers(
    sales_rep, django_assert_max_num_queries
):
    CustomerFactory.create_batch(12, owner=sales_rep)
    sales_rep = type(sales_rep).objects.get(pk=sales_rep.pk)  # no permission cache from set-up
    # Loading the rep's role permissions, then one query for the customers themselves.
    with django_assert_max_num_queries(3):
        assert len(list(access.visible_customers(sales_rep))) == 12
