"""Local changes reach the outbox in their own transaction, one pending entry per record."""

from datetime import date
from decimal import Decimal

import pytest

from billing import services as billing
from crm import services as crm_services
from integrations import services
from integrations.core.canonical import CUSTOMER, INVOICE
from integrations.models import Connection, EntitySetting, OutboxEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection(finance_admin):
    connection = services.create_connection(actor=finance_admin, provider="quickbooks", name="Books")
    Connection.objects.filter(pk=connection.pk).update(status=Connection.Status.ACTIVE)
    return connection


@pytest.fixture
def customer(finance_admin):
    return crm_services.create_customer(actor=finance_admin, display_name="Acme Ltd", currency="USD")


def drafts(customer, count):
    line = billing.LineInput(description="Support", quantity=Decimal(1), unit_price=Decimal("10"))
    return [billing.InvoiceDraft(customer=customer, lines=[line]) for _ in range(count)]


def test_invoices_issued_in_a_batch_are_noted_once_issued_not_as_drafts(connection, customer, finance_admin):
    created = billing.create_invoices(actor=finance_admin, drafts=drafts(customer, 3))
    assert not OutboxEntry.objects.filter(entity=INVOICE).exists()

    billing.issue_invoices(actor=finance_admin, invoices=created, issue_date=date(2026, 11, 2))

    assert sorted(OutboxEntry.objects.filter(entity=INVOICE).values_list("local_id", flat=True)) == sorted(
        invoice.pk for invoice in created
    )


def test_repeated_changes_fold_into_one_pending_entry(connection, customer, finance_admin):
    crm_services.update_customer(actor=finance_admin, customer=customer, legal_name="Acme Holdings")
    crm_services.update_customer(actor=finance_admin, customer=customer, tax_id="GB1")

    assert OutboxEntry.objects.filter(entity=CUSTOMER, local_id=customer.pk, status="pending").count() == 1


def test_an_entity_synced_pull_only_is_not_noted(connection, finance_admin):
    services.set_direction(actor=finance_admin, connection=connection, entity=CUSTOMER, direction="pull")

    crm_services.create_customer(actor=finance_admin, display_name="Beta LLC", currency="USD")

    assert not OutboxEntry.objects.filter(entity=CUSTOMER).exists()


def test_a_connection_still_connecting_is_not_noted(finance_admin):
    services.create_connection(actor=finance_admin, provider="quickbooks", name="Not yet")

    crm_services.create_customer(actor=finance_admin, display_name="Gamma", currency="USD")

    assert EntitySetting.objects.exists() and not OutboxEntry.objects.exists()


def test_a_large_enqueue_is_split_under_the_parameter_limit(connection):
    from integrations.core.engine import enqueue

    enqueue(connection_id=connection.pk, entity=CUSTOMER, local_ids=list(range(1, 9001)))

    assert OutboxEntry.objects.filter(entity=CUSTOMER).count() == 9000
