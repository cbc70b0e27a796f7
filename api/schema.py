"""The OpenAPI schema's shared parts: the token security scheme, the problem-details component,
and the errors, headers and parameters every operation has by convention (added by the
`add_problem_component` hook, so a viewset declares only its own summary, bodies and examples)."""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from api.problems import BY_STATUS, problem_type

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class AutoSchema(openapi.AutoSchema):
    pass


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /api/v1/auth/token/ or the profile page: "
            "`Authorization: Bearer <key>` (`Token <key>` is accepted too).",
        }


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem document; `type` names the problem (docs/api.md lists them).",
    "properties": {
        "type": {"type": "string", "format": "uri", "example": problem_type("validation")},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request's path."},
        "errors": {
            "type": "array",
            "description": "Field errors, one per message (validation problems only).",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string", "nullable": True, "description": "Dotted path, e.g. lines.0.amount"},
                    "pointer": {"type": "string", "description": "JSON pointer into the body, e.g. /lines/0/amount"},
                    "detail": {"type": "string"},
                    "code": {"type": "string", "nullable": True},
                },
                "required": ["field", "pointer", "detail"],
            },
        },
    },
    "required": ["type", "title", "status", "detail", "instance"],
}

# Why each error may happen, as the schema states it.
ERROR_DESCRIPTIONS = {
    400: "The body is not valid JSON.",
    401: "No valid credentials: send `Authorization: Bearer <key>`.",
    403: "Your role does not allow this.",
    406: "Ask for application/json (the only representation).",
    404: "No such resource, or it belongs to a customer you may not see (or, on a list, a cursor it did not give).",
    409: "Conflicts with the current state (e.g. a duplicate, a locked period).",
    412: "`If-Match` does not match the resource's current ETag: read it again.",
    415: "The body must be application/json.",
    422: "Not valid: see `errors` for each field or query parameter; or an Idempotency-Key reused with another body.",
    429: "Too many requests: wait `Retry-After` seconds.",
}


def _example(status: int) -> dict:
    kind = BY_STATUS[status]
    example = {
        "type": problem_type(kind.slug),
        "title": kind.title,
        "status": status,
        "detail": ERROR_DESCRIPTIONS[status],
        "instance": "/api/v1/customers/42/",
    }
    if status == 422:
        example["errors"] = [
            {"field": "currency", "pointer": "/currency", "detail": "'XX' is not an ISO 4217 code.", "code": "invalid"}
        ]
    return example


def _error_statuses(path: str, method: str, operation: dict) -> list[int]:
    statuses = [401, 403, 406, 429]
    if "{" in path:
        statuses.append(404)
    query = {parameter["name"] for parameter in operation.get("parameters", []) if parameter.get("in") == "query"}
    if "cursor" in query:
        statuses.append(404)  # a cursor the list did not give (DRF's CursorPagination answers so)
    if query:
        statuses.append(422)  # a filter's value is not valid (django-filter, the aging's query)
    if method in ("post", "put", "patch"):
        statuses += [400, 409, 415, 422]
    if method in ("put", "patch"):
        statuses.append(412)
    if method == "delete":
        statuses.append(409)
    if not operation.get("security", True):  # public operations need no credentials
        statuses = [s for s in statuses if s not in (403,)]
    return sorted(set(statuses))


HEADER_PARAMETERS = {
    "post": {
        "in": "header",
        "name": "Idempotency-Key",
        "required": False,
        "schema": {"type": "string", "maxLength": 255},
        "description": "Any unique string (a UUID). A retry with the same key and body within 24 h gets the "
        "first response again (with `Idempotent-Replayed: true`) and writes nothing; the same key with a "
        "different body is refused with 422.",
    },
    "if-match": {
        "in": "header",
        "name": "If-Match",
        "required": False,
        "schema": {"type": "string"},
        "description": "The ETag you read. When the resource has changed since, the write is refused with 412.",
    },
}
ETAG_HEADER = {"ETag": {"schema": {"type": "string"}, "description": "The resource's version, for If-Match."}}
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "Present when this is the stored response to an earlier request with the same key.",
    }
}


def _is_list(response: dict) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").startswith("#/components/schemas/Paginated") or schema.get("type") == "array"


def add_problem_component(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for status in _error_statuses(path, method, operation):
                if str(status) in responses:
                    continue
                kind = BY_STATUS.get(status)
                responses[str(status)] = {
                    "description": ERROR_DESCRIPTIONS.get(status, kind.title if kind else "Error"),
                    "content": {
                        "application/problem+json": {
                            "schema": PROBLEM_REF,
                            **({"example": _example(status)} if status in ERROR_DESCRIPTIONS else {}),
                        }
                    },
                }
            parameters = operation.setdefault("parameters", [])
            # An operation marked `extensions={"x-idempotent": False}` stores no response (its
            # answer holds a secret).
            if method == "post" and operation.get("x-idempotent", True):
                parameters.append(HEADER_PARAMETERS["post"])
            if method in ("put", "patch"):
                parameters.append(HEADER_PARAMETERS["if-match"])
            for code, response in responses.items():
                if not code.startswith("2"):
                    continue
                headers = response.setdefault("headers", {})
                if method in ("put", "patch") or (method == "get" and "{" in path and not _is_list(response)):
                    headers.update(ETAG_HEADER)
                if method == "post":
                    headers.update(REPLAYED_HEADER)
                    if code == "201":
                        headers.update(ETAG_HEADER)
                if not headers:
                    del response["headers"]
            operation.pop("x-idempotent", None)
    return result
