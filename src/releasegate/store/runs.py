"""Production runs: bulk, idempotent inserts and window scans, in raw DB-API for speed.

A run is recorded once (keyed by ``run_id``); a re-sent run must be identical. Imports
reach 100k+ runs/s only without per-row ORM work, so this module talks to the driver
directly, inside the caller's transaction. ``RunRecord`` goes in (``encode`` makes the
row, with the sentinels the driver binds fastest) and a ``RunWindow`` comes out, the
facts of ``domain.runs`` read in SQL and unpacked here: no encoding leaves this module.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, func, or_, select

from releasegate.domain.pausing import WindowRates
from releasegate.domain.review_queue import DEFAULT_SEED, sample_draw
from releasegate.domain.runs import (
    HAS_FEEDBACK,
    IS_EDITED,
    IS_ERROR,
    IS_ESCALATED,
    IS_NEGATIVE_FEEDBACK,
    SIGNAL_FACTS,
    KnownNames,
    RunFact,
    RunRecord,
)
from releasegate.store import tables as t
from releasegate.store.rows import driver, fetch, marks

if TYPE_CHECKING:
    import numpy as np
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

EncodedRun = tuple[Any, ...]
"""A run as a ``runs`` row (``RUN_COLUMNS`` order), from ``encode``."""
Pricer = Callable[[str, str | None, int, int], float | None]
"""(model, provider, tokens in, tokens out) -> USD, for a run that reported no cost."""

_FLOAT_COLUMNS = frozenset(
    {"started_at", "ended_at", "latency_ms", "cost_usd", "feedback", "received_at"}
)
_INT_COLUMNS = frozenset(
    {"tokens_in", "tokens_out", "retries", "escalated", "edited", "output_chars"}
)
ROW_KINDS: tuple[str, ...] = tuple(
    "d" if c in _FLOAT_COLUMNS else "q" if c in _INT_COLUMNS else "s" for c in RUN_COLUMNS
)
"""The ``array`` typecode of each column of an encoded row (``s``: a text), for packing
rows by column (the importer's parse workers send them so)."""

_HASHES: dict[str, str] = {}
_HASHES_MAX = 1 << 16


def _hash_of(text: str) -> str:
    """sha256 of a text (the key its embedding is kept under), remembered: outputs (labels,
    canned answers) and prompts repeat, and a dict lookup costs a tenth of the hash.
    Bounded; cleared when full."""
    digest = _HASHES.get(text)
    if digest is None:
        if len(_HASHES) >= _HASHES_MAX:
            _HASHES.clear()
        digest = _HASHES[text] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return digest


_NAN = math.nan

SERVED_SQL = "(arm IS NULL OR arm <> 'shadow')"
"""Runs that served a request: a shadow run (the candidate of a shadow rollout, run beside
the stable on the same input) served nobody, so monitoring never counts it."""


def encode(r: RunRecord, received_at: float, price: Pricer | None = None) -> EncodedRun:
    """A record as a ``runs`` row for ``RunRepo.insert_many``; a run without a cost is
    priced by ``price`` as it lands (so history keeps the price of its day).

    A missing value travels as its sentinel, not None: '' for a name, a hash or the
    attributes, NaN for a number, -1 for the output length, and the flags as 0/1 (see
    ``RunRepo._NULLS``: the SQLite driver binds None and bool ten times slower).
    The provider, which has no column of its own, is kept with the attributes."""
    (
        run_id, workflow, version_id, env, started, ended, latency, status, reason,
        tokens_in, tokens_out, cost, model, provider, operation, retries, escalated, edited,
        feedback, text_in, text_out, label, attributes, source, arm,
    ) = r  # fmt: skip
    if provider:
        attributes = {**attributes, "provider": provider}
    if cost is None and model and price is not None:
        cost = price(model, provider, tokens_in or 0, tokens_out or 0)
    # a text seen before (most are) is one dict lookup here, not a call of _hash_of
    hash_in = "" if text_in is None else _HASHES.get(text_in) or _hash_of(text_in)
    if text_out is None:
        hash_out, chars = "", -1
    else:
        hash_out, chars = _HASHES.get(text_out) or _hash_of(text_out), len(text_out)
    return (
        run_id, workflow, version_id, env, started, ended, latency, tokens_in, tokens_out,
        _NAN if cost is None else cost, model or "", operation or "", status, reason or "",
        retries, 1 if escalated else 0, 1 if edited else 0,
        _NAN if feedback is None else feedback, label or "", chars, hash_in, hash_out,
        text_in, text_out, json.dumps(attributes, sort_keys=True) if attributes else "",
        source, received_at, arm or "",
    )  # fmt: skip


_TEXT_COLUMNS = tuple(RUN_COLUMNS.index(c) for c in ("input_hash", "output_hash"))
_IN, _OUT, _WORKFLOW = (RUN_COLUMNS.index(c) for c in ("input", "output", "workflow"))


def without_texts(
    rows: Sequence[EncodedRun], workflows: Collection[str]
) -> tuple[list[EncodedRun], int]:
    """``rows`` with the input and output (and their hashes: a short text is found from
    its sha256) of ``workflows``' runs removed; and how many runs had a text removed."""
    out: list[EncodedRun] = []
    dropped = 0
    for row in rows:
        if row[_WORKFLOW] in workflows and (row[_IN] is not None or row[_OUT] is not None):
            cells = list(row)
            cells[_IN] = cells[_OUT] = None
            for i in _TEXT_COLUMNS:
                cells[i] = ""
            row = tuple(cells)
            dropped += 1
        out.append(row)
    return out, dropped


def fact_sql(fact: RunFact) -> str:
    """One of ``domain.runs``' facts as SQL, over the column named as the run's field."""
    if fact.field not in RUN_COLUMNS:
        raise ValueError(f"a run fact over {fact.field!r}, which is not a stored column")
    if fact.test == "equals":
        return f"{fact.field} = {_literal(fact.operand)}"
    if fact.test == "below":
        return f"{fact.field} < {_literal(fact.operand)}"
    if fact.test == "true":
        return fact.field
    if fact.test == "present":
        return f"{fact.field} IS NOT NULL"
    raise ValueError(f"no SQL for the run test {fact.test!r}")


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return repr(float(value))
    raise ValueError(f"no SQL literal for {value!r}")


_BITS = {fact: 1 << i for i, fact in enumerate(SIGNAL_FACTS)}
_CHARS_SHIFT = 1 << len(SIGNAL_FACTS)
_FACTS_SQL = " + ".join(
    [
        *(f"CASE WHEN {fact_sql(fact)} THEN {bit} ELSE 0 END" for fact, bit in _BITS.items()),
        f"{_CHARS_SHIFT} * CAST(COALESCE(output_chars, -1) AS BIGINT)",
    ]
)
"""Every signal fact as one bit, and the output length above them (NULL as -1), summed
into the one integer per run that ``signal_window`` reads."""


class RunWindow:
    """The runs of one window as ``RunRepo.signal_window`` read them, oldest first: a
    numpy array per column, and per ``domain.runs`` signal fact which runs it holds for."""

    __slots__ = ("_runs",)

    def __init__(self, runs: npt.NDArray[Any]) -> None:
        self._runs = runs

    def __len__(self) -> int:
        return len(self._runs)

    def has(self, fact: RunFact) -> npt.NDArray[np.bool_]:
        """Whether ``fact`` (one of ``SIGNAL_FACTS``) holds, run by run."""
        return (self._runs["facts"] & _BITS[fact]) != 0  # type: ignore[no-any-return]

    def column(self, name: str) -> npt.NDArray[Any]:
        """``latency_ms``, ``cost_usd``, ``output_chars`` (NaN where missing), ``label``
        (None where missing), ``started_at`` when it was read, or an ``extra`` column."""
        if name == "facts" or name not in (self._runs.dtype.names or ()):
            raise KeyError(f"the window has no column {name!r}")
        return self._runs[name]

    def between(self, start: int, stop: int) -> RunWindow:
        """The runs ``start`` to ``stop`` (positions, oldest first) as a window."""
        return RunWindow(self._runs[start:stop])


class Added(NamedTuple):
    """What an insert of runs did: how many landed, and the run_ids it skipped because
    they are stored with other content (a run is recorded once; a re-send is identical)."""

    landed: int
    changed: list[str]
    texts_dropped: int = 0  # runs stored without their input and output (``without_texts``)


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


class RecentRun(NamedTuple):
    """A served run as a replay reads it: its input (None: not stored) and outcome."""

    input: str | None
    input_hash: str
    is_error: bool
    latency_ms: float
    cost_usd: float  # NaN: not given
    label: str | None


STORED_COLUMNS = (*RUN_COLUMNS, "sample_draw")
"""What an insert writes: the row and, computed here, the run's review-sample draw."""
_STORED_KINDS = (*ROW_KINDS, "d")


def with_draws(rows: Iterable[EncodedRun]) -> Iterator[tuple[Any, ...]]:
    """Each row with its review-sample draw under the default seed (``runs.sample_draw``):
    the queue then reads a period's sample instead of hashing every run of it."""
    draw, seed = sample_draw, DEFAULT_SEED
    for r in rows:
        yield (*r, draw(seed, r[1], r[0], r[4]))  # workflow, run_id, started_at


@functools.cache
def _sqlite_insert(rows: int) -> str:
    """The SQLite insert of ``rows`` runs in one statement (``RunRepo.insert_many``)."""
    head, values = RunRepo._insert_sql().split(" VALUES ")
    return f"{head} VALUES {', '.join([values] * rows)}"


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
    def _value_sql(column: str, given: str, sqlite: bool) -> str:
        """The SQL of one column's value from ``given`` (a placeholder or a staged column):
        its sentinel turned back into NULL (``_NULLS``)."""
        null = RunRepo._NULLS.get(column)
        if null is None or (sqlite and null in ("nan", "flag")):  # SQLite binds NaN as NULL
            return given
        if null == "nan":
            return f"NULLIF({given}, 'NaN'::float8)"
        if null == "flag":
            return f"CAST(CAST({given} AS INTEGER) AS BOOLEAN)"
        return f"NULLIF({given}, {null})"

    @staticmethod
    def _insert_sql() -> str:
        """SQLite's insert of one run (PostgreSQL's goes through ``_stage_sql``)."""
        values = [RunRepo._value_sql(c, "?", True) for c in STORED_COLUMNS]
        return (
            f"INSERT OR IGNORE INTO runs ({', '.join(STORED_COLUMNS)}) VALUES ({', '.join(values)})"
        )

    # PostgreSQL: rows are copied (COPY, one stream) into a temporary table of this
    # session, then moved in one INSERT ... SELECT; a statement per row costs the server
    # several times more (parse, bind, execute and a round of the pipeline each).
    _STAGE = "runs_incoming"
    _STAGE_TYPES = {"d": "float8", "q": "bigint", "s": "text"}

    @staticmethod
    def _stage_sql() -> tuple[str, str, str]:
        """(create the staging table if this session has none, COPY into it, move its
        rows into ``runs`` in the order they came, skipping a ``run_id`` stored)."""
        columns = ", ".join(STORED_COLUMNS)
        typed = ", ".join(
            f"{c} {RunRepo._STAGE_TYPES[k]}"
            for c, k in zip(STORED_COLUMNS, _STORED_KINDS, strict=True)
        )
        create = (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {RunRepo._STAGE} "
            f"(ord bigint GENERATED ALWAYS AS IDENTITY, {typed}) ON COMMIT DELETE ROWS"
        )
        copy = f"COPY {RunRepo._STAGE} ({columns}) FROM STDIN"
        values = ", ".join(RunRepo._value_sql(c, c, False) for c in STORED_COLUMNS)
        move = (
            f"INSERT INTO runs ({columns}) SELECT {values} FROM {RunRepo._STAGE} "
            "ORDER BY ord ON CONFLICT (run_id) DO NOTHING"
        )
        return create, copy, move

    def add(
        self,
        records: Sequence[RunRecord],
        *,
        received_at: float,
        price: Pricer | None = None,
        textless: Collection[str] = (),
    ) -> Added:
        """Store ``records`` (a ``run_id`` already stored is skipped), stamped ``received_at``;
        the runs of ``textless`` workflows without their texts (``without_texts``)."""
        rows = [encode(r, received_at, price) for r in records]
        dropped = 0
        if textless:
            rows, dropped = without_texts(rows, textless)
        return self.add_encoded(rows)._replace(texts_dropped=dropped)

    def add_encoded(self, rows: Sequence[EncodedRun]) -> Added:
        """``add`` of rows ``encode`` made already (the importer encodes in its workers)."""
        landed = self.insert_many(rows)
        return Added(landed, self.changed(rows) if landed < len(rows) else [])

    ROWS_PER_INSERT = 16

    def insert_many(self, rows: Iterable[EncodedRun]) -> int:
        """Insert rows in ``RUN_COLUMNS`` order; a ``run_id`` already stored is skipped.

        NULL is None, or, faster, a sentinel no valid run holds (``encode`` makes them):
        '' for the optional names, hashes and ``attributes_json``, NaN for
        ``cost_usd``/``feedback``, -1 for ``output_chars``; the flags may be 0/1. Returns
        how many landed, so a re-imported file reports its duplicates. The runs that
        landed are counted in the runs per day in the same transaction (``run_days``),
        and each is stored with its review-sample draw (``with_draws``).
        """
        from releasegate.store.run_days import DayRepo

        raw, _ = driver(self.conn)
        days = DayRepo(self.conn)
        after = days.last_seq()
        if self.conn.dialect.name == "sqlite":
            sql = RunRepo._insert_sql()
            rows = list(with_draws(rows))
            before = raw.total_changes
            # ROWS_PER_INSERT rows per statement: the driver lets go of the GIL around every
            # statement it runs, and each time takes it back only after the application's
            # threads have had their turn (up to 5 ms each); one statement per row made the
            # writer of a busy application wait for the GIL more than it worked
            k = RunRepo.ROWS_PER_INSERT
            whole = len(rows) - len(rows) % k
            if whole:
                chained = itertools.chain.from_iterable
                raw.executemany(
                    _sqlite_insert(k), (tuple(chained(rows[i : i + k])) for i in range(0, whole, k))
                )
            if whole < len(rows):
                raw.executemany(sql, rows[whole:])
            landed = int(raw.total_changes - before)
        else:
            create, copy_sql, move = RunRepo._stage_sql()
            cur = raw.cursor()
            try:
                cur.execute(create)
                with cur.copy(copy_sql) as copy:
                    for row in with_draws(rows):
                        copy.write_row(row)
                cur.execute(move)
                landed = int(cur.rowcount)
                cur.execute(f"DELETE FROM {RunRepo._STAGE}")  # a second call in this transaction
            finally:
                cur.close()
        if landed:
            days.add_inserted(after)  # the runs per day, in the same transaction
        return landed

    def unland(self, received_at: float) -> int:
        """Delete the runs one import landed: its ``received_at`` stamp is its own (and
        uncount them from the runs per day)."""
        from releasegate.store.run_days import DayRepo

        DayRepo(self.conn).take_back(received_at)
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
                raw, _ = driver(self._conn)
                self._before = int(raw.execute("PRAGMA cache_size").fetchone()[0])
                raw.execute(f"PRAGMA cache_size = -{RunRepo.BULK_CACHE_KIB}")

        def __exit__(self, *exc: object) -> None:
            if self._before is not None:
                raw, _ = driver(self._conn)
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
            f" AND started_at >= ? AND started_at < ? AND {SERVED_SQL}"
        )
        params: list[Any] = [workflow, env, start, end]
        if version_id is not None:
            sql += " AND version_id = ?"
            params.append(version_id)
        return fetch(self.conn, sql + " ORDER BY started_at", params)

    def latest_ok_example(
        self, workflow: str, env: str, start: float, end: float
    ) -> tuple[str, str | None] | None:
        """(input, output) of the newest served run started in ``[start, end)`` whose
        status is ``ok`` and whose input is stored, or None: walked newest first, so a
        busy window reads only its last runs."""
        sql = (
            "SELECT input, output FROM runs WHERE workflow = ? AND env = ?"
            f" AND started_at >= ? AND started_at < ? AND {SERVED_SQL} AND status = 'ok'"
            " AND input IS NOT NULL AND input <> '' ORDER BY started_at DESC LIMIT 1"
        )
        rows = fetch(self.conn, sql, [workflow, env, start, end])
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def recent_served(
        self, workflow: str, env: str, version_id: str, limit: int
    ) -> list[RecentRun]:
        """The newest ``limit`` runs ``version_id`` served in ``workflow@env`` (shadow runs
        left out), newest first, with their input and recorded outcome."""
        sql = (
            "SELECT input, input_hash, status, latency_ms, COALESCE(cost_usd, ?), label"
            " FROM runs WHERE workflow = ? AND env = ? AND version_id = ?"
            f" AND {SERVED_SQL} ORDER BY started_at DESC, seq DESC LIMIT ?"
        )
        missing = 9e99
        rows = fetch(self.conn, sql, [missing, workflow, env, version_id, limit])
        return [
            RecentRun(
                text,
                digest or "",
                IS_ERROR.holds(status),
                float(latency),
                math.nan if cost >= missing else float(cost),
                label,
            )
            for text, digest, status, latency, cost, label in rows
        ]

    def texts(self, seqs: Sequence[int], column: str = "input") -> dict[int, str]:
        """``{seq: text}`` of the runs ``seqs`` (``input`` or ``output``; runs without one are
        left out): a primary-key lookup, so quoting a few flagged runs reads only those."""
        if column not in ("input", "output"):
            raise ValueError(f"not a text column: {column!r}")
        wanted = sorted({int(x) for x in seqs})
        if not wanted:
            return {}
        sql = f"SELECT seq, {column} FROM runs WHERE seq IN ({marks(wanted)})"
        return {int(q): t for q, t in fetch(self.conn, sql, wanted) if t is not None}

    def signal_window(
        self,
        workflow: str,
        env: str,
        start: float,
        end: float,
        *,
        started: bool = False,
        extra: Sequence[str] = (),
    ) -> RunWindow:
        """What scalar drift reads of the runs that started in ``[start, end)``, oldest
        first: each run's ``SIGNAL_FACTS``, ``latency_ms``, ``cost_usd`` and
        ``output_chars`` (NaN where NULL), ``label`` (None where NULL), ``started_at``
        when asked and the ``extra`` columns (as read).

        Rows go from the cursor straight into numpy, the facts folded into one small
        integer (a cached Python object) with the output length: a million runs cost
        five objects each, not nine.
        """
        import numpy as np

        for c in extra:
            if c not in RUN_COLUMNS and c != "seq":
                raise ValueError(f"unknown run column {c!r}")
        # NULL numbers come back as +inf (no stored run holds one) and become NaN here
        inf = "9e999" if self.conn.dialect.name == "sqlite" else "'Infinity'::float8"
        # the facts and the output length travel as one integer (chars << facts | bits):
        # a field fewer to convert per run, a tenth of the fetch
        head: list[tuple[str, str]] = [("started_at", "f8")] if started else []
        tail = [("label", "O"), *((c, "O") for c in extra)]
        read = [*head, ("packed", "i8"), ("latency_ms", "f8"), ("cost_usd", "f8"), *tail]
        sql = (
            f"SELECT {'started_at, ' if started else ''}{_FACTS_SQL},"
            f" latency_ms, COALESCE(cost_usd, {inf}), label"
            f"{''.join(', ' + c for c in extra)}"
            " FROM runs WHERE workflow = ? AND env = ? AND started_at >= ? AND started_at < ?"
            f" AND {SERVED_SQL} ORDER BY started_at"
        )
        raw, mark = driver(self.conn)
        cur = raw.cursor()
        try:
            cur.execute(sql.replace("?", mark), (workflow, env, start, end))
            got = np.fromiter(cur, dtype=np.dtype(read))
        finally:
            cur.close()
        fields = [*head, ("facts", "u1"), ("latency_ms", "f8"), ("cost_usd", "f8")]
        runs = np.empty(len(got), dtype=np.dtype([*fields, ("output_chars", "f8"), *tail]))
        for name, _ in [*head, ("latency_ms", ""), ("cost_usd", ""), *tail]:
            runs[name] = got[name]
        packed = got["packed"]
        runs["facts"] = packed & (_CHARS_SHIFT - 1)
        chars = (packed // _CHARS_SHIFT).astype(np.float64)  # floor: NULL's -1 stays -1
        chars[chars < 0] = np.nan
        runs["output_chars"] = chars
        cost = runs["cost_usd"]
        cost[np.isinf(cost)] = np.nan
        return RunWindow(runs)

    def rate_counts(self, workflow: str, env: str, start: float, end: float) -> WindowRates:
        """Counts behind the failure rates of the served runs that started in ``[start,
        end)``, counted by the database in one pass over the (workflow, env, started_at)
        index."""
        flag = "CASE WHEN {} THEN 1 ELSE 0 END".format
        sql = (
            "SELECT COUNT(*),"
            f" COALESCE(SUM({flag(fact_sql(IS_ERROR))}), 0),"
            f" COALESCE(SUM({flag(fact_sql(IS_ESCALATED))}), 0),"
            f" COALESCE(SUM({flag(fact_sql(IS_EDITED))}), 0),"
            f" COALESCE(SUM({flag(fact_sql(HAS_FEEDBACK))}), 0),"
            f" COALESCE(SUM({flag(fact_sql(IS_NEGATIVE_FEEDBACK))}), 0)"
            " FROM runs WHERE workflow = ? AND env = ? AND started_at >= ? AND started_at < ?"
            f" AND {SERVED_SQL}"  # a failing shadow served nobody: it never pauses
        )
        row = fetch(self.conn, sql, [workflow, env, start, end])[0]
        return WindowRates(*(int(v) for v in row))

    def known_names(self, version_ids: Iterable[str]) -> KnownNames:
        """Every workflow with its environments, and the workflow of each of ``version_ids``
        that is registered: what ``domain.runs.name_problems`` checks runs against."""
        envs = {
            name: tuple(json.loads(raw))
            for name, raw in fetch(self.conn, "SELECT name, environments_json FROM workflows", [])
        }
        owners: dict[str, str] = {}
        ids = sorted(set(version_ids))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT version_id, workflow FROM versions WHERE version_id IN ({marks(part)})"
            owners.update(fetch(self.conn, sql, part))
        return KnownNames(envs, owners)

    def received_before(self, run_ids: Iterable[str], received_at: float) -> list[str]:
        """Which of ``run_ids`` were stored by an earlier write than the one at ``received_at``."""
        ids = sorted(set(run_ids))
        out: list[str] = []
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT run_id FROM runs WHERE run_id IN ({marks(part)}) AND received_at < ?"
            out.extend(r[0] for r in fetch(self.conn, sql, [*part, received_at]))
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
            sql = f"SELECT {columns} FROM runs WHERE run_id IN ({marks(part)})"
            for stored in fetch(self.conn, sql, part):
                if _comparable(stored) != _comparable(wanted[stored[0]]):
                    out.append(stored[0])
        return sorted(out)

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = fetch(
            self.conn, f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ?", [run_id]
        )
        return dict(zip(RUN_COLUMNS, rows[0], strict=True)) if rows else None

    def by_prefix(self, prefix: str, limit: int = 5) -> list[str]:
        column = t.runs.c.run_id
        query = select(column).where(column.startswith(prefix, autoescape=True))
        return list(self.conn.execute(query.order_by(column).limit(limit)).scalars())

    def count(self) -> int:
        return int(fetch(self.conn, "SELECT count(*) FROM runs", [])[0][0])

    def version_counts(self, workflow: str, start: float, end: float) -> dict[str, int]:
        """Runs of ``workflow`` (every environment) started in ``[start, end)``, per version.

        The environments the workflow's runs name are found first, one index seek each
        (a recursive query: the next name after the last), so each is read as a range of
        the window index rather than every run the workflow ever had."""
        sql = (
            "WITH RECURSIVE e(env) AS (SELECT MIN(env) FROM runs WHERE workflow = ?"
            " UNION ALL SELECT (SELECT MIN(env) FROM runs WHERE workflow = ? AND env > e.env)"
            " FROM e WHERE e.env IS NOT NULL)"
            " SELECT version_id, COUNT(*) FROM runs WHERE workflow = ?"
            " AND env IN (SELECT env FROM e WHERE env IS NOT NULL)"
            " AND started_at >= ? AND started_at < ? GROUP BY version_id"
        )
        rows = fetch(self.conn, sql, [workflow, workflow, workflow, start, end])
        return {str(v): int(n) for v, n in rows}

    def served_versions(
        self, workflow: str, env: str, start: float, end: float
    ) -> list[tuple[str, int]]:
        """(version id, served runs) of ``workflow``@``env`` started in ``[start, end)``,
        counted by the database over the window index alone."""
        sql = (
            "SELECT version_id, COUNT(*) FROM runs WHERE workflow = ? AND env = ?"
            f" AND started_at >= ? AND started_at < ? AND {SERVED_SQL} GROUP BY version_id"
        )
        return [(str(v), int(n)) for v, n in fetch(self.conn, sql, [workflow, env, start, end])]

    def failure_reasons(
        self, workflow: str, env: str, start: float, end: float, limit: int = 5
    ) -> list[FailureReason]:
        """The most frequent failure reasons of the served runs in ``[start, end)`` (shadow runs
        left out, as in ``window``), each with its latest run."""
        r = t.runs.c
        rows = self.conn.execute(
            select(r.failure_reason, func.count(), func.max(r.started_at))
            .where(
                r.workflow == workflow,
                r.env == env,
                r.status == "error",
                r.started_at >= start,
                r.started_at < end,
                _served(r),
            )
            .group_by(r.failure_reason)
            .order_by(func.count().desc())
            .limit(limit)
        ).all()
        out = []
        for reason, n, last in rows:
            run_id = self.conn.execute(
                select(r.run_id)
                .where(
                    r.workflow == workflow,
                    r.env == env,
                    r.status == "error",
                    r.started_at == last,
                    _served(r),
                    r.failure_reason.is_(None) if reason is None else r.failure_reason == reason,
                )
                .limit(1)
            ).scalar_one()
            out.append(FailureReason(reason or "(no reason given)", int(n), str(run_id)))
        return out

    def latest_ids(
        self, workflow: str, env: str, start: float, end: float, fact: RunFact, limit: int = 3
    ) -> list[str]:
        """The latest served run ids in ``[start, end)`` for which ``fact`` holds (escalated,
        ...); shadow runs left out, as in ``window``."""
        sql = (
            "SELECT run_id FROM runs WHERE workflow = ? AND env = ? AND started_at >= ?"
            f" AND started_at < ? AND {fact_sql(fact)} AND {SERVED_SQL}"
            f" ORDER BY started_at DESC LIMIT {int(limit)}"
        )
        return [str(x) for (x,) in fetch(self.conn, sql, [workflow, env, start, end])]


def _served(r: Any) -> Any:
    """``SERVED_SQL`` as a SQLAlchemy condition on the ``runs`` columns ``r``."""
    return or_(r.arm.is_(None), r.arm != "shadow")


class FailureReason(NamedTuple):
    reason: str
    runs: int
    last_run_id: str
