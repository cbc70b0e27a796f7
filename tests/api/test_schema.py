"""The OpenAPI schema (/api/schema/) and Swagger UI (/api/docs/, served offline)."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

pytestmark = pytest.mark.django_db
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema(api_as, sales_rep):
    response = api_as(sales_rep).get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def _operations(schema):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", method, item[method]


def test_the_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_every_operation_has_a_summary_examples_and_its_problem_responses(schema):
    wrong = []
    for name, _method, operation in _operations(schema):
        if not operation.get("summary"):
            wrong.append(f"{name}: no summary")
        bodies = [
            *operation.get("requestBody", {}).get("content", {}).values(),
            *(
                content
                for code, response in operation["responses"].items()
                if code.startswith("2")
                for content in response.get("content", {}).values()
            ),
        ]
        if bodies and not any(body.get("examples") or body.get("example") for body in bodies):
            wrong.append(f"{name}: no example")
        for code in ("401", "429"):
            problem = operation["responses"].get(code, {}).get("content", {}).get("application/problem+json")
            if not problem or problem["schema"] != {"$ref": "#/components/schemas/Problem"}:
                wrong.append(f"{name}: no {code} problem response")
    assert not wrong, "\n".join(wrong)


def test_writes_document_idempotency_keys_and_preconditions(schema):
    for name, method, operation in _operations(schema):
        headers = {parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "header"}
        if method == "post" and name != "POST /api/v1/auth/token/":
            assert "Idempotency-Key" in headers, name
        if method in ("put", "patch"):
            assert "If-Match" in headers and "412" in operation["responses"], name


def test_the_token_endpoint_needs_no_credentials_and_stores_no_response(schema):
    operation = schema["paths"]["/api/v1/auth/token/"]["post"]

    assert operation.get("security", []) in ([], [{}]) and "security" not in schema
    assert "Idempotency-Key" not in {parameter["name"] for parameter in operation.get("parameters", [])}


def test_the_problem_component_describes_rfc_9457_documents(schema):
    problem = schema["components"]["schemas"]["Problem"]

    assert set(problem["required"]) == {"type", "title", "status", "detail", "instance"}
    assert "errors" in problem["properties"]


def test_the_schema_needs_a_signed_in_caller(anonymous_api):
    response = anonymous_api.get("/api/schema/")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_swagger_ui_is_served_from_our_own_static_files(client, sales_rep):
    client.force_login(sales_rep)

    page = client.get("/api/docs/").content.decode()

    assert not re.search(r"""(src|href)=["']https?://""", page), "the docs page must load nothing from the network"
    assets = re.findall(r"""(?:src|href)=["']/static/([^"']+)["']""", page)
    assert any("swagger-ui-bundle.js" in asset for asset in assets)
    for asset in assets:
        assert finders.find(asset), f"{asset} is not among the static files"
    assert "/api/schema/" in page


def test_the_docs_send_an_anonymous_visitor_to_log_in(client):
    response = client.get("/api/docs/")

    assert response.status_code == 302 and "/login/" in response.url
