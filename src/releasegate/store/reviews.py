"""Reviews of production runs (the human review queue) and the run reads the queue needs.

``ReviewRepo`` stores one review per run and reviewer (a second is an update of that
row), and reads a period's runs as the queue needs them: every served run's summary
(no texts) in one range read, and the texts of the runs a page shows. Which runs are
queued is ``domain.review_queue``'s rule, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import ColumnElement, Connection, and_, insert, or_, select, update

from releasegate.domain.review_queue import Review, RunSummary
from releasegate.store import tables as t
from releasegate.store.rows import fetch, marks, record, values
from releasegate.store.runs import SERVED_SQL

CLAIM = "claim:"
CLAIM_SECONDS = 600
"""A review's case being made holds ``claim:<epoch>:<token>`` in ``case_suite_id``; a
claim older than this was left by a maker that died."""

_SUMMARY = "run_id, started_at, version_id, status, escalated, edited, feedback, label"
_PERIOD = "workflow = ? AND env = ? AND started_at >= ? AND started_at < ?"
_FLAGGED = "(escalated OR edited OR feedback < ?)"
"""``domain.review_queue.flagged_reasons`` in SQL (a NULL feedback is below nothing)."""


class ReviewRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # the runs of a period, as the queue reads them (served runs: shadow runs left out)

    def period_runs(self, workflow: str, env: str, start: float, end: float) -> list[RunSummary]:
        """Every served run of the period, in one pass: the queue's rules and the sample's
        draw need all of them, and one range read costs half of two."""
        sql = f"SELECT {_SUMMARY} FROM runs WHERE {_PERIOD} AND {SERVED_SQL}"
        # the driver's own types (flags as 0/1 on SQLite): a conversion per row of a
        # million-row period costs more than the read; QueueItem converts what it keeps
        return list(map(RunSummary._make, fetch(self.conn, sql, [workflow, env, start, end])))

    def period_counts(self, workflow: str, env: str, start: float, end: float) -> tuple[int, int]:
        """(served runs, edited ones) of the period, counted over the window index."""
        sql = (
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN edited THEN 1 ELSE 0 END), 0)"
            f" FROM runs WHERE {_PERIOD} AND {SERVED_SQL}"
        )
        runs, edited = fetch(self.conn, sql, [workflow, env, start, end])[0]
        return int(runs), int(edited)

    def queue_candidates(
        self,
        workflow: str,
        env: str,
        start: float,
        end: float,
        *,
        feedback_below: float,
        share: float,
    ) -> list[RunSummary]:
        """The served runs of the period that may be queued: escalated, edited, feedback
        below ``feedback_below``, or a stored draw (``runs.sample_draw``, the default
        seed's) below ``share``; the window index holds every column the filter reads."""
        sql = (
            f"SELECT {_SUMMARY} FROM runs WHERE {_PERIOD} AND {SERVED_SQL}"
            f" AND ({_FLAGGED} OR sample_draw < ?)"
        )
        rows = fetch(self.conn, sql, [workflow, env, start, end, feedback_below, share])
        return list(map(RunSummary._make, rows))

    def flagged_count(
        self, workflow: str, env: str, start: float, end: float, *, feedback_below: float
    ) -> int:
        """How many served runs of the period are escalated, edited or have feedback below
        ``feedback_below`` (``domain.review_queue.flagged_reasons``), counted over the
        window index."""
        sql = f"SELECT COUNT(*) FROM runs WHERE {_PERIOD} AND {SERVED_SQL} AND {_FLAGGED}"
        return int(fetch(self.conn, sql, [workflow, env, start, end, feedback_below])[0][0])

    def sample_candidates(
        self, workflow: str, env: str, start: float, end: float, *, share: float
    ) -> list[RunSummary]:
        """The served runs of the period whose stored draw is below ``share``."""
        sql = f"SELECT {_SUMMARY} FROM runs WHERE {_PERIOD} AND {SERVED_SQL} AND sample_draw < ?"
        rows = fetch(self.conn, sql, [workflow, env, start, end, share])
        return list(map(RunSummary._make, rows))

    def summaries(
        self, workflow: str, env: str, start: float, end: float, run_ids: Sequence[str]
    ) -> list[RunSummary]:
        """The served runs of the period among ``run_ids``."""
        out: list[RunSummary] = []
        ids = sorted(set(run_ids))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            sql = (
                f"SELECT {_SUMMARY} FROM runs WHERE {_PERIOD} AND {SERVED_SQL}"
                f" AND run_id IN ({marks(part)})"
            )
            out += map(RunSummary._make, fetch(self.conn, sql, [workflow, env, start, end, *part]))
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

    def claim_case(self, review_id: str, now: float, token: str) -> str | None:
        """Take the review for making its case (the claim kept in ``case_suite_id`` until
        ``set_case``); None when it has a case or another maker holds it. A claim older
        than ``CLAIM_SECONDS`` (its maker died) is taken over."""
        r = t.run_reviews.c
        claim = f"{CLAIM}{int(now):011d}:{token}"
        stale = f"{CLAIM}{int(now) - CLAIM_SECONDS:011d}"
        taken = self.conn.execute(
            update(t.run_reviews)
            .where(
                r.review_id == review_id,
                r.case_id.is_(None),
                or_(
                    r.case_suite_id.is_(None),
                    and_(r.case_suite_id.startswith(CLAIM), r.case_suite_id < stale),
                ),
            )
            .values(case_suite_id=claim)
        )
        return claim if taken.rowcount == 1 else None

    def release_case(self, review_id: str, claim: str) -> None:
        """Give back a claim whose case was not made."""
        r = t.run_reviews.c
        self.conn.execute(
            update(t.run_reviews)
            .where(r.review_id == review_id, r.case_id.is_(None), r.case_suite_id == claim)
            .values(case_suite_id=None)
        )

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
    found: Review = record(Review, row, reasons=tuple)  # type: ignore[arg-type]
    if found.case_id is None and found.case_suite_id is not None:  # a claim, not a suite
        return replace(found, case_suite_id=None)
    return found
