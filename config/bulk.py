"""Bulk writes of audited rows: many rows of one model, and a history row for each, in one
statement per table, for the batch services (billing's invoice and payment batches, the ledger's
`post_entries`).

On PostgreSQL the rows travel as one JSON array of arrays, unpacked by `jsonb_array_elements`
and cast column by column to the column's type. Django's `bulk_create` and simple-history's
`bulk_history_create` give the same rows, but in a batch of 500 invoices they spent more time
building a model instance per history row and preparing every value field by field (and psycopg
quoting the arrays of Django's UNNEST insert in Python) than PostgreSQL spent writing. The JSON
text is exact: a Decimal goes as its digits, dates and times in ISO 8601, and each column is
cast to its type without its length or scale, so that the insert itself checks lengths and
rounds numerics as it does any insert. Anything else (SQLite, a model with a field type this
module does not list) goes through simple-history's own bulk functions, which write the same.

The history rows are the ones simple-history writes: the tracked fields, `history_date`,
`history_user` (the row's `_history_user` if set, otherwise the actor), no change reason, and
`history_type` "+" for a row created and "~" for a row changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache

from django.db import connection
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, get_history_manager_for_model

# Field types whose value goes to PostgreSQL as its JSON text unchanged (strings, numbers,
# booleans, null) or as `_json_value` writes it (Decimal, date, datetime).
PLAIN_FIELD_TYPES = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "BigIntegerField",
        "BooleanField",
        "CharField",
        "DateField",
        "DateTimeField",
        "DecimalField",
        "ForeignKey",
        "IntegerField",
        "OneToOneField",
        "PositiveBigIntegerField",
        "PositiveIntegerField",
        "PositiveSmallIntegerField",
        "SmallIntegerField",
        "TextField",
    }
)
HISTORY_COLUMNS = ("history_date", "history_user", "history_change_reason", "history_type")


def insert(model, rows: Sequence, *, actor) -> list:
    """Insert `rows` (unsaved instances of `model`) in order, and a "+" history row for each by
    `actor`; returns `rows`, saved, with their primary keys."""
    rows = list(rows)
    if not rows:
        return rows
    if not _fast(model):
        return bulk_create_with_history(rows, model, default_user=actor)
    fields = [field for field in model._meta.concrete_fields if not (field.primary_key and _pk_unset(rows, field))]
    stamped = [field for field in fields if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)]
    for row in rows:
        row._prepare_related_fields_for_save(operation_name="bulk_create")
        for field in stamped:
            field.pre_save(row, add=True)  # sets created_at and the like, as bulk_create does
    pk = model._meta.pk
    ids = _insert_json(
        model._meta.db_table,
        [(field.column, _cast(field)) for field in fields],
        [[getattr(row, field.attname) for field in fields] for row in rows],
        returning=pk.column,
    )
    for row, pk_value in zip(rows, ids, strict=True):
        setattr(row, pk.attname, pk_value)
        row._state.adding = False
        row._state.db = connection.alias
    record(model, rows, actor=actor, history_type="+")
    return rows


def record(model, states: Iterable, *, actor, history_type: str = "~") -> None:
    """Write one history row per instance in `states`, as each stands, by `actor`: "~" for a row
    changed (the caller has written the change), "+" for one created."""
    states = list(states)
    if not states:
        return
    manager = get_history_manager_for_model(model)
    if not _fast(model):
        manager.bulk_history_create(states, update=history_type == "~", default_user=actor, default_change_reason=None)
        return
    tracked = manager.model.tracked_fields
    now = timezone.now()
    values = []
    for state in states:
        user = getattr(state, "_history_user", actor)
        values.append(
            [getattr(state, field.attname) for field in tracked]
            + [now, user.pk if user is not None else None, None, history_type]
        )
    history = manager.model._meta
    columns = [
        (column.column, _cast(column))
        for column in [history.get_field(field.name) for field in tracked]
        + [history.get_field(name) for name in HISTORY_COLUMNS]
    ]
    _insert_json(history.db_table, columns, values)


def update(model, rows: Sequence, fields: Sequence[str]) -> None:
    """Write `fields` of `rows` (saved instances of `model`) as they are now, in one statement;
    no history (the caller records it with `record`)."""
    rows = list(rows)
    if not rows:
        return
    if not _fast(model):
        model.objects.bulk_update(rows, fields)
        return
    targets = [model._meta.get_field(name) for name in fields]
    pk = model._meta.pk
    quote = connection.ops.quote_name
    assignments = ", ".join(
        f"{quote(field.column)} = {_element(index + 1, field)}" for index, field in enumerate(targets)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            # Only the model's quoted table and column names and their types are put into the text.
            f"UPDATE {quote(model._meta.db_table)} AS t SET {assignments} "  # noqa: S608
            f"FROM jsonb_array_elements(%s::jsonb) AS v(r) WHERE t.{quote(pk.column)} = {_element(0, pk)}",
            [_json([[row.pk, *(getattr(row, field.attname) for field in targets)] for row in rows])],
        )


def _insert_json(table: str, columns: list[tuple[str, str]], values: list[list], *, returning: str | None = None):
    quote = connection.ops.quote_name
    names = ", ".join(quote(column) for column, _ in columns)
    selected = ", ".join(f"(v.r->>{index})::{cast}" for index, (_, cast) in enumerate(columns))
    sql = (
        # Only the model's quoted table and column names and their types are put into the text.
        f"INSERT INTO {quote(table)} ({names}) SELECT {selected} "  # noqa: S608
        # In the order given, so that the keys the identity column hands out follow it.
        "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS v(r, n) ORDER BY v.n"
    )
    with connection.cursor() as cursor:
        if returning is None:
            cursor.execute(sql, [_json(values)])
            return None
        cursor.execute(f"{sql} RETURNING {quote(returning)}", [_json(values)])
        return [row[0] for row in cursor.fetchall()]


def _element(index: int, field) -> str:
    return f"(v.r->>{index})::{_cast(field)}"


@cache
def _cast(field) -> str:
    """The column's type without its length, precision or scale (`varchar(30)` → `varchar`): a
    cast to `varchar(30)` would cut a longer text short, where the insert refuses it."""
    return field.db_type(connection).split("(")[0]


def _pk_unset(rows: Sequence, pk) -> bool:
    unset = [getattr(row, pk.attname) is None for row in rows]
    if any(unset) and not all(unset):
        raise ValueError("Either every row or none of them has its primary key set.")
    return unset[0]


@cache
def _fast_model(model) -> bool:
    fields = list(model._meta.concrete_fields)
    history = get_history_manager_for_model(model).model
    fields += history._meta.concrete_fields
    return all(field.get_internal_type() in PLAIN_FIELD_TYPES and not field.has_db_default() for field in fields)


def _fast(model) -> bool:
    return connection.vendor == "postgresql" and _fast_model(model)


def _json(values: list) -> str:
    return json.dumps(values, default=_json_value, separators=(",", ":"))


def _json_value(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a value config.bulk writes")
