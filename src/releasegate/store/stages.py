"""Workflow stages: every ``stage set`` appended as a row, oldest first; which one is in
effect on a day is ``domain.handover.stage_state``'s rule, not this module's."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from releasegate.domain.handover import StageRecord
from releasegate.store import tables as t
from releasegate.store.rows import record, values


class StageRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, stage: StageRecord) -> None:
        self.conn.execute(insert(t.workflow_stages).values(**values(stage, t.workflow_stages)))

    def history(self, workflow: str, *, lock: bool = False) -> list[StageRecord]:
        """Oldest first. ``lock`` (inside a write transaction) first takes the workflow
        row's lock on PostgreSQL (SQLite's BEGIN IMMEDIATE already serialises writers),
        so two ``stage set`` at once see each other's row and record a change once."""
        if lock and self.conn.dialect.name == "postgresql":
            w = t.workflows.c
            self.conn.execute(select(w.name).where(w.name == workflow).with_for_update())
        rows = self.conn.execute(
            select(t.workflow_stages)
            .where(t.workflow_stages.c.workflow == workflow)
            .order_by(t.workflow_stages.c.seq)
        ).all()
        return [record(StageRecord, r, forced=bool, failing=tuple) for r in rows]
