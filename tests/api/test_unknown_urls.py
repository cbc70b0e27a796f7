"""A URL no pattern matches: under /api/ a problem document like every API error, elsewhere the
site's own page (config/urls.py's handler404)."""

import pytest

pytestmark = pytest.mark.django_db


def test_an_unknown_api_url_answers_a_problem_document(api_as, sales_rep):
    response = api_as(sales_rep).get("/api/v1/invoices/not-a-number/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:concord:problem:not-found"
    assert response.json()["instance"] == "/api/v1/invoices/not-a-number/"


def test_an_unknown_page_keeps_the_sites_not_found_page(client, sales_rep):
    client.force_login(sales_rep)

    response = client.get("/customers/not-a-number/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_list_documents_its_cursor_and_filter_refusals(api_as, sales_rep):
    schema = api_as(sales_rep).get("/api/schema/?format=json").json()

    responses = schema["paths"]["/api/v1/customers/"]["get"]["responses"]
    assert {"404", "422"} <= set(responses)
    assert api_as(sales_rep).get("/api/v1/customers/?cursor=bogus").status_code == 404
