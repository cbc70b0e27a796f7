"""The `where` and `order` query parameters (contract §8): the subset clients use.

    Type=="ACCREC" AND Status=="AUTHORISED"
    Contact.ContactID==Guid("a3675fc4-f8dd-4f03-ba5b-f1870566bcd7")
    Date>=DateTime(2024,05,01) && (AmountDue>0 || Status!="PAID")
    Name.ToLower().Contains("acme")

Fields are dotted paths into the record as the API presents it; Microsoft dates compare as
instants, GUIDs case-insensitively. `order` is `Field [ASC|DESC]` separated by commas.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from . import wire

Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|>=|<=|&&|\|\||[<>!(),.])
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_METHODS = {"Contains", "StartsWith", "EndsWith", "ToLower", "ToUpper"}


class QueryError(ValueError):
    pass


class _Guid(str):
    """A `Guid("…")` literal: compared without regard to case."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise QueryError(f"unexpected text at position {position}: {text[position : position + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value and token[1].upper() != value):
            raise QueryError(f"expected {value or 'more'} but found {token[1] if token else 'the end'}")
        self.index += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return predicate

    def _is(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and (token[1] in words or token[1].upper() in words)

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self._is("OR", "||"):
            self.index += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda row: any(part(row) for part in parts))

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self._is("AND", "&&"):
            self.index += 1
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda row: all(part(row) for part in parts))

    def negation(self) -> Predicate:
        if self._is("NOT", "!"):
            self.index += 1
            inner = self.negation()
            return lambda row: not inner(row)
        return self.comparison()

    def comparison(self) -> Predicate:
        if self._is("("):
            self.index += 1
            inner = self.disjunction()
            self.take(")")
            return inner
        left = self.operand()
        token = self.peek()
        if token is None or token[1] not in {"==", "!=", ">=", "<=", ">", "<"}:
            return lambda row: bool(left(row))
        operator = self.take()[1]
        right = self.operand()
        return lambda row: _compare(left(row), operator, right(row))

    def operand(self) -> Callable[[dict[str, Any]], Any]:
        kind, value = self.take()
        if kind == "string":
            text = _unquote(value)
            return lambda row: text
        if kind == "number":
            number = Decimal(value)
            return lambda row: number
        if kind != "name":
            raise QueryError(f"unexpected {value!r}")
        upper = value.upper()
        if upper in {"TRUE", "FALSE"}:
            flag = upper == "TRUE"
            return lambda row: flag
        if upper == "NULL":
            return lambda row: None
        if value == "Guid" and self._is("("):
            self.take("(")
            guid = _Guid(_unquote(self.take()[1]))
            self.take(")")
            return lambda row: guid
        if value == "DateTime" and self._is("("):
            return self._datetime()
        return self._path(value)

    def _datetime(self) -> Callable[[dict[str, Any]], Any]:
        self.take("(")
        numbers = [int(self.take()[1])]
        while self._is(","):
            self.index += 1
            numbers.append(int(self.take()[1]))
        self.take(")")
        try:
            moment = datetime(*numbers, tzinfo=UTC)  # type: ignore[misc]
        except (TypeError, ValueError) as error:
            raise QueryError(f"DateTime{tuple(numbers)} is not a date") from error
        return lambda row: moment

    def _path(self, first: str) -> Callable[[dict[str, Any]], Any]:
        steps: list[tuple[str, str | None]] = [("field", first)]
        while self._is("."):
            self.index += 1
            name = self.take()[1]
            if name in _METHODS:
                argument = None
                self.take("(")
                if not self._is(")"):
                    argument = _unquote(self.take()[1])
                self.take(")")
                steps.append((name, argument))
            else:
                steps.append(("field", name))

        def resolve(row: dict[str, Any]) -> Any:
            value: Any = row
            for kind, argument in steps:
                if kind == "field":
                    value = value.get(argument) if isinstance(value, dict) else None
                elif value is None:
                    return None
                elif kind == "ToLower":
                    value = str(value).lower()
                elif kind == "ToUpper":
                    value = str(value).upper()
                elif kind == "Contains":
                    value = str(argument) in str(value)
                elif kind == "StartsWith":
                    value = str(value).startswith(str(argument))
                elif kind == "EndsWith":
                    value = str(value).endswith(str(argument))
            return value

        return resolve


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return token


def _normalise(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, str) and isinstance(right, datetime):
        return wire.parse_ms_date(left), right
    if isinstance(right, _Guid) or isinstance(left, _Guid):
        return (str(left).lower() if left is not None else None), (str(right).lower() if right is not None else None)
    if isinstance(right, Decimal) and not isinstance(left, Decimal) and left is not None:
        try:
            return Decimal(str(left)), right
        except InvalidOperation:
            return left, right
    return left, right


def _compare(left: Any, operator: str, right: Any) -> bool:
    left, right = _normalise(left, right)
    if operator == "==":
        return left == right
    if operator == "!=":
        return left != right
    if left is None or right is None:
        return False
    try:
        if operator == ">":
            return left > right
        if operator == "<":
            return left < right
        if operator == ">=":
            return left >= right
        return left <= right
    except TypeError:
        return False


def parse_where(text: str) -> Predicate:
    if not text.strip():
        return lambda row: True
    return _Parser(text).parse()


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, str):
        moment = wire.parse_ms_date(value)
        if moment is not None:
            return (1, moment.timestamp())
        return (2, value.lower())
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | Decimal):
        return (1, value)
    return (2, str(value))


def parse_order(text: str) -> list[tuple[list[str], bool]]:
    """`UpdatedDateUTC ASC, Name DESC` -> [(["UpdatedDateUTC"], False), (["Name"], True)]."""
    keys = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in {"ASC", "DESC"}):
            raise QueryError(f"cannot order by {part.strip()!r}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", words[0]):
            raise QueryError(f"cannot order by {words[0]!r}")
        keys.append((words[0].split("."), len(words) == 2 and words[1].upper() == "DESC"))
    return keys


def sort_rows(rows: list[dict[str, Any]], keys: list[tuple[list[str], bool]]) -> list[dict[str, Any]]:
    """Stable multi-key sort of presented records (the last key first)."""
    for path, descending in reversed(keys):

        def value(row: dict[str, Any], path: list[str] = path) -> tuple[int, Any]:
            item: Any = row
            for step in path:
                item = item.get(step) if isinstance(item, dict) else None
            return _sort_value(item)

        rows = sorted(rows, key=value, reverse=descending)
    return rows
