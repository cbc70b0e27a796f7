"""What only PostgreSQL proves: the database itself refuses rows the constraints forbid."""

import pytest
from django.db import IntegrityError, transaction

from crm.models import Contact, Customer

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_the_suite_runs_on_postgresql_15_or_newer():
    from django.db import connection

    assert connection.vendor == "postgresql"
    assert connection.pg_version >= 150000


def test_the_database_refuses_a_negative_credit_limit(own_customer):
    with pytest.raises(IntegrityError, match="customer_credit_limit_not_negative"), transaction.atomic():
        Customer.objects.filter(pk=own_customer.pk).update(credit_limit=-1)


def test_the_database_refuses_a_second_primary_contact(own_customer):
    Contact.objects.create(customer=own_customer, name="A", is_primary=True)
    with pytest.raises(IntegrityError, match="contact_one_primary_per_customer"), transaction.atomic():
        Contact.objects.create(customer=own_customer, name="B", is_primary=True)


def test_the_database_refuses_two_customers_mirroring_one_external_record(own_customer, others_customer):
    Customer.objects.filter(pk=own_customer.pk).update(external_system="quickbooks", external_id="42")
    with pytest.raises(IntegrityError, match="customer_unique_external_ref"), transaction.atomic():
        Customer.objects.filter(pk=others_customer.pk).update(external_system="quickbooks", external_id="42")


def test_the_database_refuses_a_lowercase_currency_code(own_customer):
    with pytest.raises(IntegrityError, match="customer_currency_iso_code"), transaction.atomic():
        Customer.objects.filter(pk=own_customer.pk).update(currency="usd")
