"""JSON, amounts and dates the way Xero writes and reads them (contract §3).

Amounts are `Decimal` from the moment a request body is parsed to the moment a response is
written, and are written with their exact digits (`150.00` stays `150.00`). Timestamps go out as
Microsoft JSON dates (`/Date(1573755038314+0000)/`); request dates are accepted as `YYYY-MM-DD`,
`YYYY-MM-DDT00:00:00` or `/Date(ms)/` (what xero-python sends).
"""

from __future__ import annotations

import email.utils
import json
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

CENT = Decimal("0.01")
UNIT_4DP = Decimal("0.0001")
ZERO = Decimal("0.00")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NIL_GUID = "00000000-0000-0000-0000-000000000000"
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping every non-integer number as a Decimal."""
    return json.loads(text, parse_float=Decimal)


def dumps(value: Any) -> str:
    """Serialise to compact JSON; Decimals become exact JSON numbers."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as a JSON number")
        out.append(format(value, "f"))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(json.dumps(value))
    elif isinstance(value, dict):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if index:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot serialise {type(value).__name__}")


# --- amounts ----------------------------------------------------------------------------------


def to_decimal(value: Any) -> Decimal | None:
    """A request amount as Decimal; None when absent. Raises ValueError when not a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation as error:
            raise ValueError(f"{value!r} is not a number") from error
    else:
        raise ValueError(f"{value!r} is not a number")
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a number")
    return number


def money(value: Decimal) -> Decimal:
    """Round to the cent, half up, as Xero stores line amounts and totals."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def unit(value: Decimal, unitdp: int) -> Decimal:
    """Unit amounts and quantities: 4 decimals when the client passed `unitdp=4`, else 2."""
    return value.quantize(UNIT_4DP if unitdp == 4 else CENT, rounding=ROUND_HALF_UP)


# --- identifiers ------------------------------------------------------------------------------


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and bool(_GUID.match(value))


# --- dates and times --------------------------------------------------------------------------


def utc_text(moment: datetime) -> str:
    """Internal storage form of an instant: UTC ISO-8601 with microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_utc_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


def epoch_ms(moment: datetime) -> int:
    return (moment.astimezone(UTC) - EPOCH) // timedelta(milliseconds=1)


def ms_datetime(moment: datetime, *, offset: bool = True) -> str:
    """`/Date(1573755038314+0000)/` (record timestamps) or without the offset (`DateTimeUTC`)."""
    return f"/Date({epoch_ms(moment)}{'+0000' if offset else ''})/"


def ms_date(day: date) -> str:
    """A date-only field: midnight UTC of that day, with the offset (contract §3)."""
    return ms_datetime(datetime.combine(day, time(), tzinfo=UTC))


def date_string(day: date) -> str:
    """The companion `DateString` / `DueDateString`: `2018-10-20T00:00:00`."""
    return f"{day.isoformat()}T00:00:00"


def parse_ms_date(text: str) -> datetime | None:
    """The instant of a Microsoft JSON date; the milliseconds are UTC whatever the offset says."""
    match = _MS_DATE.match(text.strip())
    if match is None:
        return None
    return EPOCH + timedelta(milliseconds=int(match.group(1)))


def parse_request_date(value: Any) -> date:
    """A date in a request body: `YYYY-MM-DD`, `YYYY-MM-DDThh:mm:ss` or `/Date(ms[+hhmm])/`."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a date")
    text = value.strip()
    moment = parse_ms_date(text)
    if moment is not None:
        return moment.astimezone(UTC).date()
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date()


def parse_header_datetime(text: str) -> datetime:
    """`If-Modified-Since`: an ISO date-time (naive = UTC) or an RFC 1123 HTTP date."""
    text = text.strip()
    if not text:
        raise ValueError("empty date-time")
    if text[0].isalpha():
        moment = email.utils.parsedate_to_datetime(text)
    else:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def webhook_text(moment: datetime) -> str:
    """`2024-05-21T06:10:02.713`, the `eventDateUtc` form of webhook payloads (UTC, no offset)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")


def connection_text(moment: datetime) -> str:
    """`2019-12-07T18:46:19.5165400`, how `/connections` writes its UTC dates (7 decimals)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "0"


# --- XML (what Xero answers when the client does not ask for JSON) ----------------------------

# Plural collection element -> element name of one member.
_SINGULAR = {
    "Addresses": "Address",
    "Phones": "Phone",
    "ContactGroups": "ContactGroup",
    "ContactPersons": "ContactPerson",
    "LineItems": "LineItem",
    "Tracking": "TrackingCategory",
    "Payments": "Payment",
    "CreditNotes": "CreditNote",
    "Prepayments": "Prepayment",
    "Overpayments": "Overpayment",
    "Allocations": "Allocation",
    "ValidationErrors": "ValidationError",
    "Warnings": "Warning",
    "Elements": "DataContractBase",
    "Contacts": "Contact",
    "Invoices": "Invoice",
    "Items": "Item",
    "Accounts": "Account",
    "TaxRates": "TaxRate",
    "TaxComponents": "TaxComponent",
    "Organisations": "Organisation",
}


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, str):
        moment = parse_ms_date(value)
        if moment is not None:
            # XML carries plain ISO date-times where JSON has Microsoft dates.
            return escape(moment.replace(tzinfo=None).isoformat(timespec="milliseconds"))
        return escape(value)
    return escape(str(value))


def _xml(name: str, value: Any, out: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        out.append(f"<{name}>")
        for key, item in value.items():
            _xml(key, item, out)
        out.append(f"</{name}>")
    elif isinstance(value, list):
        out.append(f"<{name}>")
        member = _SINGULAR.get(name, name[:-1] if name.endswith("s") else name)
        for item in value:
            _xml(member, item, out)
        out.append(f"</{name}>")
    else:
        out.append(f"<{name}>{_xml_value(value)}</{name}>")


def to_xml(root: str, body: dict[str, Any]) -> str:
    """`<Response>` (or `<ApiException>`) with the JSON body's members as elements."""
    out = ['<?xml version="1.0" encoding="utf-8"?>', f'<{root} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">']
    for key, item in body.items():
        _xml(key, item, out)
    out.append(f"</{root}>")
    return "".join(out)
