"""Reviews of production runs (the human review queue) and the run reads the queue needs.

``ReviewRepo`` stores one review per run and reviewer (a second is an update of that
row), and reads a period's runs as the queue needs them: the flagged ones (escalated,
edited, feedback below a threshold) with a filter in SQL, the period's ids and start
times for the sample, and the summaries of the sampled ones. Which runs are queued is
``domain.review_queue``'s rule, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Connection, insert, select, update

from releasegate.domain.review_queue import Review, RunSummary
from releasegate.store import tables as t
from releasegate.store.rows import fetch, marks, record, values
from releasegate.store.runs import SERVED_SQL

_SUMMARY = "run_id, started_at, version_id, status, escalated, edited, feedback, label"
_PERIOD = "workflow = ? AND env = ? AND started_at >= ? AND started_at < ?"


def _summary(row: Sequence[object]) -> RunSummary:
    run_id, started, version, status, escalated, edited, feedback, label = row
    return RunSummary(
        str(run_id),
        float(started),  # type: ignore[arg-type]
        str(version),
        str(status),
        bool(escalated),
        bool(edited),
        None if feedback is None else float(feedback),  # type: ignore[arg-type]
        None if label is None else str(label),
    )


class ReviewRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # the runs of a period, as the queue reads them (served runs: shadow runs left out)

    def flagged(
        self, workflow: str, env: str, start: float, end: float, feedback_below: float
    ) -> list[RunSummary]:
        sql = (
            f"SELECT {_SUMMARY} FROM runs WHERE {_PERIOD} AND {SERVED_SQL}"
            " AND (escalated = ? OR edited = ? OR feedback < ?)"
        )
        params = [workflow, env, start, end, True, True, feedback_below]
        return [_summary(r) for r in fetch(self.conn, sql, params)]

    def period_ids(
        self, workflow: str, env: str, start: float, end: float
    ) -> list[tuple[str, float]]:
        sql = f"SELECT run_id, started_at FROM runs WHERE {_PERIOD} AND {SERVED_SQL}"
        return [(str(a), float(b)) for a, b in fetch(self.conn, sql, [workflow, env, start, end])]

    def summaries(self, run_ids: Sequence[str]) -> list[RunSummary]:
        out = []
        ids = list(run_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT {_SUMMARY} FROM runs WHERE run_id IN ({marks(part)})"
            out += [_summary(r) for r in fetch(self.conn, sql, part)]
        return out

    def texts(self, run_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        """run_id -> (input, output), for the runs a page shows."""
        out: dict[str, tuple[str | None, str | None]] = {}
        ids = list(run_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = f"SELECT run_id, input, output FROM runs WHERE run_id IN ({marks(part)})"
            for run_id, text_in, text_out in fetch(self.conn, sql, part):
                out[str(run_id)] = (text_in, text_out)
        return out

    def edited_count(self, workflow: str, env: str, start: float, end: float) -> int:
        sql = f"SELECT count(*) FROM runs WHERE {_PERIOD} AND {SERVED_SQL} AND edited = ?"
        return int(fetch(self.conn, sql, [workflow, env, start, end, True])[0][0])

    # reviews

    def add(self, review: Review) -> None:
        self.conn.execute(insert(t.run_reviews).values(**values(review, t.run_reviews)))

    def replace(self, review: Review) -> None:
        """Overwrite the review of the same run and reviewer (its id and creation kept)."""
        r = t.run_reviews.c
        row = values(review, t.run_reviews)
        for key in ("review_id", "created_at", "run_id", "reviewer"):
            row.pop(key)
        self.conn.execute(
            update(t.run_reviews)
            .where(r.run_id == review.run_id, r.reviewer == review.reviewer)
            .values(**row)
        )

    def get(self, run_id: str, reviewer: str, *, lock: bool = False) -> Review | None:
        """``lock`` (in a write transaction) first takes the run row's lock on PostgreSQL
        (SQLite's BEGIN IMMEDIATE already serialises writers), so two marks of one run by
        one reviewer at once take turns: the second sees the first and updates it."""
        r = t.run_reviews.c
        if lock and self.conn.dialect.name == "postgresql":
            run = t.runs.c
            self.conn.execute(select(run.seq).where(run.run_id == run_id).with_for_update())
        query = select(t.run_reviews).where(r.run_id == run_id, r.reviewer == reviewer)
        row = self.conn.execute(query).first()
        return None if row is None else _review(row)

    def of_run(self, run_id: str) -> list[Review]:
        r = t.run_reviews.c
        rows = self.conn.execute(
            select(t.run_reviews).where(r.run_id == run_id).order_by(r.updated_at)
        ).all()
        return [_review(row) for row in rows]

    def reviewed_ids(self, workflow: str, env: str, start: float, end: float) -> set[str]:
        r = t.run_reviews.c
        rows = self.conn.execute(
            select(r.run_id).where(*self._period(workflow, env, start, end)).distinct()
        ).scalars()
        return {str(x) for x in rows}

    def in_period(
        self, workflow: str, env: str, start: float, end: float, limit: int | None = None
    ) -> list[Review]:
        """The reviews of the runs started in the period, the latest change first."""
        r = t.run_reviews.c
        query = (
            select(t.run_reviews)
            .where(*self._period(workflow, env, start, end))
            .order_by(r.updated_at.desc(), r.review_id)
        )
        if limit is not None:
            query = query.limit(limit)
        return [_review(row) for row in self.conn.execute(query).all()]

    def set_case(self, review_id: str, case_id: str, suite_id: str) -> None:
        r = t.run_reviews.c
        self.conn.execute(
            update(t.run_reviews)
            .where(r.review_id == review_id)
            .values(case_id=case_id, case_suite_id=suite_id)
        )

    @staticmethod
    def _period(
        workflow: str, env: str, start: float, end: float
    ) -> tuple[ColumnElement[bool], ...]:
        r = t.run_reviews.c
        return (
            r.workflow == workflow,
            r.env == env,
            r.run_started_at >= start,
            r.run_started_at < end,
        )


def _review(row: object) -> Review:
    return record(Review, row, reasons=tuple)  # type: ignore[arg-type]
