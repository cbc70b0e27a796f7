"""Optimistic concurrency: detail responses carry an ETag; PUT and PATCH honour If-Match (412 when
the resource changed since it was read; without If-Match the write goes through)."""

import pytest

from crm import services
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def _url(customer):
    return f"/api/v1/customers/{customer.pk}/"


def test_a_detail_response_carries_an_etag_that_changes_with_the_resource(api_as, ar_clerk, own_customer):
    client = api_as(ar_clerk)
    before = client.get(_url(own_customer))["ETag"]
    assert client.get(_url(own_customer))["ETag"] == before

    services.update_customer(actor=ar_clerk, customer=own_customer, display_name="Renamed")

    assert client.get(_url(own_customer))["ETag"] != before


def test_a_stale_if_match_is_refused_with_412_and_changes_nothing(api_as, ar_clerk, own_customer):
    client = api_as(ar_clerk)
    read = client.get(_url(own_customer))["ETag"]
    services.update_customer(actor=ar_clerk, customer=own_customer, payment_terms_days=60)

    response = client.patch(_url(own_customer), {"display_name": "Lost update"}, format="json", HTTP_IF_MATCH=read)

    assert response.status_code == 412
    assert response.json()["type"] == "urn:concord:problem:precondition-failed"
    own_customer.refresh_from_db()
    assert own_customer.display_name == "Northwind Traders"


def test_a_current_if_match_lets_the_write_through_and_answers_the_new_etag(api_as, ar_clerk, own_customer):
    client = api_as(ar_clerk)
    read = client.get(_url(own_customer))["ETag"]

    response = client.patch(_url(own_customer), {"display_name": "Northwind"}, format="json", HTTP_IF_MATCH=read)

    assert response.status_code == 200 and response.json()["display_name"] == "Northwind"
    assert response["ETag"] != read
    assert response["ETag"] == client.get(_url(own_customer))["ETag"]


def test_a_write_without_if_match_goes_through(api_as, ar_clerk, own_customer):
    response = api_as(ar_clerk).patch(_url(own_customer), {"status": "on_hold"}, format="json")

    assert response.status_code == 200


def test_a_put_with_a_stale_if_match_is_refused(api_as, ar_clerk, own_customer):
    contact = ContactFactory(customer=own_customer, name="Ada")
    client = api_as(ar_clerk)
    url = f"/api/v1/contacts/{contact.pk}/"
    read = client.get(url)["ETag"]
    services.update_contact(actor=ar_clerk, contact=contact, phone="+1 555 0100")
    body = {"name": "Ada J", "email": "ada@example.com", "phone": "", "role": "AP", "is_primary": False}

    assert client.put(url, body, format="json", HTTP_IF_MATCH=read).status_code == 412
    assert client.put(url, body, format="json", HTTP_IF_MATCH=client.get(url)["ETag"]).status_code == 200


def test_if_match_star_matches_any_version(api_as, ar_clerk, own_customer):
    response = api_as(ar_clerk).patch(_url(own_customer), {"status": "on_hold"}, format="json", HTTP_IF_MATCH="*")

    assert response.status_code == 200
