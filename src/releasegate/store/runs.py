"""Production runs: bulk, idempotent inserts and window scans, in raw DB-API for speed.

A run is recorded once (keyed by ``run_id``); a re-sent run must be identical. Imports
reach 100k+ runs/s only without per-row ORM work, so this module talks to the driver
directly, inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from releasegate.domain.runs import KnownNames
from releasegate.store import tables as t

if TYPE_CHECKING:
    import numpy.typing as npt


RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "workflow",
    "version_id",
    "env",
    "started_at",
    "ended_at",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "cost_usd",
    "model",
    "operation",
    "status",
    "failure_reason",
    "retries",
    "escalated",
    "edited",
    "feedback",
    "label",
    "output_chars",
    "input_hash",
    "output_hash",
    "input",
    "output",
    "attributes_json",
    "source",
    "received_at",
    "arm",
)
"""The order of a run row as ``RunRepo.insert_many`` takes it."""


def _driver(conn: Connection) -> tuple[Any, str]:
    """The DB-API connection under ``conn`` (same transaction) and its placeholder."""
    raw = conn.connection.driver_connection
    return raw, "?" if conn.dialect.name == "sqlite" else "%s"


def _fetch(conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples: a million-row window skips SQLAlchemy's Row objects."""
    raw, mark = _driver(conn)
    cur = raw.cursor()
    try:
        cur.execute(sql.replace("?", mark), tuple(params))
        return [tuple(r) for r in cur.fetchall()] if mark == "%s" else cur.fetchall()
    finally:
        cur.close()


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def _comparable(row: Sequence[Any]) -> tuple[Any, ...]:
    """A ``runs`` row, stored or about to be inserted (with its sentinels), as plain
    values to compare: NULL for every sentinel, flags as bools, without the source and
    the time it was received."""
    out: list[Any] = []
    for i in RunRepo._COMPARED:
        value = row[i]
        null = RunRepo._NULLS.get(RUN_COLUMNS[i])
        if null == "flag":
            value = bool(value)
        elif null == "nan":
            value = None if value is None or value != value else float(value)
        elif null == "-1":
            value = None if value is None or value == -1 else value
        elif null == "''":
            value = None if value == "" else value
        out.append(value)
    return tuple(out)


