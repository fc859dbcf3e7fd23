"""Rehearsals: one row per rollback rehearsal, read back as ``domain.rehearsal.Rehearsal``.

The repository is bound to a connection (the caller's transaction). ``active`` (unique)
keeps one running rehearsal per environment, whoever starts it; ``save`` writes a
rehearsal's new state only while it still runs, so of two processes that both find a
crashed one to undo exactly one does. ``latest`` is what reports and reviews read: the
date and result of the last rehearsal of ``workflow@env``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from releasegate.domain.identity import canonical_json
from releasegate.domain.rehearsal import MutationOutcome, Rehearsal
from releasegate.errors import RehearsalRefusedError
from releasegate.store import tables as t
from releasegate.store.rows import as_utc


def _values(r: Rehearsal) -> dict[str, Any]:
    return {
        "deployed_id": r.deployed_id,
        "suite_id": r.suite_id,
        "state": r.state,
        "result": r.result,
        "active": f"{r.workflow}@{r.env}" if r.is_running else None,
        "mutation_score": r.mutation_score,
        "time_to_detect_s": r.time_to_detect_s,
        "time_to_revert_s": r.time_to_revert_s,
        "is_restored": r.is_restored,
        "mutations_json": canonical_json([m.to_dict() for m in r.mutations]),
        "runner_json": canonical_json(dict(r.runner)),
        "updated_at": r.updated_at,
        "finished_at": r.finished_at,
    }


def _rehearsal(row: Any) -> Rehearsal:
    return Rehearsal(
        rehearsal_id=row.rehearsal_id,
        workflow=row.workflow,
        env=row.env,
        original_id=row.original_id,
        state=row.state,
        actor=row.actor,
        started_at=as_utc(row.started_at),
        updated_at=as_utc(row.updated_at),
        suite_id=row.suite_id,
        deployed_id=row.deployed_id,
        result=row.result,
        finished_at=None if row.finished_at is None else as_utc(row.finished_at),
        time_to_detect_s=row.time_to_detect_s,
        time_to_revert_s=row.time_to_revert_s,
        is_restored=None if row.is_restored is None else bool(row.is_restored),
        mutations=tuple(MutationOutcome.from_dict(m) for m in json.loads(row.mutations_json)),
        runner=json.loads(row.runner_json),
    )


def _of(workflow: str, env: str | None) -> ColumnElement[bool]:
    c = t.rehearsals.c
    return c.workflow == workflow if env is None else and_(c.workflow == workflow, c.env == env)


class RehearsalRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, r: Rehearsal) -> None:
        """Store a new rehearsal; RehearsalRefusedError if one already runs there."""
        try:
            with self.conn.begin_nested():
                self.conn.execute(
                    insert(t.rehearsals).values(
                        rehearsal_id=r.rehearsal_id,
                        workflow=r.workflow,
                        env=r.env,
                        original_id=r.original_id,
                        actor=r.actor,
                        started_at=r.started_at,
                        **_values(r),
                    )
                )
        except IntegrityError:
            raise RehearsalRefusedError(
                f"a rehearsal already runs in {r.workflow}@{r.env}",
                hint="wait for it to finish; a crashed one is undone by the next "
                f"`releasegate rehearse {r.workflow} --env {r.env}`",
            ) from None

    def get(self, rehearsal_id: str) -> Rehearsal | None:
        row = self.conn.execute(
            select(t.rehearsals).where(t.rehearsals.c.rehearsal_id == rehearsal_id)
        ).first()
        return None if row is None else _rehearsal(row)

    def active(self, workflow: str, env: str) -> Rehearsal | None:
        """The rehearsal of ``workflow@env`` still running (or crashed mid-way), or None."""
        row = self.conn.execute(
            select(t.rehearsals).where(t.rehearsals.c.active == f"{workflow}@{env}")
        ).first()
        return None if row is None else _rehearsal(row)

    def latest(self, workflow: str, env: str | None = None) -> Rehearsal | None:
        """The newest rehearsal of ``workflow`` (in ``env``, or in any environment), running
        or ended: its ``started_at``/``finished_at`` and ``result`` are "the last rehearsal"."""
        c = t.rehearsals.c
        where = _of(workflow, env)
        row = self.conn.execute(
            select(t.rehearsals)
            .where(where)
            .order_by(c.started_at.desc(), c.rehearsal_id.desc())
            .limit(1)
        ).first()
        return None if row is None else _rehearsal(row)

    def recent(self, workflow: str, env: str | None = None, limit: int = 20) -> list[Rehearsal]:
        """The newest ``limit`` rehearsals of ``workflow`` (in ``env``), newest first."""
        c = t.rehearsals.c
        where = _of(workflow, env)
        rows = self.conn.execute(
            select(t.rehearsals)
            .where(where)
            .order_by(c.started_at.desc(), c.rehearsal_id.desc())
            .limit(limit)
        ).all()
        return [_rehearsal(r) for r in rows]

    def save(self, r: Rehearsal, *, expected_state: str) -> bool:
        """Write ``r`` over the stored rehearsal if it is still ``expected_state`` and running;
        False when another process changed it first (nothing written)."""
        c = t.rehearsals.c
        done = self.conn.execute(
            update(t.rehearsals)
            .where(
                and_(
                    c.rehearsal_id == r.rehearsal_id,
                    c.state == expected_state,
                    c.active.is_not(None),
                )
            )
            .values(**_values(r))
        )
        return done.rowcount == 1

    def run_inputs(self, workflow: str, limit: int = 50) -> list[tuple[str, str]]:
        """(run id, input) of the newest ``limit`` runs of ``workflow`` that kept their input,
        one per distinct input: where a rehearsal looks for cases a weak suite lacks."""
        c = t.runs.c
        rows = self.conn.execute(
            select(c.run_id, c.input)
            .where(and_(c.workflow == workflow, c.input.is_not(None)))
            .order_by(c.seq.desc())
            .limit(limit * 4)
        ).all()
        seen: dict[str, str] = {}
        for run_id, text in rows:
            if text and text not in seen:
                seen[text] = run_id
        return [(run_id, text) for text, run_id in list(seen.items())[:limit]]
