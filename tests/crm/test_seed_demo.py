from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from crm import access
from crm.models import Activity, Contact, Customer
from crm.roles import Role, roles_of

pytestmark = pytest.mark.django_db


def seed(customers=12, seed=7):
    # People and customers only: billing's part of the demo is tested in tests/billing.
    call_command("seed_demo", customers=customers, seed=seed, months=0, stdout=StringIO())


def snapshot():
    return list(
        Customer.objects.order_by("account_number").values_list(
            "account_number", "display_name", "billing_city", "currency", "owner__username", "credit_limit"
        )
    )


def test_seed_demo_creates_the_demo_users_in_their_roles():
    seed()
    users = {user.username: user for user in get_user_model().objects.filter(is_active=True)}
    assert {name: roles_of(user) for name, user in users.items()} == {
        "sales": {Role.SALES},
        "sales2": {Role.SALES},
        "sales3": {Role.SALES},
        "ar": {Role.ACCOUNTS_RECEIVABLE},
        "admin": {Role.FINANCE_ADMIN},
    }
    assert users["admin"].is_superuser


def test_the_demo_users_log_in_with_the_published_password():
    seed(customers=1)
    request = RequestFactory().post("/login/")
    assert authenticate(request, username="sales", password="concord-demo") is not None


def test_seed_demo_spreads_customers_over_three_reps_with_contacts_and_activity():
    seed(customers=30)
    per_rep = {
        user.username: access.visible_customers(user).count()
        for user in get_user_model().objects.filter(username__startswith="sales")
    }
    assert per_rep == {"sales": 10, "sales2": 10, "sales3": 10}
    assert not Customer.objects.filter(contacts=None).exists()
    assert Contact.objects.filter(is_primary=True).count() == 30
    assert Activity.objects.count() > 30


def test_seed_demo_run_twice_adds_nothing():
    seed()
    before = (snapshot(), Contact.objects.count(), Activity.objects.count(), Customer.history.count())
    seed()
    assert (snapshot(), Contact.objects.count(), Activity.objects.count(), Customer.history.count()) == before


def test_seed_demo_gives_the_same_data_for_the_same_seed():
    seed(seed=3)
    first = snapshot()
    Customer.objects.all().delete()
    seed(seed=3)
    assert snapshot() == first


def test_different_seeds_give_different_customers():
    seed(seed=3)
    first = snapshot()
    Customer.objects.all().delete()
    seed(seed=4)
    assert snapshot() != first
