"""QBO's error envelopes: the capitalised `Fault`, the lower-case 401 variant, throttling and XML.

Messages and codes follow shared/contracts/quickbooks.md §3.3, §10 and §11.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

NOT_FOUND_DETAIL = (
    "Object Not Found : Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)
THROTTLE_MESSAGE = "message=ThrottleExceeded; errorCode=003001; statusCode=429"
AUTHENTICATION_MESSAGE = "message=AuthenticationFailed; errorCode=003200; statusCode=401"
AUTHORIZATION_MESSAGE = "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403"
BUSINESS_MESSAGE = "A business validation error has occurred while processing your request"
SYSTEM_MESSAGE = "An application error has occurred while processing your request"
# The other party in the stale-object message: a person editing the company in QBO's own screens.
QBO_USER = "a QuickBooks user"


class QBOFault(Exception):
    """An error QBO reports in a `Fault` envelope (HTTP 400 unless said otherwise)."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str = "",
        *,
        status: int = 400,
        fault_type: str = "ValidationFault",
        element: str = "",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        self.fault_type = fault_type
        self.element = element

    def fault(self) -> dict[str, Any]:
        return {
            "Error": [{"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}],
            "type": self.fault_type,
        }


def not_found(entity: str, object_id: str) -> QBOFault:
    return QBOFault("610", "Object Not Found", f"{NOT_FOUND_DETAIL} ({entity} Id={object_id})")


def stale_object() -> QBOFault:
    return QBOFault(
        "5010",
        "Stale Object Error",
        f"Stale Object Error : You and {QBO_USER} were working on this at the same time. "
        f"{QBO_USER[0].upper()}{QBO_USER[1:]} finished before you did, so your work was not saved.",
    )


def required(field: str) -> QBOFault:
    return QBOFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {field} is missing in the request",
        element=field,
    )


def invalid(field: str, why: str) -> QBOFault:
    return QBOFault(
        "2010", "Request has invalid or unsupported property", f"Property Name:{field} {why}", element=field
    )


def too_long(field: str, limit: int) -> QBOFault:
    return QBOFault(
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. Min:0 Max:{limit} (property {field})",
        element=field,
    )


def duplicate_name(existing_id: str) -> QBOFault:
    return QBOFault("6240", "Duplicate Name Exists Error", f"The name supplied already exists. : Id={existing_id}")


def duplicate_doc_number(doc_number: str, entity: str, existing_id: str) -> QBOFault:
    return QBOFault(
        "6140",
        "Duplicate Document Number Error",
        "Duplicate Document Number Error : You must specify a different number. This number has already been "
        f"used. DocNumber={doc_number} is assigned to TxnType={entity} with TxnId={existing_id}",
    )


def business(detail: str) -> QBOFault:
    return QBOFault("6000", BUSINESS_MESSAGE, f"Business Validation Error: {detail}")


def no_name() -> QBOFault:
    return QBOFault(
        "6080",
        "No Name Provided",
        "Title, GivenName, MiddleName, FamilyName, DisplayName, Suffix - one of these must be non-empty",
    )


def amount_mismatch(supplied: Any) -> QBOFault:
    return QBOFault(
        "6070",
        "Amount calculation incorrect in the request",
        f"Amount is not equal to Qty * UnitPrice. Supplied value:{supplied}",
    )


def discount_incomplete() -> QBOFault:
    return QBOFault("6090", "Discount Line missing required info.", "Discount amount or percent should be provided.")


def cannot_link(detail: str) -> QBOFault:
    return QBOFault("620", "Transaction Id cannot be linked", detail)


def unsupported(detail: str) -> QBOFault:
    return QBOFault("500", "Unsupported Operation", detail)


def query_error(detail: str) -> QBOFault:
    return QBOFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def fault_body(fault: dict[str, Any], time_text: str) -> dict[str, Any]:
    return {"Fault": fault, "time": time_text}


def authentication_body(detail: str, epoch_ms: int) -> dict[str, Any]:
    """The lower-case 401 envelope QBO answers an expired or unknown access token with (§3.3)."""
    return {
        "warnings": None,
        "intuitObject": None,
        "fault": {
            "error": [{"message": AUTHENTICATION_MESSAGE, "detail": detail, "code": "3200", "element": None}],
            "type": "AUTHENTICATION",
        },
        "report": None,
        "queryResponse": None,
        "batchItemResponse": [],
        "attachableResponse": [],
        "syncErrorResponse": None,
        "requestId": None,
        "time": epoch_ms,
        "status": None,
        "cdcresponse": [],
    }


def authorization_fault() -> QBOFault:
    return QBOFault(
        "3100",
        AUTHORIZATION_MESSAGE,
        "The access token does not grant access to this company",
        status=403,
        fault_type="SERVICE",
    )


def throttle_fault() -> QBOFault:
    return QBOFault(
        "3001",
        THROTTLE_MESSAGE,
        "The request limit was reached. Try again later",
        status=429,
        fault_type="SERVICE",
    )


def system_fault(status: int) -> QBOFault:
    return QBOFault(
        "10000",
        SYSTEM_MESSAGE,
        f"System Failure Error: the simulator injected an HTTP {status}",
        status=status,
        fault_type="SystemFault",
    )


def fault_xml(fault: dict[str, Any], time_text: str) -> str:
    """The same Fault in QBO's XML shape, for clients that did not ask for JSON."""
    errors = "".join(
        f"<Error code={quoteattr(str(error['code']))}>"
        f"<Message>{escape(error['Message'])}</Message><Detail>{escape(error['Detail'])}</Detail></Error>"
        for error in fault["Error"]
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3" time={quoteattr(time_text)}>'
        f"<Fault type={quoteattr(fault['type'])}>{errors}</Fault></IntuitResponse>"
    )
