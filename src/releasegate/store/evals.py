"""Eval runs and their cache: one row per eval, its outputs by (version, case, epoch)
and its scores by (version, case, epoch, scorer).

Outputs and scores are written in key order and skip rows another writer stored
meanwhile, so two evals of one version at once both finish without a deadlock."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, and_, func, insert, select, update

from releasegate.domain.identity import canonical_json
from releasegate.domain.results import CaseOutput, Score
from releasegate.store import tables as t
from releasegate.store.rows import insert_new, now, record


@dataclass(frozen=True)
class EvalRecord:
    eval_id: str
    version_id: str
    suite_id: str
    epochs: int
    status: str
    n_cases: int
    n_errors: int
    n_cached: int
    summary: Mapping[str, Any]
    started_at: datetime
    finished_at: datetime | None


def _eval(row: Row[Any]) -> EvalRecord:
    return record(EvalRecord, row)


class EvalRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def start(
        self,
        *,
        eval_id: str,
        version_id: str,
        suite_id: str,
        epochs: int,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        """A running eval; ``summary`` holds its ``running`` marker (pid, host, start)."""
        self.conn.execute(
            insert(t.eval_runs).values(
                eval_id=eval_id,
                version_id=version_id,
                suite_id=suite_id,
                epochs=epochs,
                status="running",
                summary_json=canonical_json(summary or {}),
                started_at=now(),
            )
        )

    def find(self, eval_id: str) -> EvalRecord | None:
        row = self.conn.execute(select(t.eval_runs).where(t.eval_runs.c.eval_id == eval_id)).first()
        return None if row is None else _eval(row)

    def running(self) -> list[EvalRecord]:
        rows = self.conn.execute(
            select(t.eval_runs)
            .where(t.eval_runs.c.status == "running")
            .order_by(t.eval_runs.c.started_at)
        ).all()
        return [_eval(r) for r in rows]

    def mark_interrupted(self, eval_id: str, summary: Mapping[str, Any]) -> bool:
        """Running -> interrupted, only if still running (another process may have won)."""
        result = self.conn.execute(
            update(t.eval_runs)
            .where(and_(t.eval_runs.c.eval_id == eval_id, t.eval_runs.c.status == "running"))
            .values(status="interrupted", summary_json=canonical_json(summary))
        )
        return bool(result.rowcount)

    def finish(
        self,
        eval_id: str,
        *,
        status: str,
        n_cases: int,
        n_errors: int,
        n_cached: int,
        summary: Mapping[str, Any],
    ) -> None:
        self.conn.execute(
            update(t.eval_runs)
            .where(t.eval_runs.c.eval_id == eval_id)
            .values(
                status=status,
                n_cases=n_cases,
                n_errors=n_errors,
                n_cached=n_cached,
                summary_json=canonical_json(summary),
                finished_at=now(),
            )
        )

    def latest(
        self, version_id: str, suite_id: str, *, completed: bool = True
    ) -> EvalRecord | None:
        q = select(t.eval_runs).where(
            and_(t.eval_runs.c.version_id == version_id, t.eval_runs.c.suite_id == suite_id)
        )
        if completed:
            q = q.where(t.eval_runs.c.status == "completed")
        row = self.conn.execute(q.order_by(t.eval_runs.c.started_at.desc()).limit(1)).first()
        return None if row is None else _eval(row)

    def for_version(self, version_id: str) -> list[EvalRecord]:
        rows = self.conn.execute(
            select(t.eval_runs)
            .where(t.eval_runs.c.version_id == version_id)
            .order_by(t.eval_runs.c.started_at)
        ).all()
        return [_eval(r) for r in rows]


class EvalData(NamedTuple):
    """A version's eval data: cached outputs, scores, and eval runs not yet collected."""

    outputs: int
    scores: int
    evals: int

    @property
    def is_empty(self) -> bool:
        return self.outputs == 0 and self.scores == 0 and self.evals == 0


COLLECTED = "collected"
"""An eval run whose outputs and scores ``gc`` removed; its summary row is kept."""


