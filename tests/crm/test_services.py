from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm import services
from crm.models import Activity, Contact, Customer
from tests.factories import ActivityFactory, ContactFactory

pytestmark = pytest.mark.django_db


def test_a_new_customer_gets_the_next_account_number(sales_rep):
    first = services.create_customer(actor=sales_rep, display_name="Alpha", currency="EUR", owner=sales_rep)
    second = services.create_customer(actor=sales_rep, display_name="Beta", currency="EUR", owner=sales_rep)
    assert (first.account_number, second.account_number) == ("C-000001", "C-000002")


def test_an_unknown_currency_is_refused_and_nothing_is_written(sales_rep):
    with pytest.raises(ValidationError, match="ISO 4217"):
        services.create_customer(actor=sales_rep, display_name="Alpha", currency="ABC", owner=sales_rep)
    assert not Customer.objects.exists()


def test_a_negative_credit_limit_is_refused(own_customer, finance_admin):
    with pytest.raises(ValidationError) as error:
        services.update_customer(actor=finance_admin, customer=own_customer, credit_limit=Decimal("-1"))
    assert "credit_limit" in error.value.message_dict
    own_customer.refresh_from_db()
    assert own_customer.credit_limit is None


def test_payment_terms_beyond_a_year_are_refused(own_customer, finance_admin):
    with pytest.raises(ValidationError) as error:
        services.update_customer(actor=finance_admin, customer=own_customer, payment_terms_days=400)
    assert "payment_terms_days" in error.value.message_dict


def test_update_customer_refuses_fields_it_does_not_own(own_customer, finance_admin, other_rep):
    with pytest.raises(TypeError, match="owner"):
        services.update_customer(actor=finance_admin, customer=own_customer, owner=other_rep)


def test_a_new_primary_contact_demotes_the_previous_one(own_customer):
    first = ContactFactory(customer=own_customer, is_primary=True)
    second = ContactFactory(customer=own_customer, is_primary=True)
    first.refresh_from_db()
    assert (first.is_primary, second.is_primary) == (False, True)


def test_two_contacts_of_one_customer_cannot_share_an_email(own_customer):
    ContactFactory(customer=own_customer, email="ap@northwind.example")
    with pytest.raises(ValidationError, match="already has a contact"):
        ContactFactory(customer=own_customer, email="AP@northwind.example")
    assert Contact.objects.filter(customer=own_customer).count() == 1


def test_logging_an_activity_updates_the_customers_activity_stats(own_customer, sales_rep):
    activity = services.log_activity(actor=sales_rep, customer=own_customer, kind="call", text="Called AP.")
    own_customer.refresh_from_db()
    assert (own_customer.activity_count, own_customer.last_activity_at) == (1, activity.occurred_at)


def test_an_older_activity_does_not_move_last_activity_back(own_customer, sales_rep):
    recent = services.log_activity(actor=sales_rep, customer=own_customer, kind="call", text="Recent call.")
    services.log_activity(
        actor=sales_rep,
        customer=own_customer,
        kind="note",
        text="Backdated note.",
        occurred_at=timezone.now() - timedelta(days=30),
    )
    own_customer.refresh_from_db()
    assert (own_customer.activity_count, own_customer.last_activity_at) == (2, recent.occurred_at)


def test_an_empty_activity_is_refused_and_nothing_is_written(own_customer, sales_rep):
    with pytest.raises(ValidationError):
        services.log_activity(actor=sales_rep, customer=own_customer, kind="note", text="   ")
    assert not Activity.objects.exists()
    own_customer.refresh_from_db()
    assert own_customer.activity_count == 0


def test_an_activity_in_the_future_is_refused(own_customer, sales_rep):
    with pytest.raises(ValidationError, match="future"):
        services.log_activity(
            actor=sales_rep,
            customer=own_customer,
            kind="meeting",
            text="Planned visit.",
            occurred_at=timezone.now() + timedelta(days=2),
        )


def test_refresh_activity_stats_repairs_drifted_customers_only(own_customer, others_customer):
    newest = ActivityFactory(customer=own_customer)
    ActivityFactory(customer=others_customer)
    Customer.objects.filter(pk=own_customer.pk).update(activity_count=7, last_activity_at=None)

    repaired = services.refresh_activity_stats()

    own_customer.refresh_from_db()
    assert repaired == 1
    assert (own_customer.activity_count, own_customer.last_activity_at) == (1, newest.occurred_at)


def test_refresh_activity_stats_clears_stats_of_a_customer_without_activity(own_customer):
    Customer.objects.filter(pk=own_customer.pk).update(activity_count=3, last_activity_at=timezone.now())
    assert services.refresh_activity_stats() == 1
    own_customer.refresh_from_db()
    assert (own_customer.activity_count, own_customer.last_activity_at) == (0, None)


def test_refresh_activity_stats_leaves_customers_in_step_alone(own_customer, others_customer):
    ActivityFactory(customer=own_customer)  # others_customer has no activity at all
    assert services.refresh_activity_stats() == 0


def test_an_update_that_changes_nothing_leaves_no_history_entry(own_customer, finance_admin):
    before = own_customer.history.count()
    services.update_customer(actor=finance_admin, customer=own_customer, payment_terms_days=30)
    assert own_customer.history.count() == before


def test_a_generated_account_number_taken_meanwhile_by_another_create_is_drawn_again(sales_rep, monkeypatch):
    taken = services.create_customer(actor=sales_rep, display_name="First", currency="EUR")
    drawn = iter([taken.account_number, "C-000002"])
    monkeypatch.setattr(services, "next_account_number", lambda: next(drawn))

    second = services.create_customer(actor=sales_rep, display_name="Second", currency="EUR")

    assert second.account_number == "C-000002"


def test_an_account_number_given_explicitly_is_never_replaced(sales_rep):
    services.create_customer(actor=sales_rep, display_name="First", currency="EUR", account_number="C-000777")
    with pytest.raises(ValidationError):
        services.create_customer(actor=sales_rep, display_name="Second", currency="EUR", account_number="C-000777")
