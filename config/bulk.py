"""Bulk writes of audited rows: many rows of one model, and a history row for each, in one
statement per table, for the batch services (billing's invoice and payment batches, the ledger's
`post_entries`).

On PostgreSQL the rows travel as one JSON array of arrays, unpacked by `jsonb_array_elements`
and cast column by column to the column's type, and the history rows are written by the same
statement: a data-modifying WITH writes the rows, and the history table is filled from what it
returns (the row as the database stored it). Django's `bulk_create` and simple-history's
`bulk_history_create` give the same rows, but in a batch of 500 invoices they spent more time
building a model instance per history row and preparing every value field by field (and psycopg
quoting the arrays of Django's UNNEST insert in Python) than PostgreSQL spent writing; sending
each row once, rather than once for the table and once more for its history, halves what is
encoded, sent and parsed. The JSON text is exact: a Decimal goes as its digits, dates and times in
ISO 8601, and each column is cast to its type without its length or scale, so that the insert
itself checks lengths and rounds numerics as it does any insert. Anything else (SQLite, a model
with a field type this module does not list) goes through simple-history's own bulk functions,
which write the same.

The history rows are the ones simple-history writes: the tracked fields, `history_date`,
`history_user` (the row's `_history_user` if set, otherwise the actor), no change reason, and
`history_type` "+" for a row created and "~" for a row changed.

After each write `rows_written` is sent with the model as sender and the primary keys written, as
`post_save` would be for each row saved one by one. `without_cyclic_gc` pauses Python's garbage
collector while a batch service runs (see there why).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache, wraps

from django.db import connection
from django.dispatch import Signal
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

# Sent after rows of `sender` were inserted or updated here: `pks`, the rows' primary keys.
rows_written = Signal()


def without_cyclic_gc(function: Callable) -> Callable:
    """Run `function` (a batch service) with Python's cyclic garbage collector paused. A batch
    holds tens of thousands of short-lived objects (model instances, lists of values) that form
    no reference cycles and are freed by reference counting as it returns; while they are alive,
    their allocation sets off the collector, which then walks every object of the process to
    find nothing to free: 15–35 ms of a batch of 500, on average. A cycle made meanwhile is
    freed by the first collection after."""

    @wraps(function)
    def paused(*args, **kwargs):
        if not gc.isenabled():  # paused already (a batch inside another, or by the caller)
            return function(*args, **kwargs)
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            gc.enable()

    return paused


def insert(model, rows: Sequence, *, actor) -> list:
    """Insert `rows` (unsaved instances of `model`) in order, and a "+" history row for each by
    `actor`; returns `rows`, saved, with their primary keys."""
    rows = list(rows)
    if not rows:
        return rows
    if not _fast(model):
        bulk_create_with_history(rows, model, default_user=actor)
        rows_written.send(sender=model, pks=[row.pk for row in rows])
        return rows
    pk = model._meta.pk
    fields = [field for field in model._meta.concrete_fields if not (field.primary_key and _pk_unset(rows, field))]
    stamped = [field for field in fields if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)]
    for row in rows:
        row._prepare_related_fields_for_save(operation_name="bulk_create")
        for field in stamped:
            field.pre_save(row, add=True)  # sets created_at and the like, as bulk_create does
    values = [[getattr(row, field.attname) for field in fields] for row in rows]
    users = {_user_id(getattr(row, "_history_user", actor)) for row in rows}
    if pk in fields or len(users) > 1:
        # Keys given, or rows by several people: the rows first, then their history as they stand.
        ids = _insert_json(
            model._meta.db_table, [(field.column, _cast(field)) for field in fields], values, returning=pk.column
        )
        if pk in fields:
            ids = [row.pk for row in rows]
        _saved(model, rows, ids)
        record(model, rows, actor=actor, history_type="+")
    else:
        _saved(model, rows, _insert_with_history(model, fields, values, user_id=users.pop()))
    rows_written.send(sender=model, pks=[row.pk for row in rows])
    return rows


def insert_values(model, names: Sequence[str], values: list[list], *, actor) -> list:
    """Insert rows of `model` given as plain values, each a list in the order of `names` (field
    attnames: `entry_id`, not `entry`), and a "+" history row for each by `actor`; returns the new
    primary keys in order. For rows the caller never reads back as instances (a batch's journal
    lines): no model instance is built on PostgreSQL. Every concrete field but an automatic
    primary key must be named, since a Python-side default would not be applied here. Elsewhere
    the rows go through `insert`, and `values` are updated to what it stored."""
    fields = {field.attname: field for field in model._meta.concrete_fields}
    unnamed = {
        name
        for name, field in fields.items()
        if not (field.primary_key and field.get_internal_type().endswith("AutoField"))
    } - set(names)
    if unnamed:
        raise ValueError(f"insert_values needs a value for every field of {model.__name__}: {sorted(unnamed)} missing.")
    if not values:
        return []
    if not _fast(model):
        rows = insert(model, [model(**dict(zip(names, row, strict=True))) for row in values], actor=actor)
        for given, row in zip(values, rows, strict=True):
            given[:] = [getattr(row, name) for name in names]  # as stored: Django stamps created_at and the like
        return [row.pk for row in rows]
    ids = _insert_with_history(model, [fields[name] for name in names], values, user_id=_user_id(actor))
    rows_written.send(sender=model, pks=ids)
    return ids


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
        values.append(
            [getattr(state, field.attname) for field in tracked]
            + [now, _user_id(getattr(state, "_history_user", actor)), None, history_type]
        )
    history = manager.model._meta
    columns = [
        (column.column, _cast(column))
        for column in [history.get_field(field.name) for field in tracked]
        + [history.get_field(name) for name in HISTORY_COLUMNS]
    ]
    _insert_json(history.db_table, columns, values)


def update(model, rows: Sequence, fields: Sequence[str], *, actor=None, states: Sequence | None = None) -> None:
    """Write `fields` of `rows` (saved instances of `model`) as they are now, in one statement.

    With an `actor`, a "~" history row is written for each of `states` (copies of the rows taken
    as they changed, in order; by default the rows themselves), so that a row changed several
    times in a batch has a history row per change, as when it is saved after each. The last state
    of each row is the row as written: its history row is taken from the row as the update left
    it, the earlier ones from the copies. Every row needs a state and every state a row."""
    rows = list(rows)
    if not rows:
        return
    states = rows if states is None else list(states)
    last = {}
    for position, state in enumerate(states):
        last[state.pk] = position
    if actor is not None and set(last) != {row.pk for row in rows}:
        raise ValueError("Every row updated needs a state in its history, and every state a row updated.")
    if not _fast(model):
        model.objects.bulk_update(rows, fields)
        if actor is not None:
            get_history_manager_for_model(model).bulk_history_create(
                states, update=True, default_user=actor, default_change_reason=None
            )
        rows_written.send(sender=model, pks=[row.pk for row in rows])
        return
    targets = [model._meta.get_field(name) for name in fields]
    pk = model._meta.pk
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    assignments = ", ".join(
        f"{quote(field.column)} = {_element(index + 3, field)}" for index, field in enumerate(targets)
    )
    changed = (
        # Only the model's quoted table and column names and their types are put into the text.
        f"UPDATE {table} AS t SET {assignments} "  # noqa: S608
        f"FROM jsonb_array_elements(%s::jsonb) AS v(r) WHERE t.{quote(pk.column)} = {_element(0, pk)}"
    )
    if actor is None:
        with connection.cursor() as cursor:
            cursor.execute(changed, [_json([[row.pk, None, None, *_values(row, targets)] for row in rows])])
        rows_written.send(sender=model, pks=[row.pk for row in rows])
        return
    history, tracked, columns = _history_columns(model)
    user_cast = _cast(history.get_field("history_user"))
    returned = ", ".join(f"t.{quote(field.column)}" for field in tracked)
    from_rows = ", ".join(quote(field.column) for field in tracked)
    earlier = [
        [*_values(state, tracked), position, _user_id(getattr(state, "_history_user", actor))]
        for position, state in enumerate(states)
        if last[state.pk] != position
    ]
    count = len(tracked)
    from_copies = ", ".join(
        [f"(s.r->>{index})::{_cast(history.get_field(field.name))}" for index, field in enumerate(tracked)]
        + [f"(s.r->>{count})::integer", f"(s.r->>{count + 1})::{user_cast}"]
    )
    copies = (
        # Only the history model's column types are put into the text.
        f" UNION ALL SELECT {from_copies} FROM jsonb_array_elements(%s::jsonb) AS s(r)"  # noqa: S608
        if earlier
        else ""
    )
    sql = (
        # Only the models' quoted table and column names and their types are put into the text.
        f"WITH changed AS ({changed} RETURNING {returned}, "  # noqa: S608
        f"(v.r->>1)::integer AS history_position, (v.r->>2)::{user_cast} AS history_user) "
        f"INSERT INTO {quote(history.db_table)} ({columns}) "
        f"SELECT {from_rows}, %s::timestamptz, history_user, NULL, '~' FROM ("
        f"SELECT {from_rows}, history_position, history_user FROM changed{copies}"
        # In the order of `states`, so that each row's history reads in the order of its changes.
        ") AS states ORDER BY history_position"
    )
    written = [
        [row.pk, last[row.pk], _user_id(getattr(states[last[row.pk]], "_history_user", actor)), *_values(row, targets)]
        for row in rows
    ]
    params = [_json(written), timezone.now()]
    if earlier:
        params.append(_json(earlier))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != len(states):
            raise ValueError(f"{len(states) - cursor.rowcount} history rows of {model.__name__} were not written.")
    rows_written.send(sender=model, pks=[row.pk for row in rows])


def _insert_with_history(model, fields: list, values: list[list], *, user_id) -> list:
    """Insert `values` (lists in the order of `fields`) into `model`'s table and their "+" history
    rows by the user `user_id`, in one statement; returns the new primary keys in order."""
    quote = connection.ops.quote_name
    pk = quote(model._meta.pk.column)
    history, tracked, columns = _history_columns(model)
    from_rows = ", ".join(quote(field.column) for field in tracked)
    added = _insert_sql(model._meta.db_table, [(field.column, _cast(field)) for field in fields])
    user_cast = _cast(history.get_field("history_user"))
    sql = (
        # Only the models' quoted table and column names and their types are put into the text.
        f"WITH added AS ({added} RETURNING {from_rows}), "  # noqa: S608
        f"noted AS (INSERT INTO {quote(history.db_table)} ({columns}) "
        f"SELECT {from_rows}, %s::timestamptz, %s::{user_cast}, NULL, '+' "
        # The keys follow the order given (see _insert_sql), and so do the history rows.
        f"FROM added ORDER BY {pk}) "
        f"SELECT {pk} FROM added ORDER BY {pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [_json(values), timezone.now(), user_id])
        return [row[0] for row in cursor.fetchall()]


@cache
def _history_columns(model) -> tuple:
    """The history model's options, the tracked fields, and the quoted columns a history row is
    written to: the tracked fields', then HISTORY_COLUMNS'."""
    history = get_history_manager_for_model(model).model
    tracked = list(history.tracked_fields)
    columns = ", ".join(
        connection.ops.quote_name(history._meta.get_field(name).column)
        for name in [field.name for field in tracked] + list(HISTORY_COLUMNS)
    )
    return history._meta, tracked, columns


def _insert_sql(table: str, columns: list[tuple[str, str]]) -> str:
    quote = connection.ops.quote_name
    names = ", ".join(quote(column) for column, _ in columns)
    selected = ", ".join(f"(v.r->>{index})::{cast}" for index, (_, cast) in enumerate(columns))
    return (
        # Only the model's quoted table and column names and their types are put into the text.
        f"INSERT INTO {quote(table)} ({names}) SELECT {selected} "  # noqa: S608
        # In the order given, so that the keys the identity column hands out follow it.
        "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS v(r, n) ORDER BY v.n"
    )


def _insert_json(table: str, columns: list[tuple[str, str]], values: list[list], *, returning: str | None = None):
    sql = _insert_sql(table, columns)
    with connection.cursor() as cursor:
        if returning is None:
            cursor.execute(sql, [_json(values)])
            return None
        cursor.execute(f"{sql} RETURNING {connection.ops.quote_name(returning)}", [_json(values)])
        return [row[0] for row in cursor.fetchall()]


def _saved(model, rows: list, ids: list) -> None:
    pk = model._meta.pk
    for row, pk_value in zip(rows, ids, strict=True):
        setattr(row, pk.attname, pk_value)
        row._state.adding = False
        row._state.db = connection.alias


def _values(instance, fields) -> list:
    return [getattr(instance, field.attname) for field in fields]


def _user_id(user):
    return user.pk if user is not None else None


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


# By exact type first: a batch sends tens of thousands of Decimals and dates.
JSON_TEXT = {Decimal: str, date: date.isoformat, datetime: datetime.isoformat}


def _json_value(value):
    text = JSON_TEXT.get(type(value))
    if text is not None:
        return text(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a value config.bulk writes")