class RunRepo:
    """Production runs: bulk, idempotent inserts and window scans, in raw DB-API for speed.

    Imports reach 100k+ runs/s only without per-row ORM work, so this repository
    talks to the driver directly, inside the caller's transaction.
    """

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # How a missing value may travel in an inserted row, and the SQL that turns it back
    # into NULL. The sqlite3 driver binds str, int and float in ~0.1 µs but None and bool
    # in ~1 µs (both go through its adaptation protocol), a third of a bulk insert.
    _NULLS: dict[str, str] = {
        **dict.fromkeys(
            ("model", "operation", "failure_reason", "label", "input_hash", "output_hash"), "''"
        ),
        "attributes_json": "''",
        "arm": "''",
        "output_chars": "-1",
        "cost_usd": "nan",
        "feedback": "nan",
        "escalated": "flag",
        "edited": "flag",
    }

    @staticmethod
    def _insert_sql(dialect: str) -> str:
        sqlite = dialect == "sqlite"
        mark = "?" if sqlite else "%s"
        values = []
        for column in RUN_COLUMNS:
            null = RunRepo._NULLS.get(column)
            if null is None or (sqlite and null in ("nan", "flag")):  # SQLite binds NaN as NULL
                values.append(mark)
            elif null == "nan":
                values.append(f"NULLIF({mark}, 'NaN'::float8)")
            elif null == "flag":
                values.append(f"CAST(CAST({mark} AS INTEGER) AS BOOLEAN)")
            else:
                values.append(f"NULLIF({mark}, {null})")
        head = f"INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join(values)})"
        if sqlite:
            return f"INSERT OR IGNORE {head}"
        return f"INSERT {head} ON CONFLICT (run_id) DO NOTHING"

    def insert_many(self, rows: Iterable[Sequence[Any]]) -> int:
        """Insert rows in ``RUN_COLUMNS`` order; a ``run_id`` already stored is skipped.

        NULL is None, or, faster, a sentinel no valid run holds: '' for the optional
        names, hashes and ``attributes_json``, NaN for ``cost_usd``/``feedback``, -1 for
        ``output_chars``; the flags may be 0/1. Returns how many landed, so a re-imported
        file reports its duplicates.
        """
        raw, _ = _driver(self.conn)
        sql = RunRepo._insert_sql(self.conn.dialect.name)
        if self.conn.dialect.name == "sqlite":
            before = raw.total_changes
            raw.executemany(sql, rows)
            return int(raw.total_changes - before)
        rows = list(rows)
        if not rows:
            return 0
        cur = raw.cursor()
        try:
            cur.executemany(sql, rows)
            return int(cur.rowcount)
        finally:
            cur.close()

    def unland(self, received_at: float) -> int:
        """Delete the runs one import landed: its ``received_at`` stamp is its own."""
        result = self.conn.execute(t.runs.delete().where(t.runs.c.received_at == received_at))
        return int(result.rowcount or 0)

    BULK_CACHE_KIB = 256 * 1024

    def bulk(self) -> RunRepo.BulkInsert:
        """A large page cache for a bulk insert (SQLite), back to what it was after: the
        ``run_id`` index of a million-run store outgrows the default 2 MB, and then most
        inserts miss the cache and spill dirty pages mid-transaction."""
        return RunRepo.BulkInsert(self.conn)

    class BulkInsert:
        """``RunRepo.bulk``: raises SQLite's page cache for one connection, then restores it."""

        def __init__(self, conn: Connection) -> None:
            self._conn = conn
            self._before: int | None = None

        def __enter__(self) -> None:
            if self._conn.dialect.name == "sqlite":
                raw, _ = _driver(self._conn)
                self._before = int(raw.execute("PRAGMA cache_size").fetchone()[0])
                raw.execute(f"PRAGMA cache_size = -{RunRepo.BULK_CACHE_KIB}")

        def __exit__(self, *exc: object) -> None:
            if self._before is not None:
                raw, _ = _driver(self._conn)
                raw.execute(f"PRAGMA cache_size = {self._before}")

    def window(
        self,
        workflow: str,
        env: str,
        start: float,
        end: float,
        columns: Sequence[str],
        version_id: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """``columns`` of the runs that started in ``[start, end)``, oldest first."""
        for c in columns:
            if c not in RUN_COLUMNS and c != "seq":
                raise ValueError(f"unknown run column {c!r}")
        sql = (
            f"SELECT {', '.join(columns)} FROM runs WHERE workflow = ? AND env = ?"
            " AND started_at >= ? AND started_at < ?"
        )
        params: list[Any] = [workflow, env, start, end]
        if version_id is not None:
            sql += " AND version_id = ?"
            params.append(version_id)
        return _fetch(self.conn, sql + " ORDER BY started_at", params)

    def texts(self, seqs: Sequence[int], column: str = "input") -> dict[int, str]:
        """``{seq: text}`` of the runs ``seqs`` (``input`` or ``output``; runs without one are
        left out): a primary-key lookup, so quoting a few flagged runs reads only those."""
        if column not in ("input", "output"):
            raise ValueError(f"not a text column: {column!r}")
        wanted = sorted({int(x) for x in seqs})
        if not wanted:
            return {}
        sql = f"SELECT seq, {column} FROM runs WHERE seq IN ({_marks(wanted)})"
        return {int(q): t for q, t in _fetch(self.conn, sql, wanted) if t is not None}

    SIGNAL_FLAGS = (1, 2, 4, 8, 16)
    """Bits of ``signal_columns``' ``flags``: error, escalated, edited, negative feedback,
    any feedback."""

    def signal_columns(
        self,
        workflow: str,
        env: str,
        start: float,
        end: float,
        *,
        started: bool = False,
        extra: Sequence[str] = (),
    ) -> npt.NDArray[Any]:
        """What scalar drift reads of the runs that started in ``[start, end)``, oldest
        first, as one numpy record per run: ``flags`` (``SIGNAL_FLAGS``), ``latency_ms``,
        ``cost_usd`` and ``output_chars`` (NaN where NULL), ``label`` (None where NULL),
        ``started_at`` first when asked and the ``extra`` columns last (as read).

        Rows go from the cursor straight into numpy, the four flags folded into one small
        integer (a cached Python object): a million runs cost five objects each, not nine.
        """
        import numpy as np

        for c in extra:
            if c not in RUN_COLUMNS and c != "seq":
                raise ValueError(f"unknown run column {c!r}")
        # NULL numbers come back as +inf (no stored run holds one) and become NaN here
        inf = "9e999" if self.conn.dialect.name == "sqlite" else "'Infinity'::float8"
        # the flags and the output length travel as one integer (chars * 32 + flags): a
        # field fewer to convert per run, a tenth of the fetch
        head: list[tuple[str, str]] = [("started_at", "f8")] if started else []
        tail = [("label", "O"), *((c, "O") for c in extra)]
        read = [*head, ("packed", "i8"), ("latency_ms", "f8"), ("cost_usd", "f8"), *tail]
        sql = (
            f"SELECT {'started_at, ' if started else ''}"
            "CASE WHEN status <> 'ok' THEN 1 ELSE 0 END + CASE WHEN escalated THEN 2 ELSE 0 END"
            " + CASE WHEN edited THEN 4 ELSE 0 END + CASE WHEN feedback < 0 THEN 8 ELSE 0 END"
            " + CASE WHEN feedback IS NULL THEN 0 ELSE 16 END"
            " + 32 * CAST(COALESCE(output_chars, -1) AS BIGINT),"
            f" latency_ms, COALESCE(cost_usd, {inf}), label"
            f"{''.join(', ' + c for c in extra)}"
            " FROM runs WHERE workflow = ? AND env = ? AND started_at >= ? AND started_at < ?"
            " ORDER BY started_at"
        )
        raw, mark = _driver(self.conn)
        cur = raw.cursor()
        try:
            cur.execute(sql.replace("?", mark), (workflow, env, start, end))
            got = np.fromiter(cur, dtype=np.dtype(read))
        finally:
            cur.close()
        fields = [*head, ("flags", "u1"), ("latency_ms", "f8"), ("cost_usd", "f8")]
        runs = np.empty(len(got), dtype=np.dtype([*fields, ("output_chars", "f8"), *tail]))
        for name, _ in [*head, ("latency_ms", ""), ("cost_usd", ""), *tail]:
            runs[name] = got[name]
        packed = got["packed"]
        runs["flags"] = packed & 31
        chars = (packed >> 5).astype(np.float64)  # floor division: NULL's -1 stays -1
        chars[chars < 0] = np.nan
        runs["output_chars"] = chars
        cost = runs["cost_usd"]
        cost[np.isinf(cost)] = np.nan
        return runs

    def known_names(self, version_ids: Iterable[str]) -> KnownNames:
        """Every workflow with its environments, and the workflow of each of ``version_ids``
        that is registered: what ``domain.runs.name_problems`` checks runs against."""
        envs = {
            name: tuple(json.loads(raw))
            for name, raw in _fetch(self.conn, "SELECT name, environments_json FROM workflows", [])
        }
        owners: dict[str, str] = {}
        ids = sorted(set(version_ids))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT version_id, workflow FROM versions WHERE version_id IN ({_marks(part)})"
            owners.update(_fetch(self.conn, sql, part))
        return KnownNames(envs, owners)

    def received_before(self, run_ids: Iterable[str], received_at: float) -> list[str]:
        """Which of ``run_ids`` were stored by an earlier write than the one at ``received_at``."""
        ids = sorted(set(run_ids))
        out: list[str] = []
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT run_id FROM runs WHERE run_id IN ({_marks(part)}) AND received_at < ?"
            out.extend(r[0] for r in _fetch(self.conn, sql, [*part, received_at]))
        return out

    _COMPARED = tuple(i for i, c in enumerate(RUN_COLUMNS) if c not in ("source", "received_at"))

    def changed(self, rows: Sequence[Sequence[Any]]) -> list[str]:
        """The run_ids of ``rows`` (as ``insert_many`` takes them) that are stored with
        other content: a run is recorded once, so a re-send must be identical. Call it
        after ``insert_many`` skipped some rows; the rows it just inserted compare equal."""
        wanted = {row[0]: row for row in rows}
        out: list[str] = []
        ids = sorted(wanted)
        columns = ", ".join(RUN_COLUMNS)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT {columns} FROM runs WHERE run_id IN ({_marks(part)})"
            for stored in _fetch(self.conn, sql, part):
                if _comparable(stored) != _comparable(wanted[stored[0]]):
                    out.append(stored[0])
        return sorted(out)

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = _fetch(
            self.conn, f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id]
        )
        return dict(zip(RUN_COLUMNS, rows[0], strict=True)) if rows else None

    def by_prefix(self, prefix: str, limit: int = 5) -> list[str]:
        column = t.runs.c.run_id
        query = select(column).where(column.startswith(prefix, autoescape=True))
        return list(self.conn.execute(query.order_by(column).limit(limit)).scalars())

    def count(self) -> int:
        return int(_fetch(self.conn, "SELECT count(*) FROM runs", [])[0][0])
