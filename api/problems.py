"""Every API error as an RFC 9457 problem document (`application/problem+json`).

    {"type": "urn:concord:problem:validation", "title": "The request is not valid.", "status": 422,
     "detail": "…", "instance": "/api/v1/customers/", "errors": [{"field": "currency", …}]}

This is the one place that maps errors to HTTP for the API: DRF's own exceptions, Django's
ValidationError / PermissionDenied / Http404, and the domain errors the services raise. Apps add
their domain errors with `register_domain_error` (billing does in billing/api.py); an
unregistered subclass takes its nearest registered base class's mapping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from api import errors as api_errors
from ledger import errors as ledger_errors

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger(__name__)


def problem_type(slug: str) -> str:
    """A problem type's URI; docs/api.md lists every slug and what to do about it."""
    return f"urn:concord:problem:{slug}"


@dataclass(frozen=True)
class ProblemKind:
    status: int
    slug: str
    title: str


# HTTP-level problems, by DRF exception (and by status for anything else DRF raises).
BY_STATUS = {
    400: ProblemKind(400, "bad-request", "The request could not be read."),
    401: ProblemKind(401, "not-authenticated", "Authentication is needed."),
    403: ProblemKind(403, "permission-denied", "You may not do this."),
    404: ProblemKind(404, "not-found", "Not found."),
    405: ProblemKind(405, "method-not-allowed", "This method is not allowed here."),
    406: ProblemKind(406, "not-acceptable", "No acceptable representation."),
    409: ProblemKind(409, "conflict", "The request conflicts with the current state."),
    412: ProblemKind(412, "precondition-failed", "The resource changed since you read it."),
    415: ProblemKind(415, "unsupported-media-type", "Send the body as application/json."),
    422: ProblemKind(422, "validation", "The request is not valid."),
    428: ProblemKind(428, "precondition-required", "Send If-Match with the ETag you read."),
    429: ProblemKind(429, "throttled", "Too many requests."),
}
AUTHENTICATION_FAILED = ProblemKind(401, "authentication-failed", "The credentials were not accepted.")

_domain_errors: dict[type[Exception], ProblemKind] = {}


def register_domain_error(error: type[Exception], *, status: int, slug: str, title: str) -> None:
    """Answer `error` (and its subclasses that have no mapping of their own) with this problem."""
    _domain_errors[error] = ProblemKind(status, slug, title)


def _domain_kind(exc: Exception) -> ProblemKind | None:
    for cls in type(exc).__mro__:
        if cls in _domain_errors:
            return _domain_errors[cls]
    return None


# The ledger's refusals (billing's derive from them; billing/api.py refines them).
register_domain_error(ledger_errors.LedgerError, status=422, slug="refused", title="The change was refused.")
register_domain_error(
    ledger_errors.PeriodLocked, status=409, slug="period-locked", title="The accounting period is locked."
)
register_domain_error(
    ledger_errors.MissingExchangeRate, status=422, slug="missing-exchange-rate", title="No exchange rate."
)
register_domain_error(
    api_errors.InvalidCredentials, status=401, slug="invalid-credentials", title="Wrong username or password."
)
register_domain_error(api_errors.AccountLockedOut, status=429, slug="locked-out", title="Too many failed log-ins.")
register_domain_error(
    api_errors.IdempotencyKeyReused,
    status=422,
    slug="idempotency-key-reused",
    title="This Idempotency-Key was used for a different request.",
)


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource changed since you read it: read it again and send its new ETag in If-Match."
    default_code = "precondition_failed"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


