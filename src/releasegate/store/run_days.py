"""Runs per day: the counts and sums the dashboard's program numbers and trends read.

``run_days`` holds, per workflow, environment and UTC day, how many served runs started
that day (shadow runs served nobody), how many failed, were escalated or edited, how
many have a cost, and the sums of cost and latency. It is kept in the transaction that
changes the runs: ``RunRepo.insert_many`` adds what it just inserted (``add_inserted``,
one ``INSERT ... SELECT ... GROUP BY`` over the new rows' ``seq`` range, an upsert that
adds to a day's counts, so two writers at once both count) and ``RunRepo.unland`` takes
back what it deletes (``take_back``). A page then reads a few rows per workflow and day
instead of scanning a million runs. Migration 0015 filled it from the runs stored then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection

from releasegate.domain.program import DayTotals, day_number, from_day_number
from releasegate.domain.runs import IS_EDITED, IS_ERROR, IS_ESCALATED
from releasegate.store.rows import driver, fetch
from releasegate.store.runs import SERVED_SQL, fact_sql

COUNTS = ("runs", "errors", "escalated", "edited", "costed", "cost_usd", "latency_ms")


def _aggregate(dialect: str, where: str, source: str = "runs") -> str:
    """Per (workflow, env, day) of the served runs matching ``where``: ``COUNTS`` in order."""
    if dialect == "sqlite":  # started_at is positive: CAST truncates, which is floor here
        day = "CAST(started_at / 86400 AS INTEGER)"
    else:
        day = "CAST(FLOOR(started_at / 86400) AS INTEGER)"
    flag = "COALESCE(SUM(CASE WHEN {} THEN 1 ELSE 0 END), 0)".format
    return (
        f"SELECT workflow, env, {day}, COUNT(*), {flag(fact_sql(IS_ERROR))},"
        f" {flag(fact_sql(IS_ESCALATED))}, {flag(fact_sql(IS_EDITED))}, COUNT(cost_usd),"
        " COALESCE(SUM(cost_usd), 0), COALESCE(SUM(latency_ms), 0)"
        f" FROM {source} WHERE {where} AND {SERVED_SQL} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )


def _run(conn: Connection, sql: str, params: Sequence[Any]) -> None:
    """A statement without rows, through the driver (inside the caller's transaction)."""
    raw, mark = driver(conn)
    cur = raw.cursor()
    try:
        cur.execute(sql.replace("?", mark), tuple(params))
    finally:
        cur.close()


class DayRepo:
    """The ``run_days`` table: kept by the runs repository, read by the dashboard."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def last_seq(self) -> int:
        """The newest run's ``seq`` (0 for none): ``add_inserted`` counts the runs after it."""
        return int(fetch(self.conn, "SELECT COALESCE(MAX(seq), 0) FROM runs", [])[0][0])

    def add_inserted(self, after_seq: int) -> None:
        """Count the runs this transaction inserted after ``after_seq`` (``last_seq`` read in
        it before the insert). On SQLite one writer at a time makes them exactly the runs
        past ``after_seq``; on PostgreSQL others may commit runs past it meanwhile, so only
        the rows this transaction wrote (its ``xmin``) are counted."""
        where = "seq > ?"
        # SQLite: read the new rows by their seq range; left to itself the planner groups
        # by walking the whole (workflow, env, started_at) index, every stored run per
        # insert (4-5 µs of CPU per inserted run at 200,000 runs, growing with the store)
        source = "runs NOT INDEXED"
        if self.conn.dialect.name != "sqlite":
            where += " AND xmin = pg_current_xact_id()::xid"
            source = "runs"
        keys = ", ".join(COUNTS)
        added = ", ".join(f"{c} = run_days.{c} + excluded.{c}" for c in COUNTS)
        sql = (
            f"INSERT INTO run_days (workflow, env, day, {keys})"
            f" {_aggregate(self.conn.dialect.name, where, source)}"
            f" ON CONFLICT (workflow, env, day) DO UPDATE SET {added}"
        )
        _run(self.conn, sql, [after_seq])

    def take_back(self, received_at: float) -> None:
        """Uncount the runs one import landed (its ``received_at`` stamp), before they are
        deleted; a day left with no run goes."""
        sql = _aggregate(self.conn.dialect.name, "received_at = ?")
        rows = fetch(self.conn, sql, [received_at])
        if not rows:
            return
        taken = ", ".join(f"{c} = {c} - ?" for c in COUNTS)
        for workflow, env, day, *counts in rows:
            key = [workflow, env, day]
            _run(
                self.conn,
                f"UPDATE run_days SET {taken} WHERE workflow = ? AND env = ? AND day = ?",
                [*counts, *key],
            )
            _run(
                self.conn,
                "DELETE FROM run_days WHERE workflow = ? AND env = ? AND day = ? AND runs <= 0",
                key,
            )

    def totals(self, first: date, last: date, workflow: str | None = None) -> list[DayTotals]:
        """The stored days ``first``..``last`` (inclusive), of every workflow or of one."""
        sql = (
            f"SELECT workflow, env, day, {', '.join(COUNTS)} FROM run_days"
            " WHERE day >= ? AND day <= ?"
        )
        params: list[object] = [day_number(first), day_number(last)]
        if workflow is not None:
            sql += " AND workflow = ?"
            params.append(workflow)
        return [
            DayTotals(
                str(wf),
                str(env),
                from_day_number(int(day)),
                int(runs),
                int(errors),
                int(esc),
                int(edited),
                int(costed),
                float(cost),
                float(latency),
            )  # fmt: skip
            for wf, env, day, runs, errors, esc, edited, costed, cost, latency in fetch(
                self.conn, sql + " ORDER BY day", params
            )
        ]
