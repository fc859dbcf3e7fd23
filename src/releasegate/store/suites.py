"""Suites: content-hashed eval suites, and which one is current for each workflow
(a history, so a gate can tell a stale suite from the current one)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from releasegate.domain.identity import canonical_json
from releasegate.errors import (
    NotFoundError,
)
from releasegate.store import tables as t
from releasegate.store.rows import now, record


@dataclass(frozen=True)
class SuiteRecord:
    suite_id: str
    name: str
    workflow: str
    description: str
    content: Mapping[str, Any]
    created_at: datetime


class SuiteRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def exists(self, suite_id: str) -> bool:
        found = self.conn.execute(
            select(t.suites.c.suite_id).where(t.suites.c.suite_id == suite_id)
        )
        return found.first() is not None

    def add_if_missing(
        self,
        *,
        suite_id: str,
        name: str,
        workflow: str,
        description: str,
        content: Mapping[str, Any],
    ) -> bool:
        exists = self.conn.execute(
            select(t.suites.c.suite_id).where(t.suites.c.suite_id == suite_id)
        ).first()
        if exists:
            return False
        self.conn.execute(
            insert(t.suites).values(
                suite_id=suite_id,
                name=name,
                workflow=workflow,
                description=description,
                content_json=canonical_json(content),
                created_at=now(),
            )
        )
        return True

    def get(self, suite_id: str) -> SuiteRecord:
        row = self.conn.execute(select(t.suites).where(t.suites.c.suite_id == suite_id)).first()
        if row is None:
            raise NotFoundError(f"no suite '{suite_id[:12]}'")
        return record(SuiteRecord, row)

    def current_id(self, workflow: str, *, lock: bool = False) -> str | None:
        """The workflow's current suite. ``lock`` (inside a write transaction) first takes
        the workflow row's lock on PostgreSQL (SQLite's BEGIN IMMEDIATE already serialises
        writers), so a writer that grows the current suite sees any other's new one."""
        if lock and self.conn.dialect.name == "postgresql":
            w = t.workflows.c
            self.conn.execute(select(w.name).where(w.name == workflow).with_for_update())
        row = self.conn.execute(
            select(t.suite_history.c.suite_id)
            .where(t.suite_history.c.workflow == workflow)
            .order_by(t.suite_history.c.seq.desc())
            .limit(1)
        ).first()
        return None if row is None else str(row[0])

    def make_current(self, workflow: str, suite_id: str, reason: str) -> None:
        self.conn.execute(
            insert(t.suite_history).values(
                workflow=workflow, suite_id=suite_id, reason=reason, created_at=now()
            )
        )