def field_errors(detail, path: tuple = ()) -> list[dict]:
    """DRF's nested error structure as a flat list: one entry per message, naming its field as a
    dotted path (`lines.0.unit_price`) and as a JSON pointer (`/lines/0/unit_price`)."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            inner = path if key in ("non_field_errors", "__all__") else (*path, str(key))
            found.extend(field_errors(value, inner))
        return found
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [_field_error(item, path) for item in detail]
        found = []
        for index, item in enumerate(detail):
            found.extend(field_errors(item, (*path, str(index))) if isinstance(item, dict | list) else [])
        return found
    return [_field_error(detail, path)]


def _field_error(message, path: tuple) -> dict:
    return {
        "field": ".".join(path) or None,
        "pointer": "/" + "/".join(path) if path else "",
        "detail": str(message),
        "code": getattr(message, "code", None) or "invalid",
    }


def problem(kind: ProblemKind, *, detail: str, instance: str, errors: list | None = None, headers=None) -> Response:
    body = {
        "type": problem_type(kind.slug),
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(body, status=kind.status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def _validation_message(errors: list[dict]) -> str:
    if len(errors) == 1:
        error = errors[0]
        return f"{error['field']}: {error['detail']}" if error["field"] else error["detail"]
    return f"{len(errors)} fields are not valid; see errors."


def _django_validation_detail(exc: DjangoValidationError):
    if hasattr(exc, "error_dict"):
        return {
            field: [message for error in errs for message in error.messages] for field, errs in exc.error_dict.items()
        }
    return {"non_field_errors": exc.messages}


def exception_handler(exc, context):
    request = context.get("request")
    instance = request.get_full_path() if request is not None else ""
    headers = {}

    if isinstance(exc, exceptions.ValidationError | DjangoValidationError):
        detail = exc.detail if isinstance(exc, exceptions.ValidationError) else _django_validation_detail(exc)
        errors = field_errors(detail)
        return problem(BY_STATUS[422], detail=_validation_message(errors), instance=instance, errors=errors)

    kind = _domain_kind(exc)
    if kind is not None:
        return problem(kind, detail=str(exc) or kind.title, instance=instance)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, IntegrityError):
        # A uniqueness or check the database enforced that validation did not catch (e.g. a
        # concurrent request took the same account number): the caller may correct and retry.
        logger.warning("API request refused by a database constraint: %s", exc)
        exc = Conflict("The request conflicts with data already stored (a duplicate or a broken constraint).")

    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django logs it and answers 500

    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, exceptions.AuthenticationFailed) and exc.status_code == 401:
        kind = AUTHENTICATION_FAILED
    else:
        kind = BY_STATUS.get(exc.status_code) or ProblemKind(exc.status_code, "error", "The request failed.")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return problem(kind, detail=str(detail), instance=instance, headers=headers)


def not_found_response(request, exception=None):
    """Django's answer to a URL no pattern matches (config/urls.py's handler404): under /api/ a
    problem document like every other API error, elsewhere the site's own page."""
    if not request.path.startswith("/api/"):
        from django.views.defaults import page_not_found

        return page_not_found(request, exception)
    kind = BY_STATUS[404]
    body = {
        "type": problem_type(kind.slug),
        "title": kind.title,
        "status": kind.status,
        "detail": "No such resource: see the schema at /api/schema/ for the API's URLs.",
        "instance": request.get_full_path(),
    }
    return JsonResponse(body, status=kind.status, content_type=PROBLEM_CONTENT_TYPE)


def axes_lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out log-in: a problem document on the API's token endpoint,
    the usual page everywhere else."""
    from axes.helpers import get_cool_off, get_cool_off_iso8601
    from django.conf import settings
    from django.shortcuts import render

    cool_off = get_cool_off(request)
    if request.path.startswith("/api/"):
        kind = _domain_errors[api_errors.AccountLockedOut]
        body = {
            "type": problem_type(kind.slug),
            "title": kind.title,
            "status": kind.status,
            "detail": "This account is locked from your address after repeated wrong passwords. Try again later.",
            "instance": request.get_full_path(),
        }
        response = JsonResponse(body, status=kind.status, content_type=PROBLEM_CONTENT_TYPE)
        if cool_off:
            response["Retry-After"] = str(int(cool_off.total_seconds()))
        return response
    context = {"cooloff_time": get_cool_off_iso8601(cool_off)} if cool_off else {}
    return render(request, settings.AXES_LOCKOUT_TEMPLATE, context, status=settings.AXES_HTTP_RESPONSE_CODE)
