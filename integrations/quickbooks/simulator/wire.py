"""JSON, numbers and timestamps the way QBO writes them.

Amounts are `Decimal` from the moment a request body is parsed (`parse_float=Decimal`) to the
moment a response is written: `dumps` writes a Decimal as a plain JSON number with its exact
digits, so no amount ever passes through a binary float.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

CENT = Decimal("0.01")
ZERO = Decimal("0")


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping every non-integer number as a Decimal."""
    return json.loads(text, parse_float=Decimal)


def _number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as a JSON number")
    text = format(value, "f")
    if "." in text:
        # 150.00 -> 150.0 and 140.50 -> 140.5, as QBO prints its amounts.
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    return text


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
        out.append(_number(value))
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


def to_decimal(value: Any) -> Decimal | None:
    """A request amount as Decimal; None for absent/empty. Raises ValueError when not a number.

    python-quickbooks sends Decimals as JSON strings ("150.00") and unset amounts as "", so both
    strings and numbers are accepted.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation as error:
            raise ValueError(f"{value!r} is not a number") from error
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a number")
        return number
    raise ValueError(f"{value!r} is not a number")


def money(value: Decimal) -> Decimal:
    """Round to the cent (half up), as QBO stores line amounts and totals."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def utc_text(moment: datetime) -> str:
    """Internal storage form of an instant: UTC ISO-8601 with microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_utc_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


def local_text(moment: datetime, zone: ZoneInfo, *, milliseconds: bool = False) -> str:
    """`2024-05-01T10:33:39-07:00` (MetaData) or with `.123` milliseconds (the top-level `time`)."""
    return moment.astimezone(zone).isoformat(timespec="milliseconds" if milliseconds else "seconds")


def webhook_text(moment: datetime) -> str:
    """`2024-05-21T14:02:17.000Z`, the UTC form webhook payloads use."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_datetime(text: str, zone: ZoneInfo) -> datetime:
    """A query/CDC timestamp: with an offset, with `Z`, naive (company time) or a bare date."""
    text = text.strip()
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=zone)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def parse_date(text: str) -> date:
    return date.fromisoformat(text)


def days(count: int) -> timedelta:
    return timedelta(days=count)
