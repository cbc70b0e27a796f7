"""The audit history viewer: every audited model and the access changes, newest first, filtered by
model, record, author and dates, each change shown field by field — in a number of queries that
does not grow with the page."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config.audit import system_actor
from config.audit_viewer import ACCESS_CHANGES, FieldChange, audit_sources
from crm import services
from crm.models import Contact, Customer
from tests.factories import ContactFactory, CustomerFactory

pytestmark = pytest.mark.django_db

URL = reverse("console:audit")


@pytest.fixture
def admin_client(client, finance_admin):
    client.force_login(finance_admin)
    return client


def entries(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200
    return response.context["entries"]


def test_every_audited_model_and_the_access_changes_are_sources():
    labels = set(audit_sources())
    assert {"crm.customer", "crm.contact", "crm.activity", "billing.invoice", "billing.dunninglevel"} <= labels
    assert {"ledger.periodlock", "ledger.journalentry", ACCESS_CHANGES} <= labels
    assert not any(label.startswith(("crm.historical", "billing.historical")) for label in labels)


def test_a_change_shows_who_made_it_and_each_field_old_and_new(admin_client, finance_admin, own_customer):
    services.update_customer(
        actor=finance_admin, customer=own_customer, display_name="Northwind Traders Ltd", status="on_hold"
    )

    newest = entries(admin_client, model="crm.customer")[0]

    assert (newest.action, newest.who, newest.record) == ("~", finance_admin, "Northwind Traders Ltd")
    assert FieldChange("Display name", "Northwind Traders", "Northwind Traders Ltd") in newest.changes
    assert FieldChange("Status", "Active", "On hold") in newest.changes  # choices by their label
    assert newest.customer_url == reverse("crm:customer_detail", args=[own_customer.pk])


def test_a_new_owner_is_shown_by_name(admin_client, finance_admin, own_customer, other_rep):
    services.reassign_customer(actor=finance_admin, customer=own_customer, new_owner=other_rep)
    newest = entries(admin_client, model="crm.customer")[0]
    assert FieldChange("Owner", "rep-own", "rep-other") in newest.changes


def test_entries_are_newest_first_across_models(admin_client, finance_admin, own_customer):
    ContactFactory(customer=own_customer, name="Ann Payable")
    services.update_customer(actor=finance_admin, customer=own_customer, credit_limit=Decimal("5000.00"))
    shown = entries(admin_client)
    assert [entry.source.label for entry in shown[:3]] == ["crm.customer", "crm.contact", "crm.customer"]
    assert [entry.when for entry in shown] == sorted((entry.when for entry in shown), reverse=True)


def test_a_contact_links_to_its_customer(admin_client, own_customer):
    ContactFactory(customer=own_customer, name="Ann Payable")
    contact_entry = entries(admin_client, model="crm.contact")[0]
    assert (contact_entry.action, contact_entry.record) == ("+", "Ann Payable")
    assert contact_entry.customer_url == reverse("crm:customer_detail", args=[own_customer.pk])


def test_the_model_filter_shows_that_model_only(admin_client, own_customer):
    ContactFactory(customer=own_customer)
    assert {entry.source.label for entry in entries(admin_client, model="crm.contact")} == {"crm.contact"}
    assert {entry.source.label for entry in entries(admin_client)} >= {"crm.contact", "crm.customer"}


def test_the_record_filter_shows_one_records_history(admin_client, finance_admin, own_customer, others_customer):
    services.update_customer(actor=finance_admin, customer=others_customer, legal_name="Contoso Pharma AG")
    shown = entries(admin_client, model="crm.customer", record=own_customer.pk)
    assert [entry.record_id for entry in shown] == [str(own_customer.pk)]


def test_the_author_filter_shows_one_persons_changes(admin_client, finance_admin, own_customer):
    services.update_customer(actor=finance_admin, customer=own_customer, legal_name="Northwind Trading Ltd")
    mine = entries(admin_client, user=finance_admin.pk)
    assert [(entry.who, entry.source.label) for entry in mine] == [(finance_admin, "crm.customer")]
    by_the_tests = entries(admin_client, user=system_actor("tests").pk)
    assert by_the_tests and all(entry.who.username == "system.tests" for entry in by_the_tests)


def test_the_date_range_keeps_the_days_asked_for(admin_client, finance_admin, own_customer):
    services.update_customer(actor=finance_admin, customer=own_customer, legal_name="Northwind Trading Ltd")
    created = own_customer.history.earliest()
    ten_days_ago = timezone.now() - timedelta(days=10)
    Customer.history.filter(history_id=created.history_id).update(history_date=ten_days_ago)
    old_day = timezone.localdate(ten_days_ago)

    only_then = entries(admin_client, model="crm.customer", date_from=old_day, date_to=old_day)
    since_yesterday = entries(admin_client, model="crm.customer", date_from=timezone.localdate() - timedelta(days=1))

    assert [entry.action for entry in only_then] == ["+"]
    assert [entry.action for entry in since_yesterday] == ["~"]


def test_an_end_before_the_start_is_refused_next_to_the_field(admin_client):
    response = admin_client.get(URL, {"date_from": "2026-05-02", "date_to": "2026-05-01"})
    assert response.context["form"].errors == {"date_to": ["The end date comes before the start date."]}
    assert "The end date comes before the start date." in response.text


def test_access_changes_show_beside_the_other_changes(admin_client, finance_admin, sales_rep, others_customer):
    services.grant_customer_access(actor=finance_admin, user=sales_rep, customers=[others_customer], detail="Cover")

    granted = entries(admin_client, model=ACCESS_CHANGES)[0]
    for_the_rep = entries(admin_client, model=ACCESS_CHANGES, record=sales_rep.pk)

    assert (granted.action, granted.action_label, granted.who) == ("+", "Access granted", finance_admin)
    assert granted.record == f"rep-own: {others_customer.display_name}"
    assert granted.customer_url == reverse("crm:customer_detail", args=[others_customer.pk])
    assert granted.detail == "Cover"
    assert [entry.subject_user for entry in for_the_rep] == [sales_rep]


def test_the_page_shows_the_diffs_and_the_links(admin_client, finance_admin, own_customer):
    services.update_customer(actor=finance_admin, customer=own_customer, display_name="Northwind Traders Ltd")
    response = admin_client.get(URL)
    assert "Northwind Traders Ltd" in response.text
    assert "<del" in response.text
    assert reverse("crm:customer_detail", args=[own_customer.pk]) in response.text


def test_an_empty_result_says_what_to_do(admin_client):
    response = admin_client.get(URL, {"model": "billing.refund"})
    assert "No change matches these filters" in response.text


def _changes(actor, customers: int, edits: int) -> None:
    """History rows of customers (created, then edited) and contacts, with their owners."""
    for n in range(customers):
        customer = CustomerFactory(display_name=f"Customer {n}")
        ContactFactory(customer=customer)
        for edit in range(edits):
            services.update_customer(actor=actor, customer=customer, legal_name=f"Customer {n} edit {edit}")


def test_the_number_of_queries_does_not_grow_with_the_page(admin_client, finance_admin):
    _changes(finance_admin, customers=2, edits=1)
    with CaptureQueriesContext(connection) as small_page:
        few = entries(admin_client, per_page=25)
    _changes(finance_admin, customers=10, edits=5)
    with CaptureQueriesContext(connection) as large_page:
        many = entries(admin_client, per_page=100)

    assert (len(few), len(many)) == (6, 76)
    assert {entry.source.label for entry in few} == {entry.source.label for entry in many}
    assert len(large_page.captured_queries) == len(small_page.captured_queries)
    assert Contact.objects.count() == 12


def test_a_page_reads_at_most_two_queries_per_model_shown_beyond_an_empty_one(admin_client, finance_admin):
    _changes(finance_admin, customers=10, edits=8)
    with CaptureQueriesContext(connection) as empty_page:
        assert entries(admin_client, model="billing.refund") == []
    with CaptureQueriesContext(connection) as full_page:
        shown = entries(admin_client, per_page=100)
    assert len(shown) == 100
    # The page's keys; the rows of each of the two models shown; the previous rows of the edited
    # customers (the contacts were only created, so they have no previous rows to read).
    assert len(full_page.captured_queries) == len(empty_page.captured_queries) + 1 + 2 + 1
