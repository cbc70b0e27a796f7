"""The subset of QBO's query language that Concord and common clients send (contract §7).

`SELECT * | COUNT(*) | *, Field | Field, ... FROM Entity [WHERE c [AND c]...]
[ORDERBY|ORDER BY f [ASC|DESC], ...] [STARTPOSITION n] [MAXRESULTS m]`; conditions are
`field op value` (=, <, >, <=, >=, !=), `field IN (...)` and `field LIKE '%x%'`. Keywords are
case-insensitive; string literals use single quotes with `\\'` escapes; only AND, never OR.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from . import faults, wire

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 1000

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:\\.|[^'\\])*')
      | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),*])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    value: Any


@dataclass
class Condition:
    field: str
    op: str
    value: Any


@dataclass
class Query:
    entity: str
    count: bool = False
    fields: list[str] | None = None
    conditions: list[Condition] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS

    def mentions(self, name: str) -> bool:
        return any(condition.field.lower() == name.lower() for condition in self.conditions)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    text = text.strip().rstrip(";")
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise faults.query_error(f"Encountered unexpected text at column {position + 1}: {text[position:][:20]!r}")
        position = match.end()
        kind = match.lastgroup
        raw = match.group(kind)
        if kind == "string":
            value: Any = re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif kind == "number":
            value = Decimal(raw)
        elif kind == "word":
            value = raw.upper()
        else:
            value = raw
        tokens.append(Token(kind, raw, value))
        if text[position:].strip() == "":
            break
    return tokens


class _Parser:
    def __init__(self, text: str, entity_names: dict[str, str]) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.entity_names = entity_names

    def peek(self, offset: int = 0) -> Token | None:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise faults.query_error("Encountered end of statement")
        self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "word" and token.value in words:
            self.index += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            token = self.peek()
            raise faults.query_error(f"Expected {word} but found {token.text if token else 'end of statement'}")

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.text != char:
            raise faults.query_error(f"Expected '{char}' but found {token.text}")

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        count, fields = self.projection()
        self.expect_keyword("FROM")
        entity_token = self.take()
        entity = self.entity_names.get(entity_token.text.lower()) if entity_token.kind == "word" else None
        if entity is None:
            raise faults.query_error(f"Invalid context declaration : {entity_token.text}")
        query = Query(entity=entity, count=count, fields=fields)
        if self.keyword("WHERE"):
            query.conditions.append(self.condition())
            while self.keyword("AND"):
                query.conditions.append(self.condition())
            if self.keyword("OR"):
                raise faults.query_error("OR is not supported; combine conditions with AND")
        while self.peek() is not None:
            if self.keyword("ORDERBY") or (self.keyword("ORDER") and self._expect_by()):
                query.order = self.ordering()
            elif self.keyword("STARTPOSITION"):
                query.start_position = max(1, self.integer())
            elif self.keyword("MAXRESULTS"):
                query.max_results = min(MAX_RESULTS_LIMIT, max(1, self.integer()))
            else:
                raise faults.query_error(f"Encountered unexpected {self.take().text}")
        return query

    def _expect_by(self) -> bool:
        self.expect_keyword("BY")
        return True

    def projection(self) -> tuple[bool, list[str] | None]:
        token = self.peek()
        if token and token.kind == "word" and token.value == "COUNT":
            self.take()
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            return True, None
        names: list[str] = []
        star = False
        while True:
            token = self.take()
            if token.kind == "punct" and token.text == "*":
                star = True
            elif token.kind == "word" and token.value != "FROM":
                names.append(token.text)
            else:
                raise faults.query_error(f"Expected a field name but found {token.text}")
            following = self.peek()
            if following is None or following.kind != "punct" or following.text != ",":
                break
            self.take()
        return False, (None if star else names)

    def ordering(self) -> list[tuple[str, bool]]:
        order = []
        while True:
            token = self.take()
            if token.kind != "word":
                raise faults.query_error(f"Expected a field to order by but found {token.text}")
            descending = False
            if self.keyword("DESC"):
                descending = True
            else:
                self.keyword("ASC")
            order.append((token.text, descending))
            following = self.peek()
            if following is None or following.kind != "punct" or following.text != ",":
                return order
            self.take()

    def integer(self) -> int:
        token = self.take()
        if token.kind != "number" or token.value != token.value.to_integral_value():
            raise faults.query_error(f"Expected a whole number but found {token.text}")
        return int(token.value)

    def literal(self) -> Any:
        token = self.take()
        if token.kind in {"string", "number"}:
            return token.value
        if token.kind == "word" and token.value in {"TRUE", "FALSE"}:
            return token.value == "TRUE"
        raise faults.query_error(f"Expected a value but found {token.text}")

    def condition(self) -> Condition:
        name = self.take()
        if name.kind != "word":
            raise faults.query_error(f"Expected a field name but found {name.text}")
        if self.keyword("IN"):
            self.expect_punct("(")
            values = [self.literal()]
            while True:
                token = self.take()
                if token.kind == "punct" and token.text == ")":
                    break
                if token.kind != "punct" or token.text != ",":
                    raise faults.query_error(f"Expected ',' or ')' but found {token.text}")
                values.append(self.literal())
            return Condition(name.text, "IN", values)
        if self.keyword("LIKE"):
            pattern = self.literal()
            if not isinstance(pattern, str):
                raise faults.query_error("LIKE needs a quoted pattern")
            return Condition(name.text, "LIKE", pattern)
        operator = self.take()
        if operator.kind != "op":
            raise faults.query_error(f"Expected an operator after {name.text} but found {operator.text}")
        return Condition(name.text, "!=" if operator.text == "<>" else operator.text, self.literal())


def parse(text: str, entity_names: dict[str, str]) -> Query:
    """Parse a statement; `entity_names` maps lower-case names to canonical ones."""
    if not text or not text.strip():
        raise faults.query_error("Empty query")
    return _Parser(text, entity_names).parse()


# --- evaluation -------------------------------------------------------------------------------

Resolver = Callable[[dict[str, Any], str], Any]


def _coerce_pair(actual: Any, literal: Any, zone: ZoneInfo) -> tuple[Any, Any] | None:
    if isinstance(actual, datetime):
        try:
            return actual, wire.parse_datetime(str(literal), zone)
        except ValueError as error:
            raise faults.query_error(f"Invalid date/time {literal!r}") from error
    if isinstance(actual, bool):
        if isinstance(literal, str):
            literal = literal.strip().lower() == "true"
        return actual, bool(literal)
    if isinstance(actual, Decimal | int):
        try:
            return Decimal(actual), wire.to_decimal(literal)
        except (ValueError, InvalidOperation):
            return None
    if isinstance(actual, str):
        text = literal if isinstance(literal, str) else wire.dumps(literal)
        if actual.isdigit() and text.isdigit():
            return int(actual), int(text)
        # Names and numbers compare regardless of case, as QBO's query engine does.
        return actual.casefold(), text.casefold()
    return None


def _like(actual: Any, pattern: str) -> bool:
    if not isinstance(actual, str):
        return False
    regex = ".*".join(re.escape(piece) for piece in pattern.split("%"))
    return re.fullmatch(regex, actual, flags=re.IGNORECASE | re.DOTALL) is not None


def matches(condition: Condition, actual: Any, zone: ZoneInfo) -> bool:
    if actual is None:
        return False
    if condition.op == "LIKE":
        return _like(actual, condition.value)
    if condition.op == "IN":
        for literal in condition.value:
            pair = _coerce_pair(actual, literal, zone)
            if pair is not None and pair[0] == pair[1]:
                return True
        return False
    pair = _coerce_pair(actual, condition.value, zone)
    if pair is None:
        return False
    left, right = pair
    if condition.op == "=":
        return left == right
    if condition.op == "!=":
        return left != right
    try:
        if condition.op == "<":
            return left < right
        if condition.op == ">":
            return left > right
        if condition.op == "<=":
            return left <= right
        if condition.op == ">=":
            return left >= right
    except TypeError:
        return False
    raise faults.query_error(f"Unsupported operator {condition.op}")


def sort_key(value: Any) -> tuple[int, Any]:
    """Order mixed values safely: absent first, then numbers, instants, text."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, Decimal | int):
        return (1, Decimal(value))
    if isinstance(value, datetime):
        return (2, value.timestamp())
    if isinstance(value, str) and value.isdigit():
        return (1, Decimal(value))
    return (3, str(value).casefold())
