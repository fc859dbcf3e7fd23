"""What every repository does the same way: records to rows and back, UTC-aware times,
and insert-or-skip.

A record's field is stored in the column of its name, or as canonical JSON in
``<name>_json``; ``values`` and ``record`` map them by name, so no repository copies a
record column by column. SQLite hands back naive datetimes; every record leaves the
store UTC-aware. An insert that skips a row whose key is already stored is spelled
per dialect, once, here, and so is the raw DB-API path (``driver``, ``fetch``) that the
runs and rollouts repositories read a million rows through.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Table

from releasegate.domain.identity import canonical_json

R = TypeVar("R")


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def insert_new(conn: Connection, table: Table) -> Any:
    """INSERT that skips a row whose key is already stored, on the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()


Plan = tuple[tuple[str, str, bool], ...]
_PLANS: dict[tuple[type[Any], tuple[str, ...]], Plan] = {}


def _plan(cls: type[Any], columns: tuple[str, ...]) -> Plan:
    """(field, column, is JSON) of each of ``cls``'s fields that ``columns`` hold."""
    plan = _PLANS.get((cls, columns))
    if plan is None:
        found = []
        for f in dataclasses.fields(cls):
            if f.name in columns:
                found.append((f.name, f.name, False))
            elif f"{f.name}_json" in columns:
                found.append((f.name, f"{f.name}_json", True))
        plan = _PLANS[(cls, columns)] = tuple(found)
    return plan


def values(item: Any, table: Table) -> dict[str, Any]:
    """The column values of a record (a dataclass) for ``table``: each field in the column
    of its name, or as canonical JSON in ``<name>_json`` (None stays NULL; a domain type
    with a published shape, such as a gate report, as its ``to_json()``)."""
    out: dict[str, Any] = {}
    for name, column, is_json in _plan(type(item), tuple(table.c.keys())):
        value = getattr(item, name)
        if is_json and value is not None:
            value = canonical_json(value.to_json() if hasattr(value, "to_json") else value)
        out[column] = value
    return out


def record(cls: type[R], row: Row[Any], **convert: Callable[[Any], Any]) -> R:
    """``cls`` (a dataclass) from a row: each field from the column of its name or from
    ``<name>_json`` (empty: None); times UTC-aware; ``convert`` then adjusts a field."""
    mapping = row._mapping
    got: dict[str, Any] = {}
    for name, column, is_json in _plan(cls, tuple(mapping.keys())):
        value = mapping[column]
        if is_json:
            value = json.loads(value) if value else None
        elif isinstance(value, datetime):
            value = as_utc(value)
        got[name] = convert[name](value) if name in convert else value
    return cls(**got)


def driver(conn: Connection) -> tuple[Any, str]:
    """The DB-API connection under ``conn`` (same transaction) and its placeholder."""
    raw = conn.connection.driver_connection
    return raw, "?" if conn.dialect.name == "sqlite" else "%s"


def fetch(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples: a million-row window skips SQLAlchemy's Row objects."""
    raw, mark = driver(conn)
    if mark == "%s" and any(isinstance(p, str) and "\x00" in p for p in params):
        from releasegate.store.faults import nul_error  # the driver's error skips handle_error

        raise nul_error()
    cur = raw.cursor()
    try:
        cur.execute(sql.replace("?", mark), tuple(params))
        return [tuple(r) for r in cur.fetchall()] if mark == "%s" else cur.fetchall()
    finally:
        cur.close()


def marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
