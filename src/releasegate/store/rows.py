"""What every repository does the same way: UTC-aware times and insert-or-skip.

SQLite hands back naive datetimes; every record leaves the store UTC-aware. An insert
that skips a row whose key is already stored is spelled per dialect, once, here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table


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
