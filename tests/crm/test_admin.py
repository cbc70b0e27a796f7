"""The admin console keeps the same rules as the pages, because it saves through crm.services."""

import pytest
from django.urls import reverse

from crm.models import Activity, Contact, Customer
from tests.factories import ActivityFactory, ContactFactory

pytestmark = pytest.mark.django_db


def change_form_data(client, url, **overrides):
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update({"contacts-TOTAL_FORMS": 0, "contacts-INITIAL_FORMS": 0, **overrides})
    return data


def test_changing_the_owner_in_the_admin_moves_access(client, finance_admin, own_customer, other_rep):
    from crm import access

    client.force_login(finance_admin)
    url = reverse("admin:crm_customer_change", args=[own_customer.pk])
    response = client.post(url, change_form_data(client, url, owner=other_rep.pk))
    assert response.status_code == 302
    assert own_customer in access.visible_customers(other_rep)
    assert own_customer not in access.visible_customers(own_customer.owner)


def test_adding_a_customer_in_the_admin_grants_its_owner_access(client, finance_admin, sales_rep):
    client.force_login(finance_admin)
    response = client.post(
        reverse("admin:crm_customer_add"),
        {
            "account_number": "C-900001",
            "display_name": "Fabrikam",
            "status": "active",
            "owner": sales_rep.pk,
            "currency": "EUR",
            "payment_terms_days": 30,
            "contacts-TOTAL_FORMS": 0,
            "contacts-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302
    assert sales_rep.has_perm("crm.view_customer", Customer.objects.get(account_number="C-900001"))


def test_a_primary_contact_added_in_the_admin_demotes_the_previous_one(client, finance_admin, own_customer):
    previous = ContactFactory(customer=own_customer, is_primary=True)
    client.force_login(finance_admin)
    response = client.post(
        reverse("admin:crm_contact_add"),
        {"customer": own_customer.pk, "name": "Ana Lopez", "email": "ana@example.com", "is_primary": "on"},
    )
    assert response.status_code == 302
    previous.refresh_from_db()
    assert not previous.is_primary
    assert Contact.objects.get(name="Ana Lopez").history.latest().history_user == finance_admin


def test_deleting_an_activity_in_the_admin_updates_the_customers_stats(client, finance_admin, own_customer):
    activity = ActivityFactory(customer=own_customer)
    client.force_login(finance_admin)
    response = client.post(reverse("admin:crm_activity_delete", args=[activity.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Activity.objects.exists()
    own_customer.refresh_from_db()
    assert (own_customer.activity_count, own_customer.last_activity_at) == (0, None)


def test_activities_cannot_be_rewritten_in_the_admin(client, finance_admin, own_customer):
    activity = ActivityFactory(customer=own_customer, text="Original")
    client.force_login(finance_admin)
    client.post(reverse("admin:crm_activity_change", args=[activity.pk]), {"text": "Rewritten"})
    activity.refresh_from_db()
    assert activity.text == "Original"


def test_an_old_version_cannot_be_restored_from_the_history_page(client, finance_admin, own_customer):
    from crm import services

    services.update_customer(actor=finance_admin, customer=own_customer, payment_terms_days=45)
    first = own_customer.history.earliest()
    client.force_login(finance_admin)
    url = reverse("admin:crm_customer_simple_history", args=[own_customer.pk, first.history_id])
    response = client.post(url, {"display_name": own_customer.display_name, "payment_terms_days": 30})
    assert response.status_code == 403
    own_customer.refresh_from_db()
    assert own_customer.payment_terms_days == 45
