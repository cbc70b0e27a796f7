"""Audit history records who acted: the web user, a service's actor, or a named system actor."""

import pytest
from celery import shared_task
from django.core.management import call_command
from django.urls import reverse

from config import audit
from crm import services
from crm.models import Activity, Customer

pytestmark = pytest.mark.django_db


@shared_task(name="tests.put_customer_on_hold")
def put_customer_on_hold(customer_id: int) -> None:
    # A model saved with no explicit actor, as code run by a task might.
    customer = Customer.objects.get(pk=customer_id)
    customer.status = Customer.Status.ON_HOLD
    customer.save()


def test_a_change_made_through_a_page_records_the_logged_in_user(client, sales_rep, own_customer):
    client.force_login(sales_rep)
    client.post(reverse("crm:log_activity", args=[own_customer.pk]), {"kind": "note", "text": "Noted."})
    record = Activity.history.get()
    assert (record.history_type, record.history_user) == ("+", sales_rep)


def test_a_service_records_its_explicit_actor(finance_admin, own_customer):
    services.update_customer(actor=finance_admin, customer=own_customer, status="on_hold")
    assert own_customer.history.latest().history_user == finance_admin


def test_an_admin_edit_records_the_admin(client, finance_admin, own_customer):
    client.force_login(finance_admin)
    url = reverse("admin:crm_customer_change", args=[own_customer.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(
        {
            "display_name": "Northwind Traders International",
            "owner": own_customer.owner_id,
            "contacts-TOTAL_FORMS": 0,
            "contacts-INITIAL_FORMS": 0,
        }
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    latest = own_customer.history.latest()
    assert (latest.display_name, latest.history_user) == ("Northwind Traders International", finance_admin)


def test_a_task_records_a_named_system_actor(own_customer):
    put_customer_on_hold.apply(args=[own_customer.pk])
    actor = own_customer.history.latest().history_user
    assert actor.username == "system.task:tests.put_customer_on_hold"
    assert not actor.is_active
    assert not actor.has_usable_password()


def test_a_management_command_records_a_named_system_actor():
    call_command("seed_demo", customers=1, stdout=None)
    assert Customer.history.get().history_user.username == "system.command:seed_demo"


def test_acting_as_attributes_unattributed_saves_to_the_given_user(sales_rep, own_customer):
    with audit.acting_as(sales_rep):
        own_customer.status = Customer.Status.ARCHIVED
        own_customer.save()
    assert own_customer.history.latest().history_user == sales_rep


def test_a_save_outside_any_context_is_attributed_to_the_unattended_system_actor(own_customer):
    own_customer.save()
    assert own_customer.history.latest().history_user.username == "system.unattended"