class EvalDataRepo:
    """A version's eval data as a whole: counted, and collected (``releasegate gc``)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def count(self, version_id: str) -> EvalData:
        def n(table: Any, *where: Any) -> int:
            q = select(func.count()).select_from(table).where(table.c.version_id == version_id)
            return int(self.conn.execute(q.where(*where)).scalar_one())

        return EvalData(
            n(t.outputs),
            n(t.scores),
            n(t.eval_runs, t.eval_runs.c.status != COLLECTED),
        )

    def counts(self, version_ids: Iterable[str]) -> dict[str, EvalData]:
        """``count`` of many versions at once (three grouped queries per 500 ids); a
        version with no eval data at all is left out."""
        ids = sorted(set(version_ids))
        found: dict[str, list[int]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for slot, table, where in (
                (0, t.outputs, ()),
                (1, t.scores, ()),
                (2, t.eval_runs, (t.eval_runs.c.status != COLLECTED,)),
            ):
                q = (
                    select(table.c.version_id, func.count())
                    .where(table.c.version_id.in_(chunk), *where)
                    .group_by(table.c.version_id)
                )
                for version_id, n in self.conn.execute(q).all():
                    found.setdefault(version_id, [0, 0, 0])[slot] = int(n)
        return {v: EvalData(*n) for v, n in found.items()}

    def running_of(self, version_ids: Iterable[str]) -> set[str]:
        """Which of ``version_ids`` have an eval running."""
        ids = sorted(set(version_ids))
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            q = select(t.eval_runs.c.version_id).where(
                t.eval_runs.c.version_id.in_(ids[i : i + 500]), t.eval_runs.c.status == "running"
            )
            out.update(self.conn.execute(q).scalars())
        return out

    def is_running(self, version_id: str) -> bool:
        q = select(func.count()).where(
            t.eval_runs.c.version_id == version_id, t.eval_runs.c.status == "running"
        )
        return bool(self.conn.execute(q).scalar_one())

    def collect(self, version_id: str) -> EvalData:
        """Delete the version's outputs and scores and mark its evals ``collected`` (the
        gate then asks for a new eval); returns what this call removed, so of two
        collectors at once only the one that removed something has anything to audit."""
        outputs = self.conn.execute(t.outputs.delete().where(t.outputs.c.version_id == version_id))
        scores = self.conn.execute(t.scores.delete().where(t.scores.c.version_id == version_id))
        evals = self.conn.execute(
            update(t.eval_runs)
            .where(
                t.eval_runs.c.version_id == version_id,
                t.eval_runs.c.status.notin_((COLLECTED, "running")),
            )
            .values(status=COLLECTED)
        )
        return EvalData(outputs.rowcount, scores.rowcount, evals.rowcount)


class OutputRepo:
    """The eval cache: one row per (version, case content, epoch), errors included."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get_many(
        self,
        version_id: str,
        case_hashes: Iterable[str],
    ) -> dict[tuple[str, int], CaseOutput]:
        wanted = set(case_hashes)
        o = t.outputs.c  # only the columns used: no created_at to parse on every row
        rows = self.conn.execute(
            select(
                o.case_hash,
                o.epoch,
                o.text,
                o.data_json,
                o.latency_ms,
                o.tokens_in,
                o.tokens_out,
                o.cost_usd,
                o.error,
            ).where(o.version_id == version_id)
        ).all()
        return {
            (case_hash, epoch): CaseOutput(
                text, json.loads(data) if data else None, latency, t_in, t_out, cost, error
            )
            for case_hash, epoch, text, data, latency, t_in, t_out, cost, error in rows
            if case_hash in wanted
        }

    def put_many(self, version_id: str, items: Sequence[tuple[str, int, CaseOutput]]) -> None:
        """Replace the outputs of ``items``; a row another writer stores meanwhile (a second
        eval of the version at once, on PostgreSQL) is kept, not a conflict."""
        if not items:
            return
        items = sorted(items, key=lambda i: (i[1], i[0]))  # one order: writers never deadlock
        by_epoch: dict[int, list[str]] = {}
        for h, e, _ in items:
            by_epoch.setdefault(e, []).append(h)
        for epoch, hashes in by_epoch.items():  # replace what a re-run (or --no-cache) redoes
            for i in range(0, len(hashes), 500):
                self.conn.execute(
                    t.outputs.delete().where(
                        and_(
                            t.outputs.c.version_id == version_id,
                            t.outputs.c.epoch == epoch,
                            t.outputs.c.case_hash.in_(hashes[i : i + 500]),
                        )
                    )
                )
        at = now()
        rows = [
            {
                "version_id": version_id,
                "case_hash": h,
                "epoch": e,
                "text": o.text,
                "data_json": canonical_json(o.data) if o.data is not None else None,
                "latency_ms": o.latency_ms,
                "tokens_in": o.tokens_in,
                "tokens_out": o.tokens_out,
                "cost_usd": o.cost_usd,
                "error": o.error,
                "created_at": at,
            }
            for h, e, o in items
        ]
        self.conn.execute(insert_new(self.conn, t.outputs), rows)


class ScoreRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get_many(
        self,
        version_id: str,
    ) -> dict[tuple[str, int, str], Score]:
        """Every stored score of the version, by (case hash, epoch, scorer id)."""
        s = t.scores.c
        rows = self.conn.execute(
            select(s.case_hash, s.epoch, s.scorer_id, s.value, s.passed, s.detail).where(
                s.version_id == version_id
            )
        ).all()
        return {
            (h, e, sid): Score(value, bool(passed), detail)
            for h, e, sid, value, passed, detail in rows
        }

    def forget(self, version_id: str, case_hashes: Iterable[str]) -> None:
        hashes = sorted(set(case_hashes))
        for i in range(0, len(hashes), 500):
            self.conn.execute(
                t.scores.delete().where(
                    and_(
                        t.scores.c.version_id == version_id,
                        t.scores.c.case_hash.in_(hashes[i : i + 500]),
                    )
                )
            )

    def put_many(self, version_id: str, items: Sequence[tuple[str, int, str, Score]]) -> int:
        """Store scores; a row whose key is already stored is kept as it is, so two evals
        (or compares) of one version at once both finish. Returns how many landed."""
        if not items:
            return 0
        rows = [
            {
                "version_id": version_id,
                "case_hash": h,
                "epoch": e,
                "scorer_id": s,
                "value": score.value,
                "passed": score.passed,
                "detail": score.detail,
            }
            for h, e, s, score in sorted(items, key=lambda i: (i[0], i[1], i[2]))
        ]  # in key order: two PostgreSQL writers of the same keys wait, never deadlock
        # RETURNING counts the rows inserted, on both drivers
        stmt = insert_new(self.conn, t.scores).returning(t.scores.c.case_hash)
        return len(self.conn.execute(stmt, rows).all())
