"""What only PostgreSQL proves: the database itself refuses rows the constraints forbid, and
row locks serialise concurrent writers."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connections, transaction

from crm import access, services
from crm.models import Contact, Customer
from crm.roles import Role
from tests.factories import UserFactory

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


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_reassignments_leave_exactly_the_final_owner_with_access(finance_admin, own_customer):
    reps = [UserFactory(username=f"rival-{n}", role=Role.SALES) for n in range(4)]
    start = threading.Barrier(len(reps))
    errors = []

    def reassign_to(rep):
        try:
            start.wait()
            services.reassign_customer(actor=finance_admin, customer=own_customer, new_owner=rep)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=reassign_to, args=(rep,)) for rep in reps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    own_customer.refresh_from_db()
    assert errors == []
    # Fresh user objects: permission checks are cached on the instance.
    fresh = get_user_model().objects.in_bulk([rep.pk for rep in reps])
    assert {pk for pk, rep in fresh.items() if access.can_view_customer(rep, own_customer)} == {own_customer.owner_id}
