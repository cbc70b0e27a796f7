"""Xero's error answers (contract §2.3 and §10).

- 400 `ApiException` bodies (`ErrorNumber`, `Type`, `Message`, `Elements[]`), the shape of the
  spec's `Error` schema; `ValidationException` (10) carries the offending records.
- 401/403/429 in the problem-details style Xero's gateway uses (`Title`, `Status`, `Detail`, …).
- 404 as the plain-text page Xero answers for an unknown record or route.
"""

from __future__ import annotations

import uuid
from typing import Any

VALIDATION = (10, "ValidationException", "A validation exception occurred")
POST_DATA_INVALID = (14, "PostDataInvalidException", "Invalid Json data")
QUERY_PARSE = (16, "QueryParseException", "The query could not be parsed")
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"


class XeroError(Exception):
    """An error answered with an `ApiException` body (HTTP 400 unless said otherwise)."""

    def __init__(
        self,
        kind: tuple[int, str, str],
        message: str | None = None,
        *,
        elements: list[dict[str, Any]] | None = None,
        status: int = 400,
    ) -> None:
        number, error_type, default_message = kind
        super().__init__(message or default_message)
        self.number = number
        self.error_type = error_type
        self.message = message or default_message
        self.elements = elements
        self.status = status

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ErrorNumber": self.number, "Type": self.error_type, "Message": self.message}
        if self.elements is not None:
            body["Elements"] = self.elements
        return body


class Invalid(ValueError):
    """One record failed validation; the messages go into its `ValidationErrors`."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class NotFound(LookupError):
    """Xero's 404: an unknown record id or route."""


def validation_exception(elements: list[dict[str, Any]]) -> XeroError:
    return XeroError(VALIDATION, elements=elements)


def post_data_invalid(detail: str) -> XeroError:
    return XeroError(POST_DATA_INVALID, detail)


def query_parse(detail: str) -> XeroError:
    return XeroError(QUERY_PARSE, detail)


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """The problem-details body of Xero's 401/403/429 answers."""
    return {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }


def server_error_body(status: int) -> dict[str, Any]:
    return {
        "ErrorNumber": status,
        "Type": "UnknownErrorException" if status == 500 else "ServiceUnavailableException",
        "Message": f"The simulator injected an HTTP {status}",
    }
