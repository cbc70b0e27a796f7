"""Every API error is an RFC 9457 problem document (application/problem+json) with type, title,
status, detail and instance, and field errors under `errors`."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIRequestFactory

from api import problems
from billing import errors as billing_errors
from ledger import errors as ledger_errors

pytestmark = pytest.mark.django_db
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


def _assert_problem(response, status, slug):
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["type"] == f"urn:concord:problem:{slug}"
    assert body["instance"] == response.wsgi_request.get_full_path()
    return body


def test_a_missing_credential_is_a_401_problem_naming_the_scheme(anonymous_api):
    response = anonymous_api.get("/api/v1/customers/")

    _assert_problem(response, 401, "not-authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_customer_out_of_reach_is_a_404_problem(api_as, sales_rep, others_customer):
    _assert_problem(api_as(sales_rep).get(f"/api/v1/customers/{others_customer.pk}/"), 404, "not-found")


def test_a_role_without_the_right_gets_a_403_problem(api_as, sales_rep):
    response = api_as(sales_rep).post("/api/v1/customers/", {"display_name": "X", "currency": "USD"}, format="json")

    _assert_problem(response, 403, "permission-denied")


def test_invalid_fields_are_a_422_problem_with_one_error_per_field(api_as, finance_admin):
    response = api_as(finance_admin).post(
        "/api/v1/customers/", {"currency": "USD", "payment_terms_days": -1}, format="json"
    )

    body = _assert_problem(response, 422, "validation")
    assert {(error["field"], error["pointer"]) for error in body["errors"]} == {
        ("display_name", "/display_name"),
        ("payment_terms_days", "/payment_terms_days"),
    }
    assert all(error["detail"] for error in body["errors"])


def test_a_services_validation_error_is_a_422_problem_with_its_field(api_as, finance_admin):
    response = api_as(finance_admin).post("/api/v1/customers/", {"display_name": "X", "currency": "XXQ"}, format="json")

    body = _assert_problem(response, 422, "validation")
    assert [error["field"] for error in body["errors"]] == ["currency"]


def test_a_body_that_is_not_json_is_a_400_problem(api_as, finance_admin):
    response = api_as(finance_admin).generic("POST", "/api/v1/customers/", "{not json", "application/json")

    _assert_problem(response, 400, "bad-request")


def test_another_media_type_is_a_415_problem(api_as, finance_admin):
    response = api_as(finance_admin).post("/api/v1/customers/", "display_name=X", content_type="text/plain")

    _assert_problem(response, 415, "unsupported-media-type")


def test_a_method_the_resource_has_not_is_a_405_problem(api_as, finance_admin, own_customer):
    _assert_problem(api_as(finance_admin).delete(f"/api/v1/customers/{own_customer.pk}/"), 405, "method-not-allowed")


def test_nested_field_errors_are_flattened_with_their_path():
    errors = problems.field_errors({"lines": [{}, {"unit_price": ["Required."]}], "non_field_errors": ["Bad."]})

    assert errors == [
        {"field": "lines.1.unit_price", "pointer": "/lines/1/unit_price", "detail": "Required.", "code": "invalid"},
        {"field": None, "pointer": "", "detail": "Bad.", "code": "invalid"},
    ]


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (billing_errors.InvalidState("Only a draft can be issued."), 409, "invalid-state"),
        (billing_errors.CurrencyMismatch("EUR payment for a USD invoice."), 422, "currency-mismatch"),
        (billing_errors.NotPermitted("AR only."), 403, None),
        (ledger_errors.PeriodLocked("Locked through 2025-12-31."), 409, "period-locked"),
        (ledger_errors.UnbalancedEntry("Does not balance."), 422, "refused"),
    ],
)
def test_domain_errors_map_to_their_problem(error, status, slug):
    import billing.api  # noqa: F401 - registers billing's errors, as the URL conf does

    request = APIRequestFactory().post("/api/v1/invoices/7/issue/")
    response = problems.exception_handler(error, {"request": request})

    assert response.status_code == status
    assert response.data["detail"] == str(error)
    if slug:
        assert response.data["type"] == f"urn:concord:problem:{slug}"


def test_a_django_validation_error_without_fields_is_a_non_field_error():
    request = APIRequestFactory().post("/api/v1/customers/")
    response = problems.exception_handler(ValidationError("Not now."), {"request": request})

    assert response.status_code == 422
    assert response.data["errors"] == [{"field": None, "pointer": "", "detail": "Not now.", "code": "invalid"}]
